"""Re-derive a bundled model's stored validation figures through today's scoring path.

    python -m scripts.rederive_figures.py --model assets/models/cxr_lite0.keras \
        --data DATA/chest_xray [--stress] [--write]

(from the project root; the project is installed by ``requirements.txt``.)

Rebuilds the model's validation split from its sidecar's ``run_config``
(:func:`cxr_core.evaluation.eval_sets.evaluation_sets`), scores it through
:mod:`cxr_core.imaging.scoring` (the
decode and preprocessing of Diagnose, ``predict`` and ``evaluate``) and recomputes the sidecar's
``metrics`` at the stored threshold with the run's seed (and, with ``--stress``, the stress
suite). Prints stored against re-derived figures; ``--write`` saves them in the sidecar and
re-renders ``MODEL_CARD.md`` beside it. The threshold, the calibration and the input check are
left as they are: only how the figures were measured changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxr_core.data import tables as data
from cxr_core.evaluation import stress
from cxr_core.evaluation.eval_sets import VALIDATION, evaluation_sets, predict_table
from cxr_core.evaluation.model_card import render_model_card
from cxr_core.model.build import load_model, sidecar_path
from cxr_core.runs.files import write_json_atomic
from cxr_core.sidecar import read_metadata
from cxr_core.stats import metrics as evaluate

SHOWN = ("n", "roc_auc", "accuracy", "sensitivity", "specificity", "pr_auc", "ece", "brier")


def _seed(sidecar: dict) -> int:
    return int(sidecar.get("run_config", {}).get("data", {}).get("seed", 0))


def main() -> None:
    """Score, compare, and with ``--write`` store the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stress", action="store_true", help="re-derive the stress suite too")
    parser.add_argument("--write", action="store_true", help="store them and re-render the card")
    args = parser.parse_args()

    path = Path(args.model)
    model, metadata = load_model(path)
    sidecar = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    sets = {item.key: item for item in evaluation_sets(data.scan(args.data), metadata)}
    table = sets[VALIDATION].table
    labels = table["label_index"].to_numpy()
    seed = _seed(sidecar)
    scores = predict_table(model, table, metadata.image_size, args.batch_size)
    metrics = evaluate.evaluation_report(labels, scores, metadata.threshold, seed=seed)
    metrics.pop("curves", None)
    stored = sidecar.get("metrics", {})
    for key in SHOWN:
        print(f"{key:<12} stored {stored.get(key)!s:<22} now {metrics.get(key)}")
    print(f"confusion    stored {stored.get('confusion_matrix')} now {metrics['confusion_matrix']}")
    sidecar["metrics"] = metrics
    if args.stress:
        logits = stress.stressed_logits(model, table, metadata.image_size, args.batch_size)
        suite = stress.stress_report(labels, logits, metadata.threshold, seed=seed)
        print("stress worst: stored", sidecar.get("stress", {}).get("summary", {}).get("worst"))
        print("stress worst: now   ", suite["summary"]["worst"])
        sidecar["stress"] = suite
    if args.write:
        write_json_atomic(sidecar_path(path), sidecar)
        card = render_model_card(read_metadata(path), sidecar.get("card_notes", ""))
        (path.parent / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        print(f"wrote {sidecar_path(path).name} and MODEL_CARD.md")


if __name__ == "__main__":
    main()
