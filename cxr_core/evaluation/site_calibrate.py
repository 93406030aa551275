"""Write a copy of a model fitted to a site: ``python -m cxr_core calibrate`` and the app's button.

:func:`calibrate_model` scores the site's labelled images once with the original model (its
logits), cross-fits (:func:`cxr_core.evaluation.site_fit.cross_fit`) for honest figures, fits on
every
image, folds the calibration into a copy's logit layer and saves that copy with a
``site_calibration`` and a ``conformal`` section. The original files are only read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from cxr_core import data
from cxr_core.errors import ConfigError, DataError
from cxr_core.evaluation import site_fit
from cxr_core.inference import input_check as gate
from cxr_core.io import atomic_write
from cxr_core.sidecar import ModelMetadata
from cxr_core.sidecar_sections import SiteCalibration
from cxr_core.stats.calibration import fold_into_model
from cxr_core.stats.conformal import DEFAULT_COVERAGE

__all__ = [
    "SITE_RULES",
    "calibrate_model",
    "fitted_model_path",
    "site_logits",
    "threshold_rule",
]


#: A site's images are scored clean, without the stress suite, so a suite rule becomes its
#: clean counterpart: the same target sensitivity, or Youden's J (the balanced accuracy that
#: ``worst_balanced`` maximises over the suite).
SITE_RULES = {"worst_sensitivity": "sensitivity", "worst_balanced": "youden"}


def threshold_rule(metadata: ModelMetadata) -> tuple[str, float]:
    """The rule and target sensitivity a site fit uses: the original model's own rule, a
    stress-suite rule turned into its clean counterpart (:data:`SITE_RULES`), Youden's J when
    the model does not say."""
    recipe = metadata.recipe
    if recipe is not None:
        rule, target = recipe.train.threshold_rule, recipe.train.target_sensitivity
    else:
        rule, target = metadata.text("threshold_rule", "youden") or "youden", 0.95
    return SITE_RULES.get(rule, rule), target


def site_logits(model, table: pd.DataFrame, image_size: int, batch_size: int = 32) -> np.ndarray:
    """The model's ``logit`` outputs for every image of ``table``, in its order."""
    from cxr_core.evaluation.stress import logit_model

    if table.empty:
        raise DataError("There are no images to fit on.")
    dataset = data.evaluation_dataset(table, image_size, batch_size).map(lambda x, _: x)
    return np.asarray(logit_model(model).predict(dataset, verbose=0), np.float64).reshape(-1)


def fitted_model_path(folder: str | Path, model_name: str, site: str) -> Path:
    """``folder/<model>-fitted-<site>.keras`` with the site reduced to safe characters."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in site).strip("_") or "site"
    return Path(folder) / f"{model_name}-fitted-{safe[:40]}.keras"


def calibrate_model(
    model_path: str | Path,
    table: pd.DataFrame,
    out: str | Path,
    site: str,
    method: str = "platt",
    coverage: float = DEFAULT_COVERAGE,
    folds: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, SiteCalibration]:
    """Fit the model at ``model_path`` to the labelled images of ``table`` and save a copy.

    Args:
        model_path: The original ``.keras`` model (never modified).
        table: The site's labelled images (rows of a :func:`cxr_core.data.tables.scan` table).
        out: Where to write the fitted ``.keras`` (its sidecar and input check beside it).
        site: The site's name.
        method: ``platt`` or ``temperature``.
        coverage: Coverage of the conformal sets.
        folds: Folds of the cross-fitting.
        seed: Seed of the folds and bootstrap.
        progress: Called with a short sentence as each step starts.

    Returns:
        ``(path of the fitted model, its site_calibration section)``.

    Raises:
        DataError: Too few images (see :func:`cxr_core.evaluation.site_fit.check_site_size`).
        ConfigError: ``out`` is the original model, or ``method`` is unknown.
        ModelLoadError: The model cannot be loaded.
    """
    from cxr_core.model.build import load_model, save_model

    say = progress or (lambda _: None)
    model_path, out = Path(model_path), Path(out)
    if out.suffix != ".keras" or out.resolve() == model_path.resolve():
        raise ConfigError(f"--out must be a new .keras file. Received: out={str(out)!r}")
    if method not in site_fit.METHODS:
        raise ConfigError(f"method must be platt or temperature. Received: method={method!r}")
    labels = table["label_index"].to_numpy().astype(int)
    site_fit.check_site_size(labels)
    model, metadata = load_model(model_path)
    rule, target = threshold_rule(metadata)
    say(f"scoring {len(table)} site images")
    logits = site_logits(model, table, metadata.image_size)
    fitter = partial(
        site_fit.fit_site, rule=rule, target_sensitivity=target, method=method, coverage=coverage
    )
    say("cross-fitting by patient")
    crossed = site_fit.cross_fit(
        labels, logits, table["patient_id"].to_numpy(), folds, seed, fitter
    )
    original_p = expit(logits)
    original_sets = (
        metadata.conformal.sets(original_p, metadata.threshold) if metadata.conformal else None
    )
    before = site_fit.site_figures(
        labels, original_p, (original_p >= metadata.threshold).astype(int), original_sets, seed=seed
    )
    after = site_fit.site_figures(
        labels, crossed.probabilities, crossed.verdicts, crossed.sets, seed=seed
    )
    fitted = fitter(labels, logits, fitted_on=f"{len(labels)} images of site {site}")
    section = SiteCalibration(
        site=site,
        n_normal=int((labels == 0).sum()),
        n_pneumonia=int((labels == 1).sum()),
        prevalence=float(labels.mean()),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        data_fingerprint=data.fingerprint(table),
        method=method,
        scale=fitted.scaling.scale,
        bias=fitted.scaling.bias,
        threshold=fitted.threshold,
        original_model=model_path.name,
        original_threshold=metadata.threshold,
        folds=crossed.folds,
        before=before,
        after=after,
    )
    say("writing the fitted model")
    fold_into_model(model, fitted.scaling)
    sidecar = metadata.to_dict()
    sidecar.update(
        name=f"{metadata.text('name', model_path.stem)} - fitted to {site}",
        threshold=fitted.threshold,
        conformal=fitted.conformal.to_dict(),
        site_calibration=section.to_dict(),
    )
    if metadata.input_gate is not None:
        source = gate.gate_path(model_path)
        atomic_write(gate.gate_path(out), lambda temporary: shutil.copyfile(source, temporary))
        sidecar["input_gate"] = {**sidecar["input_gate"], "file": gate.gate_path(out).name}
    save_model(model, out, sidecar)
    return out, section
