"""What happens to a trained model before it is saved: calibration, operating point, stress
suite and input check, all from the validation split (never from a test split).

1. Score the validation images clean, and a fixed patient-grouped subset of them
   (:func:`cxr_core.evaluation.stress.suite_subset`, at most ``TrainConfig.stress_images``)
   under every key of the stress suite (:mod:`cxr_core.evaluation.stress`, 85 keys).
2. Fit Platt scaling (``TrainConfig.calibration``) on the subset's clean scores and those of
   the suite's choice families (:data:`cxr_core.imaging.corruptions.CHOICE_FAMILIES`; with
   ``threshold_scores = "clean"``, the clean scores only) and fold it into the model.
3. Choose the threshold with ``TrainConfig.threshold_rule`` on those same scores: pooled
   (``youden``, ``sensitivity``) or key by key (``worst_sensitivity``, ``worst_balanced``,
   :mod:`cxr_core.evaluation.suite_threshold`), so the operating point is one that holds when images
   are blurrier, darker or framed differently. The held-out families are never used to choose.
4. Report the clean metrics and the stress suite at that threshold, and ECE before and after.
5. Fit the "is this a chest X-ray?" gate (:mod:`cxr_core.inference.input_check`) on the train
images' features.

:func:`cxr_core.training.train.train_run` calls :func:`finalize_model` at the end of every run;
``scripts/bundle_model.py --finalize`` applies it to a run trained before it existed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from cxr_core.config import RunConfig
from cxr_core.errors import DataError
from cxr_core.evaluation import stress, suite_threshold
from cxr_core.inference import input_check as gate
from cxr_core.model.build import save_model
from cxr_core.runs.plan import GATE_TRAIN_IMAGES
from cxr_core.stats import metrics as evaluate
from cxr_core.stats.calibration import fit_platt, fold_into_model

__all__ = [
    "Finalized",
    "choose_suite_threshold",
    "finalize_model",
    "finalize_scores",
    "save_finalized",
]


@dataclass(frozen=True, eq=False)
class Finalized:
    """The outcome of :func:`finalize_model`.

    Attributes:
        threshold: Decision threshold on the (calibrated) probability.
        report: Clean validation report (:func:`cxr_core.stats.metrics.evaluation_report`).
        stress: :func:`cxr_core.evaluation.stress.stress_report` at ``threshold``.
        calibration: Sidecar entry: method, fitted map and ECE before and after.
        input_gate: The fitted gate, or None when ``TrainConfig.input_gate`` is off.
    """

    threshold: float
    report: dict[str, Any]
    stress: dict[str, Any]
    calibration: dict[str, Any]
    input_gate: gate.InputGate | None


def _ece_pair(labels: np.ndarray, logits: dict[str, np.ndarray]) -> dict[str, float]:
    pooled_labels, pooled_logits = stress.pooled(labels, logits)
    return {
        "clean": evaluate.expected_calibration_error(labels, stress.sigmoid(logits[stress.CLEAN])),
        "stressed": evaluate.expected_calibration_error(
            pooled_labels, stress.sigmoid(pooled_logits)
        ),
    }


def _calibrate(
    model: keras.Model, config: RunConfig, labels: np.ndarray, logits: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    before = _ece_pair(labels, logits)
    if config.train.calibration == "none":
        return logits, {"method": "none", "ece": before}
    try:
        scaling = fit_platt(*stress.pooled(labels, _fitting_scores(config, logits)))
    except DataError as error:  # e.g. a quick run whose output is still constant
        return logits, {"method": "none", "ece": before, "note": f"not calibrated: {error}"}
    fold_into_model(model, scaling)
    logits = {name: scaling.apply(values) for name, values in logits.items()}
    entry = {
        "method": "platt",
        "scale": scaling.scale,
        "bias": scaling.bias,
        "fitted_on": f"{config.train.threshold_scores} validation scores",
        "folded_into": "logit layer",
        "ece_before": before,
        "ece_after": _ece_pair(labels, logits),
    }
    return logits, entry


def _fitting_scores(config: RunConfig, logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scores calibration and the threshold rule see (``TrainConfig.threshold_scores``):
    clean, plus the suite's choice families when stressed (never the held-out ones)."""
    if config.train.threshold_scores == "stressed":
        return suite_threshold.choice_logits(logits)
    return {stress.CLEAN: logits[stress.CLEAN]}


def choose_suite_threshold(
    config: RunConfig, labels: np.ndarray, logits: dict[str, np.ndarray]
) -> float:
    """The threshold ``config``'s rule picks on the fitting scores of suite ``logits``.

    Args:
        config: Its ``train`` section names the rule, target and which scores.
        labels: ``(n,)`` labels of the suite's images.
        logits: ``{key: (n,) logits}`` with ``"clean"`` (calibrated, if calibrating).

    Returns:
        The threshold on the probability.
    """
    rule, fitting = config.train, _fitting_scores(config, logits)
    if rule.threshold_rule in suite_threshold.SUITE_RULES:
        probabilities = {name: stress.sigmoid(values) for name, values in fitting.items()}
        return suite_threshold.worst_case_threshold(
            labels, probabilities, rule.threshold_rule, rule.target_sensitivity
        )
    pooled_labels, pooled_logits = stress.pooled(labels, fitting)
    return evaluate.choose_threshold(
        pooled_labels,
        stress.sigmoid(pooled_logits),
        rule=rule.threshold_rule,
        target_sensitivity=rule.target_sensitivity,
    )


def _suite_outputs(
    model: keras.Model, val_table: pd.DataFrame, config: RunConfig
) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score the suite on a subset and the rest of validation clean only.

    Returns:
        ``(subset, clean logits of all val_table in its order, suite logits, suite features)``.
    """
    size, batch = config.model.image_size, config.data.batch_size
    subset = stress.suite_subset(val_table, config.train.stress_images, config.data.seed)
    logits, features = stress.stressed_outputs(model, subset, size, batch)
    clean = pd.Series(logits[stress.CLEAN], index=subset.index)
    rest = val_table.drop(index=subset.index)
    if len(rest):
        others = stress.stressed_outputs(model, rest, size, batch, perturbations=())[0]
        clean = pd.concat([clean, pd.Series(others[stress.CLEAN], index=rest.index)])
    return subset, clean.loc[val_table.index].to_numpy(np.float32), logits, features


def finalize_model(
    model: keras.Model,
    config: RunConfig,
    train_table: pd.DataFrame,
    val_table: pd.DataFrame,
    progress: Callable[[str], None] | None = None,
) -> Finalized:
    """Calibrate ``model`` in place and work out its threshold, reports and input check.

    Args:
        model: The trained classifier (best weights loaded).
        config: The run's configuration (threshold rule, calibration, input check, seed).
        train_table: The train images (for the input check).
        val_table: The validation images.
        progress: Called with a short sentence as each step starts.

    Returns:
        A :class:`Finalized`.
    """
    say = progress or (lambda _: None)
    size, batch, rule = config.model.image_size, config.data.batch_size, config.train
    say("scoring validation images under the stress suite")
    subset, clean_logits, logits, features = _suite_outputs(model, val_table, config)
    threshold, report, suite, calibration = finalize_scores(
        model,
        config,
        val_table["label_index"].to_numpy(),
        clean_logits,
        subset["label_index"].to_numpy(),
        logits,
    )
    fitted_gate = None
    if rule.input_gate:
        say("fitting the input check on train features")
        sample = train_table.sample(
            min(len(train_table), GATE_TRAIN_IMAGES), random_state=config.data.seed
        )
        fitted_gate = gate.fit_gate(
            gate.table_features(model, sample, size, batch),
            np.concatenate(list(suite_threshold.choice_logits(features).values())),
        )
    return Finalized(threshold, report, suite, calibration, fitted_gate)


def finalize_scores(
    model: keras.Model,
    config: RunConfig,
    labels: np.ndarray,
    clean_logits: np.ndarray,
    suite_labels: np.ndarray,
    suite_logits: dict[str, np.ndarray],
) -> tuple[float, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Calibrate (folding into ``model``), choose the threshold and report, from scores.

    Args:
        model: The classifier whose logit layer takes the calibration.
        config: Threshold rule, target, scores and calibration to use.
        labels: ``(n,)`` labels of every validation image.
        clean_logits: ``(n,)`` their clean logits.
        suite_labels: ``(m,)`` labels of the suite's subset.
        suite_logits: ``{key: (m,) logits}`` of the subset, with ``"clean"``.

    Returns:
        ``(threshold, clean report, stress report, calibration entry)``.
    """
    logits, calibration = _calibrate(model, config, suite_labels, suite_logits)
    if "scale" in calibration:
        clean_logits = calibration["scale"] * np.asarray(clean_logits) + calibration["bias"]
    threshold = choose_suite_threshold(config, suite_labels, logits)
    clean = stress.sigmoid(clean_logits)
    report = evaluate.evaluation_report(labels, clean, threshold, seed=config.data.seed)
    suite = stress.stress_report(suite_labels, logits, threshold, seed=config.data.seed)
    return threshold, report, suite, calibration


def save_finalized(
    model: keras.Model, path: str | Path, finalized: Finalized, metadata: dict[str, Any]
) -> Path:
    """Save the model, its input check and a sidecar that records what finalizing found.

    Args:
        model: The calibrated classifier.
        path: Destination ``.keras`` path.
        finalized: :func:`finalize_model` output.
        metadata: Everything else the sidecar holds (backbone, image size, run config, ...).

    Returns:
        The model path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {
        "threshold": finalized.threshold,
        "metrics": {k: v for k, v in finalized.report.items() if k != "curves"},
        "stress": finalized.stress,
        "calibration": finalized.calibration,
    }
    if finalized.input_gate is not None:
        extra["input_gate"] = gate.save_gate(finalized.input_gate, gate.gate_path(path))
    return save_model(model, path, {**metadata, **extra})
