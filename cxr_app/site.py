"""The Evaluate page's site sections: UNCERTAIN answers on this set, and fitting the model to it.

Fitting (:func:`cxr_core.evaluation.site_calibrate.calibrate_model`) runs in the page's process: it
scores
the shown images once more and cross-fits two numbers and a threshold, seconds for ~100 images.
The fitted copy is written to ``<runs>/fitted/`` and listed by the model picker as
``NAME - fitted to SITE``; the original model is never modified. Only the administrator may fit
in a shared deployment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from cxr_app import access, catalog, charts, environment, texts
from cxr_core.errors import CXRError
from cxr_core.evaluation.site_fit import MIN_IMAGES, MIN_PER_CLASS
from cxr_core.sidecar import ModelMetadata
from cxr_core.stats.conformal import risk_coverage, set_metrics

__all__ = ["FITTED", "fit_section", "fitted_dir", "uncertainty_section"]

FITTED = "eval_fitted"  # session key: (fitted model path, its site_calibration section)


def fitted_dir() -> Path:
    """Where the app writes fitted models: ``fitted/`` in the runs folder."""
    return environment.runs_dir() / "fitted"


def uncertainty_section(
    meta: ModelMetadata, y: np.ndarray, scores: np.ndarray, threshold: float
) -> None:
    """Coverage of the model's conformal sets on this set and the risk-coverage chart."""
    if meta.conformal is not None:
        metrics = set_metrics(y, meta.conformal.sets(scores, threshold))
        cols = st.columns(3)
        cols[0].metric("Coverage (true class in the set)", f"{metrics['coverage']:.3f}")
        cols[1].metric("UNCERTAIN", f"{metrics['uncertain']:.1%}")
        definite = metrics["definite_accuracy"]
        cols[2].metric("Definite answers right", "-" if definite is None else f"{definite:.3f}")
        st.caption(
            f"The model's {meta.conformal.coverage:.0%} sets, fitted on "
            f"{texts.md(meta.conformal.fitted_on)}, at the slider's threshold. They hold for "
            "images like those; elsewhere, fit the model to the site below."
        )
    else:
        st.caption("This model carries no conformal sets: every answer is definite.")
    try:
        rows = risk_coverage(y, scores, threshold)
    except CXRError:
        st.caption("The risk-coverage view needs at least 4 images of each class.")
        return
    st.plotly_chart(charts.risk_coverage_figure(rows))
    st.caption(
        "Sets fitted on a random half of these images and measured on the other half, at each "
        "target coverage: more coverage, fewer definite answers, and those more often right."
    )


def _before_after(section) -> pd.DataFrame:
    rows = []
    for name, after in section.after.items():
        before = section.before.get(name)
        span = "" if after.low is None else f" ({after.low:.3f}-{after.high:.3f})"
        rows.append({
            "Figure": name.replace("_", " "),
            "Before (original model)": "-" if before is None else f"{before.value:.3f}",
            "After fitting (out-of-fold, 95% CI)": f"{after.value:.3f}{span}",
        })  # fmt: skip
    return pd.DataFrame(rows)


def _fit(entry: catalog.ModelEntry, table: pd.DataFrame, site: str) -> None:
    from cxr_core.evaluation.site_calibrate import calibrate_model, fitted_model_path

    out = fitted_model_path(fitted_dir(), Path(entry.path).stem, site)
    try:
        with st.spinner(f"Fitting to {site}: scoring {len(table)} images and cross-fitting..."):
            path, section = calibrate_model(entry.path, table, out, site)
    except CXRError as error:
        st.session_state[FITTED] = ("", str(error))
        return
    st.session_state[FITTED] = (str(path), section)


def fit_section(
    entry: catalog.ModelEntry, root: str, table: pd.DataFrame, optimistic: bool
) -> None:
    """ "Fit this model to this dataset": the button (administrator only in a shared
    deployment), then the fit's before and after figures side by side."""
    st.caption(
        "Fitting keeps the weights and refits the calibration (Platt scaling), the threshold "
        "(the model's own rule) and the UNCERTAIN sets on these labelled images. Every figure "
        "after fitting is cross-fitted: each image is scored by a fit on the other images."
    )
    if not access.may_administer():
        st.info("Only the administrator may fit models on this server.")
        return
    y = table["label_index"].to_numpy()
    if len(y) < MIN_IMAGES or min((y == 0).sum(), (y == 1).sum()) < MIN_PER_CLASS:
        st.info(
            f"Fitting needs at least {MIN_IMAGES} labelled images with at least "
            f"{MIN_PER_CLASS} of each class; this set has {len(y)}."
        )
        return
    if optimistic:
        st.warning(
            "The model trained or was selected on these images: fitting to them teaches it "
            "nothing about a new site. Pick a split from another hospital."
        )
    site = st.text_input("Site name", Path(root).name or "site", key="fit_site_name").strip()
    if st.button("Fit this model to this dataset", key="fit_site", disabled=not site):
        _fit(entry, table, site)
    done = st.session_state.get(FITTED)
    if not done:
        return
    path, section = done
    if not path:
        st.error(texts.md(section))
        return
    st.success(
        f"Written {texts.md(Path(path).name)}: pick **{texts.md(Path(entry.path).stem)} - "
        f"fitted to {texts.md(section.site)}** in the model picker. "
        f"New threshold {section.threshold:.3f}."
    )
    st.dataframe(_before_after(section), hide_index=True)
