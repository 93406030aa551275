"""Labels and scores shared by the tests of cxr_core.stats' metric modules."""

from __future__ import annotations

import numpy as np

# Hand example: 6 NORMAL, 4 PNEUMONIA, threshold 0.5.
#   NORMAL scores    0.05 0.15 0.25 0.45 | 0.65 0.75  -> TN 4, FP 2
#   PNEUMONIA scores 0.35 | 0.55 0.85 0.95            -> FN 1, TP 3
Y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
S = [0.05, 0.15, 0.25, 0.45, 0.65, 0.75, 0.35, 0.55, 0.85, 0.95]


def random_cases(n: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """n seeded labels and scores in [0, 1] that rank PNEUMONIA higher, with ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0).round(2)  # rounding makes ties
    return y, scores
