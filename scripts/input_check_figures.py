"""How well a model's input check tells chest X-rays from everything else.

    python -m scripts.input_check_figures --model assets/models/cxr_lite0.keras \
        --data ../shared/data/chest_xray [--json]

Refusal rate on a generated corpus of non-X-rays (``scripts/non_xray_corpus.py``: photos,
documents, screenshots, charts, blank, gradient, noise and pattern images, other medical images)
per category; acceptance of the dataset's own ``val`` split files (full resolution, never used
for fitting) and of the model's rebuilt validation split, clean and under each perturbation of
the stress suite. Every image goes through the same path as an upload (``imaging.read_image``
then ``Predictor.predict``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from cxr_core.data import tables as data
from cxr_core.evaluation import (
    eval_sets,
    stress,
)
from cxr_core.imaging import decode as imaging
from cxr_core.inference.predictor import Predictor
from scripts.non_xray_corpus import make_corpus

REPO = Path(__file__).resolve().parents[1]


def corpus_figures(predictor: Predictor) -> dict[str, dict[str, int]]:
    """Refused / total per category of the generated non-X-ray corpus."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"refused": 0, "total": 0})
    with tempfile.TemporaryDirectory() as folder:
        for path, category in make_corpus(folder):
            decoded = imaging.read_image(path)
            result = predictor.predict(decoded.pixels, colour=float(decoded.info.get("colour", 0)))
            counts[category]["total"] += 1
            counts[category]["refused"] += int(not result.input_check.accepted)
    return dict(counts)


def xray_acceptance(predictor: Predictor, paths: list[str]) -> dict[str, int]:
    """Accepted / total of real X-ray files read as uploads."""
    accepted = 0
    for path in paths:
        decoded = imaging.read_image(path)
        accepted += int(predictor.predict(decoded.pixels).input_check.accepted)
    return {"accepted": accepted, "total": len(paths)}


def stressed_acceptance(predictor: Predictor, table) -> dict[str, float]:
    """Share of validation images accepted, clean and under each stress perturbation."""
    size = predictor.image_size
    grey = np.stack([data_image(path, size) for path in table["path"]])
    shares = {}
    for name, perturbation in [("clean", None), *((p.name, p) for p in stress.PERTURBATIONS)]:
        images = grey if perturbation is None else stress.perturb(grey, perturbation)
        accepted = [predictor.predict(image).input_check.accepted for image in images]
        shares[name] = float(np.mean(accepted))
    return shares


def data_image(path: str, size: int) -> np.ndarray:
    """A file as the model sees it before its own layers: grey, resized, 0-255 float32."""
    from cxr_core.imaging.preprocess import to_model_input

    return to_model_input(imaging.read_image(path).pixels, size).numpy()[..., 0]


def main() -> None:
    """Print the figures (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    predictor = Predictor.from_path(args.model)
    table = data.scan(args.data)
    val_files = sorted(table.loc[table["split"] == "val", "path"])
    sets = eval_sets.evaluation_sets(
        table, json.loads(Path(args.model).with_suffix(".json").read_text())
    )
    validation = next(s.table for s in sets if s.key == eval_sets.VALIDATION)
    figures = {
        "corpus": corpus_figures(predictor),
        "val_split_files": xray_acceptance(predictor, val_files),
        "validation_split": stressed_acceptance(predictor, validation),
    }
    refused = sum(c["refused"] for c in figures["corpus"].values())
    total = sum(c["total"] for c in figures["corpus"].values())
    figures["corpus_refused_share"] = refused / total
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for category, count in sorted(figures["corpus"].items()):
        print(f"non-X-ray {category:<14} refused {count['refused']:>3} / {count['total']}")
    print(f"non-X-ray all            refused {refused} / {total} ({refused / total:.1%})")
    files = figures["val_split_files"]
    print(f"val split files (full resolution) accepted {files['accepted']} / {files['total']}")
    for name, share in figures["validation_split"].items():
        print(f"validation split {name:<16} accepted {share:.1%}")


if __name__ == "__main__":
    main()
