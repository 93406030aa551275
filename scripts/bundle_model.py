"""Copy a finished training run into assets/models/ with its sidecar and a model card.

    python -m scripts.bundle_model runs/NAME --name cxr_lite0 [--notes NOTES.md] \
        [--finalize --data DATA/chest_xray] [--independent CHECKS.txt]

Re-saves the model as ``assets/models/<name>.keras`` (weights only) with its sidecar
``<name>.json`` (the run's, plus the training command, hardware and threshold rule in words),
its input check ``<name>.gate.npz`` and ``MODEL_CARD.md`` rendered from that sidecar.
``--finalize`` re-runs :func:`cxr_core.training.finalize.finalize_model` (calibration, threshold on
the
stressed validation scores, stress suite, input check) for a run trained before it existed.
The input check's refusal rate on the generated non-X-ray corpus and its acceptance of the
dataset's ``val`` files are measured and stored in the sidecar. ``--independent`` adds lines
(one check per line, e.g. figures the maintainers measured on the official test split).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

from cxr_core import data
from cxr_core.config import RunConfig
from cxr_core.evaluation.model_card import render_model_card
from cxr_core.inference import input_check as gate
from cxr_core.model.build import load_model, read_metadata, save_model
from cxr_core.training.finalize import finalize_model, save_finalized

REPO = Path(__file__).resolve().parents[1]


def training_command(config: RunConfig) -> str:
    """The ``python -m cxr_core train`` command that reproduces ``config`` (data as DATA)."""
    m, d, t = config.model, config.data, config.train
    parts = [
        "python -m cxr_core train --data DATA/chest_xray",
        f"--backbone {m.backbone} --weights {m.weights} --image-size {m.image_size}",
        f"--dropout {m.dropout} --epochs {t.head_epochs} --finetune-epochs {t.finetune_epochs}",
        f"--lr {t.head_learning_rate} --finetune-lr {t.finetune_learning_rate}",
        f"--finetune-layers {t.finetune_layers} --label-smoothing {t.label_smoothing}",
        f"--augment {d.augment} --acquisition-augment {d.acquisition_augment}",
        f"--contrast {m.contrast} --clahe-clip-limit {m.clahe_clip_limit}",
        f"--threshold-scores {t.threshold_scores} --calibration {t.calibration}",
        f"--batch-size {d.batch_size} --val-fraction {d.val_fraction}",
        f"--seed {d.seed} --threshold-rule {t.threshold_rule}",
        f"--target-sensitivity {t.target_sensitivity} --patience {t.early_stopping_patience}",
    ]
    if not t.class_weighting:
        parts.append("--no-class-weights")
    if d.horizontal_flip:
        parts.append("--horizontal-flip")
    if d.framing_augment:
        parts.append(f"--framing-augment {d.framing_augment}")
    if d.corruption_augment:
        parts.append(f"--corruption-augment {d.corruption_augment}")
    if not t.input_gate:
        parts.append("--no-input-gate")
    return " ".join(parts) + " --out runs/NAME"


def threshold_rule_text(config: RunConfig) -> str:
    """The threshold rule in one sentence."""
    if config.train.threshold_rule == "worst_sensitivity":
        return (
            "the highest threshold at which the lowest sensitivity over the stress suite's "
            f"choice keys is at least {config.train.target_sensitivity:.2f} (held-out families "
            "unused)."
        )
    if config.train.threshold_rule == "worst_balanced":
        return (
            "the threshold maximising the lowest balanced accuracy over the stress suite's "
            "choice keys (held-out families unused)."
        )
    if config.train.threshold_rule == "sensitivity":
        return (
            "the highest threshold at which the validation split's sensitivity is at least "
            f"{config.train.target_sensitivity:.2f} (maximises specificity under that floor)."
        )
    return "the threshold maximising sensitivity + specificity (Youden's J) on validation."


def hardware() -> str:
    """The CPU (or GPU) this script runs on, assumed to be where the run trained."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, no GPU"


def gate_figures(model_path: Path, data_root: Path | None) -> str:
    """The input check's refusals on the non-X-ray corpus and acceptance of the val files."""
    from cxr_core.inference.predictor import Predictor
    from scripts.input_check_figures import corpus_figures, xray_acceptance

    predictor = Predictor.from_path(model_path)
    corpus = corpus_figures(predictor)
    refused = sum(c["refused"] for c in corpus.values())
    total = sum(c["total"] for c in corpus.values())
    text = f"Refuses {refused} of {total} generated non-X-ray images ({refused / total:.0%})"
    if data_root is not None:
        table = data.scan(data_root)
        files = xray_acceptance(predictor, sorted(table.loc[table["split"] == "val", "path"]))
        text += f"; accepts {files['accepted']} of {files['total']} dataset val X-rays"
    return text + " (scripts/input_check_figures.py)."


def _finalize(model, config: RunConfig, data_root: Path):
    table = data.scan(data_root)
    train_table, val_table, _ = data.resolve_splits(table, config.data)
    return finalize_model(model, config, train_table, val_table, progress=print)


def main() -> None:
    """Bundle the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--notes", type=Path, help="Markdown to add after the recipe")
    parser.add_argument("--hardware", default=None, help="override the hardware description")
    parser.add_argument("--finalize", action="store_true", help="re-run calibration etc.")
    parser.add_argument("--data", type=Path, help="dataset root (for --finalize and figures)")
    parser.add_argument("--independent", type=Path, help="independent checks, one per line")
    args = parser.parse_args()

    model, checked = load_model(args.run / "model.keras")
    config = RunConfig.from_dict(checked.run_config or {})
    metadata = checked.to_dict()
    metadata["run_config"]["data_root"] = "DATA/chest_xray"
    checks = args.independent.read_text(encoding="utf-8").splitlines() if args.independent else []
    metadata.update(
        name=args.name,
        # An ensemble's sidecar already holds every member's command (build_ensemble.py).
        training_command=metadata.get("training_command")
        if metadata.get("ensemble")
        else training_command(config),
        threshold_rule_text=threshold_rule_text(config),
        hardware=args.hardware or hardware(),
        intended_use="research and teaching demo; not a medical device",
        card_notes=args.notes.read_text(encoding="utf-8") if args.notes else "",
        independent_checks=[line.strip() for line in checks if line.strip()],
    )
    target = REPO / "assets" / "models"
    path = target / f"{args.name}.keras"
    # Re-saved (not copied) so that the bundle is weights only, whatever the run file holds.
    if args.finalize:
        if args.data is None:
            parser.error("--finalize needs --data")
        finalized = _finalize(model, config, args.data)
        save_finalized(model, path, finalized, metadata)
        metadata = {**read_metadata(path).to_dict(), "card_notes": metadata["card_notes"]}
    else:
        if metadata.get("input_gate"):
            source = gate.gate_path(args.run / "model.keras")
            gate.gate_path(path).write_bytes(source.read_bytes())
            metadata["input_gate"]["file"] = gate.gate_path(path).name
        save_model(model, path, metadata)
    if metadata.get("input_gate"):
        metadata["input_gate"]["figures"] = gate_figures(path, args.data)
        save_model(model, path, metadata)
    card = render_model_card(read_metadata(path), metadata["card_notes"])
    (target / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    files = [path, path.with_suffix(".json"), gate.gate_path(path)]
    size = sum(f.stat().st_size for f in files if f.exists())
    print(f"bundled {args.name}: {size / 2**20:.1f} MB in {target}")


if __name__ == "__main__":
    main()
