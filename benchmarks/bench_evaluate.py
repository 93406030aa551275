"""Time cxr_core.stats.metrics on synthetic scores: bootstrap intervals and the full report.

Run from the repository root: ``python benchmarks/bench_evaluate.py [n_cases] [n_resamples]``.
Prints seconds per call (best of three); the target is under 2 s for 1000 resamples of 1000 cases.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from cxr_core.stats.bootstrap import bootstrap_intervals
from cxr_core.stats.metrics import evaluation_report


def best_of(repeats: int, function, *args, **kwargs) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n_cases = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_resamples = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n_cases)
    scores = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0.0, 1.0)
    ci = best_of(3, bootstrap_intervals, y, scores, 0.5, n_resamples=n_resamples)
    report = best_of(3, evaluation_report, y, scores, 0.5, n_resamples=n_resamples)
    print(f"{n_resamples} resamples of {n_cases} cases")
    print(f"bootstrap_intervals (6 metrics): {ci:.3f} s")
    print(f"evaluation_report:               {report:.3f} s")


if __name__ == "__main__":
    main()
