"""Compare trained models - and the average of their logits - on the stress suite.

    python -m scripts.compare_recipes --data DATA/chest_xray MODEL.keras [MODEL.keras ...] \
        [--json OUT.json]

Every model is scored on the same validation split (rebuilt from the first model's sidecar;
the models must share the split's seed and fraction) clean and under every perturbation of
``cxr_core.evaluation.stress``, each at its own input size. With two or more models the mean of
their
logits is scored too, as an ensemble would be. Each row gets the threshold its own scores give
under the first model's rule on the pooled stressed scores, so that the comparison is of
recipes, not of stored thresholds. The criterion for choosing the bundled recipe is the worst
case over the suite (lowest AUC, lowest sensitivity and specificity at the threshold).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cxr_core.config import RunConfig
from cxr_core.data import tables as data
from cxr_core.evaluation import (
    eval_sets,
    stress,
)
from cxr_core.model.build import load_model
from cxr_core.training.finalize import choose_suite_threshold

REPO = Path(__file__).resolve().parents[1]


def score(paths: list[Path], data_root: Path) -> tuple[np.ndarray, dict[str, dict], RunConfig]:
    """Stressed logits of every model on the first model's validation split."""
    first = load_model(paths[0])[1]
    table = data.scan(data_root)
    sets = {s.key: s for s in eval_sets.evaluation_sets(table, first)}
    validation = sets[eval_sets.VALIDATION].table
    logits = {}
    for path in paths:
        model, metadata = load_model(path)
        logits[path.stem if path.stem != "model" else path.parent.name] = stress.stressed_logits(
            model, validation, int(metadata["image_size"])
        )
    config = RunConfig.from_dict(first["run_config"])
    return validation["label_index"].to_numpy(), logits, config


def summarise(labels: np.ndarray, logits: dict[str, np.ndarray], config: RunConfig) -> dict:
    """Threshold by the run's rule on the clean and choice-family scores (as finalizing
    chooses it), then the stress report's summary."""
    threshold = choose_suite_threshold(config, labels, logits)
    report = stress.stress_report(labels, logits, threshold, n_resamples=50)
    clean = report["clean"]
    return {
        "threshold": threshold,
        "clean_auc": clean["roc_auc"],
        "worst": report["summary"]["worst"],
        "worst_perturbation": report["summary"]["worst_perturbation"],
        "mean": report["summary"]["mean"],
        "worst_held_out": report["summary"]["worst_held_out"],
    }


def main() -> None:
    """Print one row per model (and the ensemble); ``--json`` also writes every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    labels, logits, config = score(args.models, args.data)
    rows = {name: summarise(labels, values, config) for name, values in logits.items()}
    if len(logits) > 1:
        names = list(logits)
        mean = {k: np.mean([logits[n][k] for n in names], axis=0) for k in logits[names[0]]}
        rows["mean of logits"] = summarise(labels, mean, config)
    print(f"{'model':<24} {'clean AUC':>9} {'worst AUC':>9} {'mean AUC':>9} "
          f"{'worst sens':>10} {'worst spec':>10} {'worst ECE':>9}")  # fmt: skip
    for name, row in rows.items():
        worst, mean = row["worst"], row["mean"]
        print(
            f"{name:<24} {row['clean_auc']:>9.4f} {worst['roc_auc']:>9.4f} "
            f"{mean['roc_auc']:>9.4f} {worst['sensitivity']:>10.3f} "
            f"{worst['specificity']:>10.3f} {worst['ece']:>9.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
