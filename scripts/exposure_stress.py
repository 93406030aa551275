"""How a model's verdicts hold up when the validation images get another exposure.

Unseen hospitals and scanners differ mostly in exposure and contrast. This re-scores a model's
own validation split (rebuilt from its sidecar) after a gamma or contrast change and prints
AUC, sensitivity and specificity at the model's stored threshold. Validation data only.

    python scripts/exposure_stress.py assets/models/cxr_lite0.keras --data DATA/chest_xray
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

from cxr_core import data, eval_sets, evaluate  # noqa: E402
from cxr_core.config import DataConfig  # noqa: E402
from cxr_core.model import load_model, predict_scores  # noqa: E402

CHANGES = {
    "as stored": lambda x: x,
    "darker (gamma 1.5)": lambda x: 255.0 * (x / 255.0) ** 1.5,
    "brighter (gamma 0.67)": lambda x: 255.0 * (x / 255.0) ** 0.67,
    "less contrast (x0.7)": lambda x: (x - 128.0) * 0.7 + 128.0,
    "more contrast (x1.3)": lambda x: tf.clip_by_value((x - 128.0) * 1.3 + 128.0, 0.0, 255.0),
}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    model, metadata = load_model(args.model)
    sets = eval_sets.evaluation_sets(data.scan(args.data), metadata)
    val = next(s.table for s in sets if s.key == eval_sets.VALIDATION)
    plain = data.make_dataset(
        val, metadata.image_size, DataConfig(batch_size=32, cache=True), training=False
    )
    labels, threshold = val["label_index"].to_numpy(), metadata.threshold
    print(f"{args.model.name}: {len(val)} validation images, threshold {threshold:.3f}")
    print(f"{'change':24s} {'ROC AUC':>8s} {'sens':>6s} {'spec':>6s}")
    for name, change in CHANGES.items():
        scores = predict_scores(model, plain.map(lambda x, y, f=change: (f(x), y)))
        m = evaluate.classification_metrics(labels, scores, threshold)
        print(f"{name:24s} {m['roc_auc']:8.4f} {m['sensitivity']:6.3f} {m['specificity']:6.3f}")


if __name__ == "__main__":
    main()
