"""The stress suite: a model's validation images re-scored under published corruptions.

Validation carved from train flatters every model on this dataset (AUC 0.997 there, 0.936 on
the official test split for an earlier model), because the test images come from other
sessions: blurrier, noisier, differently exposed and framed. Suite v2 is MedMNIST-C's 13 chest
X-ray corruptions with their published parameters plus framing and burned-in markers, each at
5 severities (:mod:`cxr_core.imaging.corruptions`; 85 keys ``family@severity``).
:func:`stressed_logits`
scores every key in one pass over the images; :func:`stress_report` turns those scores into
the metrics of ``evaluate --json`` plus the share of verdicts that flip and the balanced error,
and summarises the suite (mean, worst, worst over the held-out families, and MedMNIST-C's
relative balanced error); :func:`heat_table` lays one metric out as family x severity.

Every corruption works on the grey image at the model's input size, as 0-255 values, before
the model's own preprocessing (CLAHE, when the model has it), exactly where augmentation works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from cxr_core.errors import DataError
from cxr_core.imaging import corruptions
from cxr_core.imaging.corruptions import Corruption
from cxr_core.imaging.scoring import input_batches
from cxr_core.inference.input_check import pooled_output
from cxr_core.runs import plan
from cxr_core.stats import metrics as evaluate

__all__ = [
    "CLEAN",
    "PERTURBATIONS",
    "STRESS_IMAGES",
    "Perturbation",
    "logit_model",
    "perturb",
    "pooled",
    "relative_balanced_error",
    "stress_report",
    "stressed_logits",
    "stressed_outputs",
    "suite_subset",
]

#: Key of the unperturbed scores in :func:`stressed_logits`' result.
CLEAN = "clean"
#: Metrics that the suite summary reports (worst case and mean over the perturbations).
SUMMARY_METRICS = (
    "roc_auc", "accuracy", "sensitivity", "specificity", "balanced_error", "ece", "flip_rate",
)  # fmt: skip
#: Metrics where the highest value is the worst.
_HIGHER_IS_WORSE = ("balanced_error", "ece", "flip_rate")
#: Validation images the suite scores while finishing (see :mod:`cxr_core.runs.plan`).
STRESS_IMAGES = plan.STRESS_IMAGES


#: One entry of the suite (a corruption at one severity); kept under its old name.
Perturbation = Corruption

#: The suite, in report order: MedMNIST-C's 13 chest X-ray corruptions, then framing and
#: burned-in markers, each at severities 1 to 5 (``pixelate@1`` ... ``markers@5``).
PERTURBATIONS: tuple[Perturbation, ...] = corruptions.suite()


def perturb(images: np.ndarray, perturbation: Perturbation, seed: int = 0) -> np.ndarray:
    """Apply one perturbation to each image of a batch.

    Args:
        images: ``(n, H, W)`` grey images, 0-255.
        perturbation: An entry of :data:`PERTURBATIONS`.
        seed: Seed for random perturbations (noise); image ``i`` uses ``seed + i``.

    Returns:
        float32 ``(n, H, W)`` in [0, 255].
    """
    out = np.empty(images.shape, np.float32)
    for index, image in enumerate(np.asarray(images, np.float32)):
        rng = np.random.default_rng(seed + index)
        out[index] = perturbation.apply(np.ascontiguousarray(image), rng)
    return np.clip(out, 0.0, 255.0)


def logit_model(model: keras.Model) -> keras.Model:
    """Return a model with the same input that outputs the classifier's ``logit`` layer."""
    return keras.Model(model.input, model.get_layer("logit").output)


def stressed_logits(
    model: keras.Model,
    table: pd.DataFrame,
    image_size: int,
    batch_size: int = 32,
    perturbations: Sequence[Perturbation] = PERTURBATIONS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Score a table's images clean and under each perturbation, in one pass over the files.

    Args:
        model: A classifier with a ``logit`` layer (:func:`cxr_core.model.build.build_model`).
        table: Rows of a :func:`cxr_core.data.tables.scan` table.
        image_size: The model's input side.
        batch_size: Images per forward pass.
        perturbations: The suite to run.
        progress: Called with ``(images done, total)`` after each batch.

    Returns:
        ``{"clean": logits, name: logits, ...}``, each float32 ``(len(table),)`` in the
        table's order.

    Raises:
        DataError: The table is empty or lists DICOM files.
    """
    return stressed_outputs(model, table, image_size, batch_size, perturbations, progress)[0]


def stressed_outputs(
    model: keras.Model,
    table: pd.DataFrame,
    image_size: int,
    batch_size: int = 32,
    perturbations: Sequence[Perturbation] = PERTURBATIONS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`stressed_logits` plus the pooled features of every image and variant.

    Returns:
        ``(logits, features)``: logits as in :func:`stressed_logits`; features
        ``{name: float32 (len(table), d)}`` from the model's ``pool`` layer.
    """
    if table.empty:
        raise DataError("There are no images to score.")
    # The decode and preprocessing of every score (cxr_core.imaging.scoring): clean logits here
    # equal
    # Diagnose's and evaluate's.
    batches = input_batches([str(path) for path in table["path"]], image_size, batch_size)
    scorer = keras.Model(model.input, [model.get_layer("logit").output, pooled_output(model)])
    names = [CLEAN, *(p.name for p in perturbations)]
    logits: dict[str, list[np.ndarray]] = {name: [] for name in names}
    features: dict[str, list[np.ndarray]] = {name: [] for name in names}
    done = 0
    for images in batches:
        grey = images[..., 0]
        variants = [grey] + [perturb(grey, p, seed=done) for p in perturbations]
        for name, variant in zip(names, variants, strict=True):
            # One batch at a time: eager calls on every variant at once held ~20 GB at 224 px.
            batch = np.repeat(variant[..., None], 3, axis=-1)
            logit, pooled = scorer.predict_on_batch(batch)
            logits[name].append(np.asarray(logit, np.float32).ravel())
            features[name].append(np.asarray(pooled, np.float32))
        done += len(grey)
        if progress is not None:
            progress(done, len(table))
    return (
        {name: np.concatenate(rows) for name, rows in logits.items()},
        {name: np.concatenate(rows) for name, rows in features.items()},
    )


def pooled(labels: np.ndarray, logits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack every variant's logits into one sample: ``(labels repeated, logits)``."""
    names = list(logits)
    return np.tile(np.asarray(labels), len(names)), np.concatenate([logits[n] for n in names])


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))


def stress_report(
    labels: Sequence[int],
    logits: dict[str, np.ndarray],
    threshold: float,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics under each perturbation at one threshold, and the suite's worst case and mean.

    Args:
        labels: ``(n,)`` 0/1 labels of the scored images.
        logits: :func:`stressed_logits` output (must hold ``"clean"``).
        threshold: Decision threshold on the probability, in [0, 1].
        n_resamples: Bootstrap resamples for each perturbation's intervals.
        seed: Bootstrap seed.

    Returns:
        ``{"threshold", "clean": metrics, "perturbations": {name: metrics}, "summary":
        {"worst": {metric: value}, "worst_perturbation": {metric: name}, "mean": {...},
        "worst_held_out": {...}, "medmnist_c": {...}}}`` where metrics are the keys of
        ``evaluate --json`` (:func:`cxr_core.stats.metrics.evaluation_report` without curves) plus
        ``flip_rate``, the share of images whose verdict differs from the clean one, and
        ``balanced_error``, ``1 - (sensitivity + specificity) / 2``. Worst means lowest, but
        highest for ``balanced_error``, ``ece`` and ``flip_rate``. ``worst_held_out`` is the
        worst over :data:`cxr_core.imaging.corruptions.HELD_OUT_FAMILIES` only; ``medmnist_c`` is
        :func:`relative_balanced_error`.

    Raises:
        DataError: No clean scores, or scores whose length differs from the labels.
    """
    if CLEAN not in logits:
        raise DataError("The stress report needs the clean scores.")
    y = np.asarray(labels)
    clean_verdict = sigmoid(logits[CLEAN]) >= threshold
    reports = {}
    for name, values in logits.items():
        probability = sigmoid(values)
        report = evaluate.evaluation_report(y, probability, threshold, n_resamples, seed)
        report.pop("curves")
        report["flip_rate"] = float(np.mean((probability >= threshold) != clean_verdict))
        report["balanced_error"] = 1.0 - (report["sensitivity"] + report["specificity"]) / 2
        reports[name] = report
    clean = reports.pop(CLEAN)
    summary = _summary(reports)
    held_out = {n: r for n, r in reports.items() if _family(n) in corruptions.HELD_OUT_FAMILIES}
    summary["worst_held_out"] = _summary(held_out)["worst"] if held_out else {}
    summary["medmnist_c"] = relative_balanced_error(clean, reports)
    return {
        "threshold": float(threshold),
        "clean": clean,
        "perturbations": reports,
        "summary": summary,
    }


def _family(name: str) -> str:
    return name.split("@", 1)[0]


def _summary(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    worst, worst_name, mean = {}, {}, {}
    for metric in SUMMARY_METRICS:
        values = {n: r[metric] for n, r in reports.items() if r.get(metric) is not None}
        if not values:
            continue
        pick = max if metric in _HIGHER_IS_WORSE else min
        worst_name[metric] = pick(values, key=values.get)
        worst[metric] = values[worst_name[metric]]
        mean[metric] = float(np.mean(list(values.values())))
    return {"worst": worst, "worst_perturbation": worst_name, "mean": mean}


def relative_balanced_error(
    clean: dict[str, Any], reports: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """MedMNIST-C's summary of its 13 corruptions, relative to its AlexNet baseline.

    For each family ``c`` with mean balanced error ``E_c`` over its severities, ``BE_c =
    E_c / A_c`` and ``rBE_c = (E_c - E_clean) / (A_c - A_clean)``, where ``A`` are AlexNet's
    errors (:data:`cxr_core.imaging.corruptions.MEDMNIST_C_ALEXNET`); both are averaged over the
    families present. Below 1 is more robust than that baseline.

    Args:
        clean: The clean metrics (with ``sensitivity`` and ``specificity``).
        reports: Per key metrics with ``balanced_error``.

    Returns:
        ``{"balanced_error", "relative_balanced_error", "families"}`` (numbers); empty when no
        MedMNIST-C family was scored.
    """
    baseline = corruptions.MEDMNIST_C_ALEXNET
    clean_error = 1.0 - (clean["sensitivity"] + clean["specificity"]) / 2
    be, rbe = [], []
    for family in corruptions.MEDMNIST_C:
        errors = [r["balanced_error"] for n, r in reports.items() if _family(n) == family]
        if errors:
            be.append(np.mean(errors) / baseline[family])
            rbe.append((np.mean(errors) - clean_error) / (baseline[family] - baseline["clean"]))
    if not be:
        return {}
    return {
        "balanced_error": float(np.mean(be)),
        "relative_balanced_error": float(np.mean(rbe)),
        "families": float(len(be)),
    }


def suite_subset(table: pd.DataFrame, size: int = STRESS_IMAGES, seed: int = 0) -> pd.DataFrame:
    """A fixed subset of a validation table for the suite: whole patients, both classes.

    Patients are shuffled with ``seed`` within each class and taken in that order until the
    class has its share of ``size`` (the table's own class ratio), so the same table and seed
    always give the same images.

    Args:
        table: Rows of a :func:`cxr_core.data.tables.scan` table (with ``patient_id``).
        size: Images wanted; the whole table when it has no more.
        seed: Shuffle seed.

    Returns:
        The chosen rows, in the table's order.
    """
    if len(table) <= size:
        return table
    rng = np.random.default_rng(seed)
    keep: list[Any] = []
    for _, rows in table.groupby("label_index", sort=True):
        share = round(size * len(rows) / len(table))
        patients = rows.groupby("patient_id", sort=True).groups
        order = rng.permutation(sorted(patients))
        taken = 0
        for patient in order:
            if taken >= share:
                break
            keep.extend(patients[patient])
            taken += len(patients[patient])
    return table.loc[table.index.isin(keep)]
