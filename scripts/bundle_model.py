"""Copy a finished training run into assets/models/ with its sidecar and a model card.

    python scripts/bundle_model.py runs/NAME --name cxr_lite0 [--notes NOTES.md]

Re-saves the model as ``assets/models/<name>.keras`` (weights only) with its sidecar
``<name>.json`` (the run's, plus the training command, hardware and threshold rule in words),
and writes ``MODEL_CARD.md`` rendered from that sidecar.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cxr_core.config import RunConfig  # noqa: E402
from cxr_core.model import load_model, read_metadata, save_model  # noqa: E402
from cxr_core.model_card import render_model_card  # noqa: E402


def training_command(config: RunConfig) -> str:
    """The ``python -m cxr_core train`` command that reproduces ``config`` (data as DATA)."""
    m, d, t = config.model, config.data, config.train
    parts = [
        "python -m cxr_core train --data DATA/chest_xray",
        f"--backbone {m.backbone} --weights {m.weights} --image-size {m.image_size}",
        f"--dropout {m.dropout} --epochs {t.head_epochs} --finetune-epochs {t.finetune_epochs}",
        f"--lr {t.head_learning_rate} --finetune-lr {t.finetune_learning_rate}",
        f"--finetune-layers {t.finetune_layers} --label-smoothing {t.label_smoothing}",
        f"--augment {d.augment} --batch-size {d.batch_size} --val-fraction {d.val_fraction}",
        f"--seed {d.seed} --threshold-rule {t.threshold_rule}",
        f"--target-sensitivity {t.target_sensitivity} --patience {t.early_stopping_patience}",
    ]
    if not t.class_weighting:
        parts.append("--no-class-weights")
    if d.horizontal_flip:
        parts.append("--horizontal-flip")
    return " ".join(parts) + " --out runs/NAME"


def threshold_rule_text(config: RunConfig) -> str:
    """The threshold rule in one sentence."""
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


def main() -> None:
    """Bundle the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--notes", type=Path, help="Markdown to add after the recipe")
    parser.add_argument("--hardware", default=None, help="override the hardware description")
    args = parser.parse_args()

    model, checked = load_model(args.run / "model.keras")
    config = RunConfig.from_dict(checked.run_config or {})
    metadata = checked.to_dict()
    metadata["run_config"]["data_root"] = "DATA/chest_xray"
    metadata.update(
        name=args.name,
        training_command=training_command(config),
        threshold_rule_text=threshold_rule_text(config),
        hardware=args.hardware or hardware(),
        intended_use="research and teaching demo; not a medical device",
        card_notes=args.notes.read_text(encoding="utf-8") if args.notes else "",
    )
    target = REPO / "assets" / "models"
    # Re-saved (not copied) so that the bundle is weights only, whatever the run file holds.
    saved = save_model(model, target / f"{args.name}.keras", metadata)
    card = render_model_card(read_metadata(saved), metadata["card_notes"])
    (target / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    size = sum((target / f"{args.name}{s}").stat().st_size for s in (".keras", ".json"))
    print(f"bundled {args.name}: {size / 2**20:.1f} MB in {target}")


if __name__ == "__main__":
    main()
