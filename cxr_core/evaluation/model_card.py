"""A model card rendered from a model's JSON sidecar, so the two can never disagree.

Every function takes the checked sidecar (:class:`cxr_core.sidecar.ModelMetadata`). Strings
from the sidecar are escaped for Markdown (:func:`cxr_core.markdown.escape_markdown`): a run
name or a path in them is shown as text, never as a link or an image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxr_core.evaluation.card_sections import (
    conformal_lines,
    headline_markdown,
    population_lines,
    site_lines,
)
from cxr_core.imaging.corruptions import FAMILIES, HELD_OUT_FAMILIES, SEVERITIES
from cxr_core.markdown import code_span
from cxr_core.markdown import escape_markdown as md
from cxr_core.sidecar import ModelMetadata
from cxr_core.sidecar_reports import StressReport, SuiteSummary

__all__ = [
    "CARD_METRICS",
    "HEAT_METRICS",
    "format_metric",
    "headline_metrics",
    "render_model_card",
    "robustness_lines",
    "stress_heat_table",
    "stress_rows",
]

#: (metric key, label) of the stress suite's heat tables.
HEAT_METRICS = (
    ("specificity", "Specificity"),
    ("sensitivity", "Sensitivity"),
    ("roc_auc", "ROC AUC"),
    ("balanced_error", "Balanced error"),
    ("ece", "ECE"),
    ("flip_rate", "Verdicts flipped"),
)

#: (sidecar key, label) of the metrics a card reports, each with its bootstrap 95% interval.
CARD_METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("accuracy", "Accuracy"),
    ("sensitivity", "Sensitivity (recall)"),
    ("specificity", "Specificity"),
    ("ece", "Expected calibration error"),
)

DATA_SOURCE = (
    'Kaggle "Chest X-Ray Images (Pneumonia)" (Kermany, Zhang, Goldbaum 2018, Mendeley Data, '
    "doi:10.17632/rscbjbr9sj.2), licence CC BY 4.0: paediatric (1-5 years) anterior-posterior "
    "chest X-rays from Guangzhou Women and Children's Medical Center"
)


def format_metric(value: float | None) -> str:
    """Format a metric the way cards and pages show it (three decimals, ``n/a`` for None)."""
    return "n/a" if value is None else f"{value:.3f}"


def headline_metrics(
    metadata: ModelMetadata,
) -> dict[str, tuple[float | None, tuple[float, float] | None]]:
    """Return ``{label: (value, (low, high) or None)}`` for the card's metrics."""
    metrics = metadata.metrics
    return {label: (metrics.value(key), metrics.interval(key)) for key, label in CARD_METRICS}


def _metric_rows(metadata: ModelMetadata) -> list[str]:
    rows = ["| metric | value | 95% bootstrap interval |", "|---|---|---|"]
    for label, (value, interval) in headline_metrics(metadata).items():
        span = (
            "n/a"
            if not interval
            else f"{format_metric(interval[0])} - {format_metric(interval[1])}"
        )
        rows.append(f"| {label} | {format_metric(value)} | {span} |")
    return rows


def _recipe_lines(metadata: ModelMetadata) -> list[str]:
    run = metadata.recipe
    if run is None:
        return ["- The training configuration was not stored with this model."]
    model, data, train = run.model, run.data, run.train
    clahe = (
        f" (CLAHE clip limit {model.clahe_clip_limit}, {model.clahe_tiles} x "
        f"{model.clahe_tiles} tiles, the model's first layer)."
    )
    return [
        f"- Backbone: {code_span(model.backbone)}, starting weights {code_span(model.weights)}, "
        f"input {model.image_size} x {model.image_size} px greyscale (repeated to "
        f"3 channels), dropout {model.dropout}.",
        f"- Phase 1: head only, {train.head_epochs} epochs at learning rate "
        f"{train.head_learning_rate}; phase 2: top {train.finetune_layers} backbone "
        f"layers, {train.finetune_epochs} epochs at {train.finetune_learning_rate}, "
        "BatchNormalization frozen; Adam; early stopping on validation AUC (patience "
        f"{train.early_stopping_patience}), best weights kept; learning rate halved on "
        "plateau.",
        f"- Loss: binary cross-entropy, class-weighted: {train.class_weighting}, label "
        f"smoothing {train.label_smoothing}.",
        f"- Augmentation strength {data.augment} (rotation, zoom, shift, contrast, "
        f"brightness, gamma; horizontal flip: {data.horizontal_flip}), acquisition "
        f"augmentation {data.acquisition_augment} (blur/sharpen, down-up sampling, "
        f"JPEG, noise), batch {data.batch_size}, seed {data.seed}.",
        f"- Contrast normalisation: `{model.contrast}`"
        + (clahe if model.contrast == "clahe" else "."),
        f"- Threshold chosen on {train.threshold_scores} validation scores; "
        f"calibration `{train.calibration}`.",
    ]


def stress_rows(metadata: ModelMetadata) -> list[dict[str, Any]]:
    """One row per stress-suite perturbation (clean first) from the sidecar's ``stress``.

    Returns:
        Dicts with ``perturbation``, ``ROC AUC``, ``sensitivity``, ``specificity``, ``ECE`` and
        ``verdicts flipped``; empty when the model was saved without a stress suite.
    """
    suite = metadata.stress
    if suite is None or not suite.perturbations:
        return []
    measured = {"clean": {**suite.clean.values, "flip_rate": 0.0}}
    measured.update({name: m.values for name, m in suite.perturbations.items()})
    return [
        {
            "perturbation": name,
            "ROC AUC": values.get("roc_auc"),
            "sensitivity": values.get("sensitivity"),
            "specificity": values.get("specificity"),
            "ECE": values.get("ece"),
            "verdicts flipped": values.get("flip_rate"),
        }
        for name, values in measured.items()
    ]


def stress_heat_table(suite: StressReport | None, metric: str = "specificity") -> pd.DataFrame:
    """One metric of a stress report (a sidecar's ``stress``) as a family x severity table.

    Args:
        suite: A sidecar's stress report (:attr:`ModelMetadata.stress`), or None.
        metric: A key of each perturbation's metrics, e.g. ``"specificity"``.

    Returns:
        Rows named by family in suite order (:data:`cxr_core.imaging.corruptions.FAMILIES`), columns
        ``"clean"`` then severities ``1`` to ``5`` (floats, NaN where missing). Keys without
        ``@`` (a suite v1 sidecar) are rows of their own with the value under ``1``. Empty
        when there is no suite.
    """
    columns = ["clean", *SEVERITIES]
    if suite is None or not suite.perturbations:
        return pd.DataFrame(columns=columns, dtype=float)
    clean = suite.clean.value(metric)
    rows: dict[str, dict[Any, float]] = {}
    for name, metrics in suite.perturbations.items():
        family, _, severity = str(name).partition("@")
        value = metrics.value(metric)
        row = rows.setdefault(family, {"clean": np.nan if clean is None else float(clean)})
        row[int(severity) if severity.isdigit() else 1] = np.nan if value is None else value
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(float)
    # Suite order (sidecars are written with sorted keys); unknown families after, as found.
    order = [f for f in FAMILIES if f in rows] + [f for f in rows if f not in FAMILIES]
    table = table.loc[order]
    table.index.name = "corruption"
    return table


def _heat_markdown(metadata: ModelMetadata, metric: str, label: str) -> list[str]:
    table = stress_heat_table(metadata.stress, metric)
    if table.empty:
        return []
    header = [label, "clean", *(f"severity {s}" for s in SEVERITIES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for family, row in table.iterrows():
        name = md(str(family)) + (" (held out)" if family in HELD_OUT_FAMILIES else "")
        cells = ["-" if np.isnan(v) else format_metric(float(v)) for v in row.to_numpy()]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return [*lines, ""]


def robustness_lines(metadata: ModelMetadata) -> list[str]:
    """Plain sentences on the stress suite's worst case, calibration and the input check."""
    lines = []
    summary = metadata.stress.summary if metadata.stress is not None else SuiteSummary()
    worst, which = summary.worst, summary.worst_perturbation
    if worst:
        parts = [
            f"{label} {format_metric(worst.get(key))} ({which.get(key)})"
            for key, label in (("roc_auc", "AUC"), ("sensitivity", "sensitivity"))
            + (("specificity", "specificity"), ("ece", "ECE"))
            if key in worst
        ]
        lines.append("Stress suite worst case: " + ", ".join(parts) + ".")
    held = summary.worst_held_out
    if held:
        parts = [
            f"{label} {format_metric(held.get(key))}"
            for key, label in (("roc_auc", "AUC"), ("sensitivity", "sensitivity"))
            + (("specificity", "specificity"), ("ece", "ECE"))
            if key in held
        ]
        lines.append("Worst case over the held-out families only: " + ", ".join(parts) + ".")
    medmnist = summary.medmnist_c
    if medmnist.get("relative_balanced_error") is not None:
        lines.append(
            "MedMNIST-C (13 corruptions x 5 severities): relative balanced error "
            f"{format_metric(medmnist['relative_balanced_error'])}, balanced error "
            f"{format_metric(medmnist.get('balanced_error'))} (both relative to its AlexNet "
            "baseline; below 1 is more robust)."
        )
    calibration = metadata.calibration
    if calibration is not None and calibration.method == "platt":
        before, after = calibration.ece_before or {}, calibration.ece_after or {}
        lines.append(
            f"Calibration (Platt, on {calibration.fitted_on}): ECE clean "
            f"{format_metric(before.get('clean'))} -> {format_metric(after.get('clean'))}, "
            f"stressed {format_metric(before.get('stressed'))} -> "
            f"{format_metric(after.get('stressed'))}."
        )
    gate = metadata.input_gate
    if gate is not None and gate.to_dict():
        lines.append(f"Input check: {gate.method}. {gate.figures or ''}".strip())
    else:
        lines.append("Input check: pixel checks only (this model has no fitted feature check).")
    return lines


def _independent_lines(metadata: ModelMetadata) -> list[str]:
    checks = metadata.independent_checks
    if not checks:
        return []
    title = (
        "## Earlier independent notes" if metadata.independent_records else "## Independent checks"
    )
    return [title, *[f"- {md(check)}" for check in checks], ""]


def render_model_card(metadata: ModelMetadata, notes: str = "", name: str | None = None) -> str:
    """Render a Markdown model card from a model sidecar.

    Args:
        metadata: The checked sidecar, with ``metrics`` holding the validation report and its
            bootstrap intervals.
        notes: Extra Markdown (e.g. why this recipe) placed after the recipe; trusted.
        name: The model's name (default: the sidecar's ``name``, else "model"); escaped.

    Returns:
        The card as Markdown text.
    """
    raw_name = name or metadata.text("name", "model")
    name = md(raw_name)
    text = metadata.text
    metrics = metadata.metrics
    matrix = metrics.confusion
    threshold = metadata.threshold
    versions = ", ".join(f"{md(k)} {md(v)}" for k, v in metadata.versions.items())
    minutes = (metadata.training_seconds or 0) / 60
    lines = [
        f"# Model card: {name}",
        "",
        "> Research demo - **not a medical device**. Not for diagnosis, triage or any clinical "
        "decision.",
        "",
        *headline_markdown(metadata),
        "## Model",
        f"- File: {code_span(raw_name + '.keras')} with its sidecar "
        f"{code_span(raw_name + '.json')}; this card is rendered from it.",
        f"- Backbone {code_span(metadata.backbone)}, input {metadata.image_size} px, output: "
        "probability of PNEUMONIA.",
        *(
            [f"- Ensemble: {md(text('ensemble'))} The recipe below is each member's."]
            if text("ensemble")
            else []
        ),
        f"- Decision threshold **{threshold:.4f}**, rule "
        f"{code_span(text('threshold_rule', 'n/a'))}: "
        f"{md(text('threshold_rule_text'))}",
        "",
        "## Data",
        f"- {DATA_SOURCE}.",
        f"- {md(metadata.validation or '')}.",
        f"- Dataset fingerprint {code_span(text('data_fingerprint', 'n/a'))}. The official test "
        "split was never used for training, model selection or the threshold.",
        "",
        "## Recipe",
        *_recipe_lines(metadata),
        # An ensemble's command is one per member, then the join, separated by " ; ".
        *[f"- Command: {code_span(step)}" for step in text("training_command", "n/a").split(" ; ")],
        "",
        notes.strip(),
        "",
        "## Validation metrics (flattering)",
        f"On the patient-grouped validation split ({metrics.n} images, prevalence "
        f"{format_metric(metrics.value('prevalence'))}) at the stored threshold; intervals from "
        "1,000 seeded bootstrap resamples.",
        "",
        *_metric_rows(metadata),
        "",
        f"Confusion matrix: TN {matrix.get('tn')}, FP {matrix.get('fp')}, FN {matrix.get('fn')}, "
        f"TP {matrix.get('tp')}. Brier score {format_metric(metrics.value('brier'))}.",
        "",
        "Validation carved from train flatters every model on this dataset; the stress suite "
        "below and the independent checks are the better guide to new patients.",
        "",
        "## Stress suite",
        "The same validation images re-scored after each change, at the stored threshold "
        "(`python -m cxr_core stress`). Suite v2: the 13 chest X-ray corruptions of MedMNIST-C "
        "(Di Salvo et al. 2024) with their published parameters, framing (zoom in, crop to "
        "the lung field, shift) and burned-in markers, each at severities 1 to 5 (MedMNIST-C's "
        "0-4). Families marked held out were never used to choose the threshold or the "
        "calibration.",
        "",
        *[line for key, label in HEAT_METRICS[:3] for line in _heat_markdown(metadata, key, label)],
        *([] if stress_rows(metadata) else ["This model was saved without a stress suite."]),
        "",
        *[f"- {md(line)}" for line in robustness_lines(metadata)],
        "",
        *conformal_lines(metadata),
        *population_lines(metadata),
        *site_lines(metadata),
        *_independent_lines(metadata),
        "## Training time and hardware",
        f"- {minutes:.1f} minutes on {md(text('hardware', text('devices', 'n/a')))}.",
        f"- Versions: {versions}.",
        "",
        "## Intended use",
        "Teaching and research: showing how a transfer-learning classifier behaves on chest "
        "X-rays, with its uncertainty and its Grad-CAM evidence. Not for patient care.",
        "",
        "## Limits",
        *[f"- {limit}" for limit in LIMITS],
        "",
    ]
    return "\n".join(lines)


LIMITS = (
    "Paediatric patients (1-5 years) from one centre in China; adults, other hospitals, other "
    "scanners and other populations are untested.",
    "Anterior-posterior views only. The input check refuses most images that are not chest "
    "X-rays (see its figures), but it is a distance in feature space, not a guarantee: a "
    "lateral view or an adult film may pass and still get a meaningless output.",
    "Two classes only: bacterial and viral pneumonia are one class; other findings (effusion, "
    "tuberculosis, COVID-19, devices) were never labelled.",
    "Validation was carved from the training split. Models that score 0.96+ on such a split "
    "often score lower on the official test split, mostly through false positives on NORMAL "
    "images: expect lower specificity on new data.",
    "Shortcuts: in the original files NORMAL images are larger and only pneumonia images are "
    "stored as RGB. Greyscale conversion and a common resize remove both cues here, but other "
    "acquisition differences (exposure, markers, positioning) may still be learnt.",
    "Prevalence shift: 74% pneumonia in train, 62.5% in the official test split; the stored "
    "threshold was chosen for the validation split's prevalence.",
    "Probabilities are calibrated on this dataset's validation split under the stress suite, "
    "not for other populations; read them as scores, not risks.",
)
