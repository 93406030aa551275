"""Join finished runs into one ensemble model (mean of calibrated logits) for bundling.

    python -m scripts.build_ensemble runs/A/model.keras runs/B/model.keras --out runs/ensemble

Writes ``OUT/model.keras`` and its sidecar: member 0's run configuration (its image size is the
ensemble's input size; other members resize inside), the layers Grad-CAM explains together, one
sentence describing the members and both training commands. The threshold and calibration are
provisional until ``scripts/bundle_model.py OUT --finalize`` works them out for the ensemble
(calibration, threshold on stressed validation scores, stress suite, input check).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxr_core.config import RunConfig
from cxr_core.model.build import load_model, save_model
from cxr_core.model.ensemble import build_ensemble, explained_layers
from scripts.bundle_model import training_command

REPO = Path(__file__).resolve().parents[1]


def describe(metadata, config: RunConfig) -> str:
    """One member in a phrase: backbone, size and its own clean validation AUC."""
    auc = metadata.metrics.value("roc_auc")
    score = f", validation AUC {auc:.3f} alone" if auc is not None else ""
    return f"{config.model.backbone} at {config.model.image_size} px{score}"


def main() -> None:
    """Build and save the ensemble."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, nargs="+", help="member .keras files")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.keras")
    args = parser.parse_args()
    if len(args.members) < 2:
        parser.error("give two or more member models")
    loaded = [load_model(path) for path in args.members]
    models = [model for model, _ in loaded]
    configs = [RunConfig.from_dict(metadata.run_config or {}) for _, metadata in loaded]
    ensemble = build_ensemble(models, configs[0].model.image_size)
    layers = explained_layers(models)
    phrases = [
        describe(metadata, config) for (_, metadata), config in zip(loaded, configs, strict=True)
    ]
    metadata = loaded[0][1].to_dict()
    for key in ("stress", "calibration", "input_gate", "metrics"):
        metadata.pop(key, None)
    metadata.update(
        backbone=f"{configs[0].model.backbone} ensemble",
        last_conv_layer=layers[0],
        gradcam_layers=layers,
        ensemble=(
            f"Mean of the calibrated logits of {len(models)} models ({'; '.join(phrases)}), "
            "recalibrated together; Grad-CAM sums the members' maps."
        ),
        training_command=" ; ".join(
            training_command(config).replace("runs/NAME", f"runs/member{index}")
            for index, config in enumerate(configs)
        )
        + " ; python -m scripts.build_ensemble "
        + " ".join(f"runs/member{index}/model.keras" for index in range(len(configs)))
        + " --out runs/NAME",
        training_seconds=sum(metadata.training_seconds or 0.0 for _, metadata in loaded),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = save_model(ensemble, args.out / "model.keras", metadata)
    print(f"saved {path} ({len(ensemble.layers)} layers; Grad-CAM layers {', '.join(layers)})")


if __name__ == "__main__":
    main()
