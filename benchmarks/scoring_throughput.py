"""Scoring throughput of the Evaluate page's path against a bare ``model.predict``.

The page scores through :func:`cxr_core.evaluation.eval_sets.predict_table` with a progress callback
(a Keras callback per batch) and the disk cache switched off here. The bare figure is one
``model.predict`` over the same ``tf.data`` pipeline (files decoded and resized the same way);
a second figure predicts already-decoded arrays, to show what decoding costs. Each is the best
of ``--repeats`` rounds after one warm-up; the ratios are medians of the ratios within a round,
so tracing and a busy machine weigh less.

Run from the repository root::

    python benchmarks/scoring_throughput.py [--model M] [--data D] [--images 256]

The last line is ``scoring_vs_bare_predict=<ratio>`` (images/s of the page's path over the
bare pipeline's; 1.0 = no cost). :func:`measure_scoring` is the function other benchmarks call.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxr_core import data
from cxr_core.evaluation.eval_sets import predict_table, stratified_sample

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def _rate(n: int, function: Any) -> float:
    start = time.perf_counter()
    function()
    return n / (time.perf_counter() - start)


def measure_scoring(
    model: Any, table: pd.DataFrame, image_size: int, batch_size: int = 32, repeats: int = 3
) -> dict[str, float]:
    """Images per second of the page's scoring path and of bare ``model.predict``.

    Args:
        model: A loaded classifier.
        table: Rows of a scan table to score.
        image_size: The model's input side.
        batch_size: Images per forward pass, the same for every path.
        repeats: Timed rounds; each runs every path once, in a rotating order.

    Returns:
        ``{"scoring", "bare_predict", "bare_predict_arrays"}``: the best images/s of each path;
        ``"scoring_vs_bare_predict"`` and ``"scoring_vs_bare_arrays"``: the median over rounds
        of the ratio of the page's path to the bare one within a round.
    """
    n = len(table)
    ticks: list[Any] = []

    def scoring() -> None:
        predict_table(model, table, image_size, batch_size, progress=ticks.append)

    def bare() -> None:
        images = data.evaluation_dataset(table, image_size, batch_size).map(lambda x, _: x)
        model.predict(images, verbose=0)

    arrays = np.concatenate(
        [x.numpy() for x, _ in data.evaluation_dataset(table, image_size, batch_size)]
    )

    def bare_arrays() -> None:
        model.predict(arrays, batch_size=batch_size, verbose=0)

    paths = {"scoring": scoring, "bare_predict": bare, "bare_predict_arrays": bare_arrays}
    for function in paths.values():
        function()  # warm-up: tracing, file cache
    rounds: list[dict[str, float]] = []
    for index in range(repeats):
        names = list(paths)[index % 3 :] + list(paths)[: index % 3]  # rotate who goes first
        rounds.append({name: _rate(n, paths[name]) for name in names})
    rates = {name: max(r[name] for r in rounds) for name in paths}
    # A shared machine slows whole rounds: the ratio within each round is the steadier figure.
    for name, base in (("bare_predict", "predict"), ("bare_predict_arrays", "arrays")):
        ratios = [r["scoring"] / r[name] for r in rounds]
        rates[f"scoring_vs_bare_{base}"] = float(np.median(ratios))
    return rates


def main() -> None:
    """Print the figures; the last line is ``scoring_vs_bare_predict=<ratio>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "models" / "cxr_lite0.keras"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from cxr_core.model.build import load_model

    model, metadata = load_model(args.model)
    table = data.scan(args.data)
    table = stratified_sample(table[table["split"] == "train"], args.images)
    rates = measure_scoring(model, table, metadata.image_size, args.batch_size, args.repeats)
    print(f"{len(table)} images at {metadata.image_size} px, batch {args.batch_size}, ", end="")
    print(f"{os.cpu_count()} CPUs, {args.repeats} rounds (rates: best; ratios: median)")
    print(f"page scoring (progress callback):  {rates['scoring']:7.1f} images/s")
    print(f"bare model.predict (same tf.data): {rates['bare_predict']:7.1f} images/s")
    print(f"bare model.predict (decoded):      {rates['bare_predict_arrays']:7.1f} images/s")
    print(f"scoring_vs_bare_arrays={rates['scoring_vs_bare_arrays']:.3f}")
    print(f"scoring_vs_bare_predict={rates['scoring_vs_bare_predict']:.3f}")


if __name__ == "__main__":
    main()
