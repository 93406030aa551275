"""Give a bundled model its conformal sets, population grades and independent-check records.

    python -m scripts.fit_conformal_and_grades --model assets/models/cxr_lite0.keras \
        --data ../shared/data/chest_xray [--stress-images 200] [--card assets/models/MODEL_CARD.md]

Idempotent; reads only the model files and the data, rewrites only the model's sidecar (the
``.keras`` and ``.gate.npz`` are untouched) and the model card:

1. Rebuilds the model's validation split from its sidecar (the patient-grouped split the
   card reports, ``cxr_core.evaluation.eval_sets``) and scores it once: logits and pooled features.
2. ``conformal``: class-conditional split-conformal bounds at 95% on those probabilities.
3. ``population_check``: the "unusual" threshold, the lowest candidate quantile of the
   distances of a stratified sample of validation images under the stress suite's keys of
   severity 1-3 (``MAX_SEVERITY``; a stand-in for new patients' images) that flags at most 5%
   of them; the share of clean and stressed validation images, the dataset's full-resolution
   val files and the generated non-X-ray corpus in each grade, per candidate.
4. ``site_fitting_note``: Platt vs temperature scaling at small n, simulated: each stress
   perturbation of the sample is a shifted "site"; 60 images fit, the rest score, 200 draws.
5. ``independent_checks``: the maintainers' dated records (issue 16) for the ensemble at its
   threshold 0.871; older free-text notes are kept, except the one saying none existed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from cxr_core.data import tables as data
from cxr_core.evaluation import (
    eval_sets,
    stress,
)
from cxr_core.evaluation.model_card import render_model_card
from cxr_core.evaluation.site_calibrate import threshold_rule
from cxr_core.evaluation.site_fit import fit_site
from cxr_core.imaging import decode as imaging
from cxr_core.inference import input_check as gate
from cxr_core.inference import population
from cxr_core.inference.predictor import Predictor
from cxr_core.model.build import load_model
from cxr_core.runs.files import write_json_atomic
from cxr_core.sidecar import ModelMetadata, read_metadata, sidecar_path
from cxr_core.sidecar_sections import IndependentCheck, PopulationCheck
from cxr_core.stats import metrics as evaluate
from cxr_core.stats.conformal import fit_conformal

REPO = Path(__file__).resolve().parents[1]

CANDIDATE_QUANTILES = (0.90, 0.93, 0.95, 0.97, 0.99)
MAX_STRESSED_FLAGGED = 0.05
#: Severities of the suite that stand in for new patients' images: 1-3 are MedMNIST-C's published
#: severities 0-2 and the milder framing and markers; 4-5 are harsher than any film the app should
#: grade "typical" or "unusual" by (with them the 95th percentile sat at 114.9 against a refusal
#: threshold of 123.1, an "unusual" band too narrow to flag a population shift).
MAX_SEVERITY = 3
SITE_IMAGES = 60
SHIFTS = (0.0, 1.5)
DRAWS = 200

_MODEL = "bundled ensemble cxr_lite0 of 2026-11-26"
_TEST = "new children 1-5 (official test split)"
RECORDS = (
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST, 624, "at the stored threshold",
        {"sensitivity": 0.977, "specificity": 0.739, "ece": 0.162, "accuracy": 0.888,
         "roc_auc": 0.974},
        "Median probability of pneumonia for a healthy child 0.35; the same scores at a "
        "threshold of 0.99 give sensitivity 0.933, specificity 0.893.",
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST, 574,
        "after site fitting on 50 local children (Platt + threshold), scored on the others, "
        "mean of 20 draws",
        {"sensitivity": 0.914, "specificity": 0.904, "ece": 0.050, "accuracy": 0.910},
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST, 312,
        "after site fitting on 312 local children, scored on the other 312, mean of 20 draws",
        {"sensitivity": 0.918, "specificity": 0.907, "ece": 0.039, "accuracy": 0.914},
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST, 564,
        "95% conformal sets fitted on 60 local children, scored on the others",
        {"coverage": 0.968, "uncertain": 0.23, "definite_accuracy": 0.96},
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST, 312,
        "95% conformal sets fitted on 312 local children, scored on the other 312",
        {"coverage": 0.956, "uncertain": 0.11, "definite_accuracy": 0.95},
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, "adults from another hospital", 44,
        "input check, then the stored threshold",
        {"refused": 6 / 44, "specificity": 5 / 16},
        "6 of 44 refused (with a sentence that wrongly said they were not chest X-rays); 11 of "
        "the 16 healthy adults scored were called PNEUMONIA. The feature distance separates "
        "these adults from the test children with ROC AUC 0.97.",
    ),
    IndependentCheck(
        "2026-12-03", _MODEL, 0.871, _TEST + ", under 13 published corruptions (MedMNIST-C)",
        624, "worst corruption, at the stored threshold",
        {"roc_auc": 0.950, "specificity": 0.32},
        "AUC 0.950-0.975 under all 13; specificity 0.32 (pixelate, severity 4) to 0.85, mean "
        "0.66; sensitivity stays above 0.95. The threshold is the fragile part.",
    ),
)  # fmt: skip
_OUTDATED = "This model has not been scored on the official test split yet"


def validation_outputs(model, metadata: ModelMetadata, table) -> tuple:
    """The model's rebuilt validation split, its logits and pooled features (one pass)."""
    sets = eval_sets.evaluation_sets(table, metadata)
    val = next(s.table for s in sets if s.key == eval_sets.VALIDATION)
    logits, features = stress.stressed_outputs(model, val, metadata.image_size, perturbations=())
    return val, logits[stress.CLEAN].astype(np.float64), features[stress.CLEAN]


def corpus_distances(predictor: Predictor) -> tuple[np.ndarray, int]:
    """Feature distances of the generated non-X-ray corpus, and how many a pixel check refused."""
    from scripts.non_xray_corpus import make_corpus

    distances, pixel_refused = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for path, _ in make_corpus(folder):
            decoded = imaging.read_image(path)
            check = predictor.predict(
                decoded.pixels, float(decoded.info.get("colour", 0))
            ).input_check
            if check.distance is None:
                pixel_refused += 1
            else:
                distances.append(check.distance)
    return np.array(distances), pixel_refused


def file_distances(predictor: Predictor, paths: list[str]) -> np.ndarray:
    """Feature distances of real files read as uploads."""
    checks = [predictor.predict(imaging.read_image(p).pixels).input_check for p in paths]
    return np.array([c.distance for c in checks if c.distance is not None])


def simulate_site_fitting(
    labels: np.ndarray, logits: dict[str, np.ndarray], rule, target, shift: float = 0.0
):
    """Mean ECE, sensitivity and specificity of Platt vs temperature on shifted "sites": each
    stress perturbation's logits, moved by ``shift`` (a change of the scores' level such as
    the test hospital's, where a healthy child's median probability was 0.35)."""
    rng = np.random.default_rng(0)
    results = {"platt": [], "temperature": [], "none": []}
    sites = [name for name in logits if name != stress.CLEAN]
    for draw in range(DRAWS):
        z = logits[sites[draw % len(sites)]] + shift
        order = rng.permutation(len(labels))
        fit, test = order[:SITE_IMAGES], order[SITE_IMAGES:]
        if len(np.unique(labels[fit])) < 2:
            continue
        for method in ("platt", "temperature"):
            fitted = fit_site(labels[fit], z[fit], rule, target, method)
            p = fitted.probabilities(z[test])
            results[method].append(_figures(labels[test], p, fitted.threshold))
        results["none"].append(_figures(labels[test], stress.sigmoid(z[test]), None))
    return {k: np.mean(v, axis=0) for k, v in results.items()}


def _figures(y, p, threshold) -> list[float]:
    ece = evaluate.expected_calibration_error(y, p)
    if threshold is None:
        return [ece, np.nan, np.nan]
    verdict = p >= threshold
    return [ece, verdict[y == 1].mean(), (~verdict[y == 0]).mean()]


def site_fitting_note(sims: dict[float, dict[str, np.ndarray]], n_sites: int, n_images: int):
    """The model card's sentences on why Platt (or temperature) scaling is the default."""
    parts = []
    for shift, sim in sims.items():
        platt, temp, none = sim["platt"], sim["temperature"], sim["none"]
        parts.append(
            f"logits moved by {shift:+.1f}: mean ECE uncalibrated {none[0]:.3f}, temperature "
            f"{temp[0]:.3f}, Platt {platt[0]:.3f}; sensitivity / specificity at the refitted "
            f"threshold: temperature {temp[1]:.3f} / {temp[2]:.3f}, Platt {platt[1]:.3f} / "
            f"{platt[2]:.3f}"
        )
    shifted = sims[max(sims)]
    winner = "Platt" if shifted["platt"][0] <= shifted["temperature"][0] else "temperature"
    return (
        f"Site fitting uses {winner} scaling by default. Simulated at small n: each of the "
        f"{n_sites} stress-suite perturbations of {n_images} validation images is a site; "
        f"{SITE_IMAGES} images fit, the others score, {DRAWS} draws. "
        + "; ".join(parts)
        + ". Without a level shift the two are alike (this model is already calibrated on "
        "these images); with one, such as the test hospital's (a healthy child's median "
        "probability 0.35), only Platt's intercept absorbs it: temperature scaling, a slope "
        f"alone, cannot. Its one extra parameter costs nothing visible at {SITE_IMAGES} images."
    )


def population_figures(gate_threshold: float, sets: dict[str, tuple[np.ndarray, int]], basis):
    """Grade shares of every image set at every candidate quantile of the ``basis``
    distances, and the chosen quantile: the lowest that flags at most
    ``MAX_STRESSED_FLAGGED`` of the stressed validation sample."""
    figures, chosen = {}, None
    for q in CANDIDATE_QUANTILES:
        unusual = min(population.choose_unusual_threshold(basis, q), gate_threshold)
        shares = {
            name: population.grade_shares(d, unusual, gate_threshold, extra)
            for name, (d, extra) in sets.items()
        }
        stressed = shares["validation stressed (sample)"]
        flagged = stressed["unusual"] + stressed["refused"]
        if chosen is None and flagged <= MAX_STRESSED_FLAGGED + 1e-9:
            chosen = (q, unusual)
        for name, share in shares.items():
            figures[f"{name} @ q{q}"] = share
    return figures, chosen or (0.99, population.choose_unusual_threshold(basis, 0.99))


def main() -> None:
    """Fit and write the sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--stress-images", type=int, default=200)
    parser.add_argument("--card", type=Path, help="where to write the model card")
    parser.add_argument("--dump", type=Path, help="also save the distances (.npz) here")
    args = parser.parse_args()

    model, metadata = load_model(args.model)
    table = data.scan(args.data)
    print("scoring the validation split", flush=True)
    val, logits, features = validation_outputs(model, metadata, table)
    labels = val["label_index"].to_numpy()
    probabilities = stress.sigmoid(logits)
    conformal = fit_conformal(
        labels, probabilities, 0.95, f"{len(val)} validation images (training hospital)"
    )
    print("scoring a sample under the stress suite", flush=True)
    sample = eval_sets.stratified_sample(val, args.stress_images, seed=0)
    mild = tuple(p for p in stress.PERTURBATIONS if p.severity <= MAX_SEVERITY)
    s_logits, s_features = stress.stressed_outputs(
        model, sample, metadata.image_size, perturbations=mild
    )
    fitted_gate = gate.load_gate(gate.gate_path(args.model), features.shape[1])
    stressed = np.concatenate([v for k, v in s_features.items() if k != stress.CLEAN])
    predictor = Predictor.with_stored_gate(model, metadata, args.model)
    print("grading the non-X-ray corpus and the val files", flush=True)
    val_files = sorted(table.loc[table["split"] == "val", "path"])
    image_sets = {
        "validation clean": (fitted_gate.distances(features), 0),
        "validation stressed (sample)": (fitted_gate.distances(stressed), 0),
        "val split files (full resolution)": (file_distances(predictor, val_files), 0),
        "non-X-ray corpus": corpus_distances(predictor),
    }
    # New patients' images look more like the stressed validation images than the clean ones
    # (the test children are blurrier): the candidates are quantiles of the stressed distances.
    # With the clean distances, even their 99.5th percentile flagged 6.9% of the stressed
    # images and 2 of the 16 full-resolution val files (first run of this script).
    basis = image_sets["validation stressed (sample)"][0]
    figures, (quantile, unusual) = population_figures(fitted_gate.threshold, image_sets, basis)
    if args.dump:
        np.savez(args.dump, **{name: d for name, (d, _) in image_sets.items()})
    grades = PopulationCheck(unusual, quantile, figures)
    rule = threshold_rule(metadata)  # a suite rule becomes its clean counterpart at a site
    sample_labels = sample["label_index"].to_numpy()
    print("simulating site fitting", flush=True)
    sim = {shift: simulate_site_fitting(sample_labels, s_logits, *rule, shift) for shift in SHIFTS}

    sidecar = json.loads(sidecar_path(args.model).read_text(encoding="utf-8"))
    notes = [c for c in sidecar.get("independent_checks", []) if isinstance(c, str)]
    sidecar.update(
        conformal=conformal.to_dict(),
        population_check=grades.to_dict(),
        site_fitting_note=site_fitting_note(sim, len(s_logits) - 1, len(sample)),
        independent_checks=[r.to_dict() for r in RECORDS]
        + [n for n in notes if not n.startswith(_OUTDATED)],
    )
    ModelMetadata.from_dict(sidecar)  # never write a sidecar that cannot be read back
    write_json_atomic(sidecar_path(args.model), sidecar)
    card = args.card or args.model.parent / "MODEL_CARD.md"
    card.write_text(
        render_model_card(read_metadata(args.model), sidecar.get("card_notes", "")),
        encoding="utf-8",
    )
    print(json.dumps({"conformal": conformal.to_dict(), "unusual_quantile": quantile,
                      "unusual_threshold": unusual, "refusal_threshold": fitted_gate.threshold,
                      "site_fitting": {str(shift): {k: v.tolist() for k, v in r.items()}
                                       for shift, r in sim.items()},
                      "grades": {k: v for k, v in figures.items() if f"q{quantile}" in k}},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
