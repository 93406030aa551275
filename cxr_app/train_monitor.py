"""The Train page's run monitor: the chosen run, live while it trains, and the table of past runs.

:func:`monitor_ui` shows a run from its folder's files only (no TensorFlow, no dataset scan),
so a reloaded page shows the last known state at once; cancelling, resuming and "Use this
model" are its buttons. :func:`runs_table` is the page's table of past runs and
:func:`show_message` what the last launch, resume or cancel said.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cxr_app import access, charts, models, texts
from cxr_core.errors import CXRError
from cxr_core.runs import jobs
from cxr_core.runs.files import RunState
from cxr_core.runs.progress import monitor_view

__all__ = ["MESSAGE", "SHOWN_RUN", "finished_line", "monitor_ui", "runs_table", "show_message"]

#: Session keys: the run the monitor shows; what the last launch, resume or cancel said.
SHOWN_RUN, MESSAGE, WAS_ACTIVE = "train_shown_run", "train_message", "train_was_active"


def show_message() -> None:
    """Show (once) what the last launch, resume or cancel said."""
    if MESSAGE in st.session_state:
        kind, text = st.session_state.pop(MESSAGE)
        (st.success if kind == "success" else st.error)(text)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def runs_table(runs: list[jobs.Run]) -> pd.DataFrame:
    """One row per run (newest first), as text with no empty cell: its state as the monitor
    says it, settings, validation metrics and when it first started."""
    rows = []
    for run in runs:
        model = run.config.model if run.config else None
        summary = run.status.summary
        metrics = summary.metrics if summary else None
        values = {
            name: metrics.value(key) if metrics else None
            for key, name in (("roc_auc", "val AUC"), ("accuracy", "accuracy"),
                              ("sensitivity", "sensitivity"), ("specificity", "specificity"))
        }  # fmt: skip
        rows.append(
            {
                "run": run.name,
                # What the monitor says ("phase 1 (head): epoch 2 of 3"), not the raw state.
                "state": monitor_view(run.status).headline.split(",")[0]
                if run.active
                else str(run.state),
                "backbone": model.backbone if model else "-",
                "image size": str(model.image_size) if model else "-",
                "epochs": str(len(run.history)),
                **{name: _number(value) for name, value in values.items()},
                "threshold": _number(summary.threshold if summary else None),
                "started": (run.status.started_at or "-").replace("T", " ")[:16],
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _act(action: Any, run: jobs.Run, said: str) -> None:
    """Cancel or resume button callback; a refusal is shown, never raised."""
    try:
        action(run.path)
    except CXRError as error:
        st.session_state[MESSAGE] = ("error", texts.md(error))
        return
    if said:
        st.session_state[MESSAGE] = ("success", said)


def _time_left(seconds: float | None) -> str:
    if seconds is None:
        return "measuring..."
    return texts.format_seconds(seconds) if seconds >= 1 else "any moment"


def _show_active(run: jobs.Run, view: Any) -> None:
    st.progress(view.fraction or 0.0)
    speed, left, device = st.columns(3)
    rate = run.status.images_per_second
    speed.metric("Images/s (training)", f"{rate:.1f}" if rate else "measuring...")
    left.metric("Time left (estimate)", _time_left(view.seconds_left))
    device.metric("Device", texts.md(run.status.device or "-"))
    if access.may_cancel(run.name) and st.button("Cancel run"):
        _act(jobs.cancel_run, run, "")
        st.info("Stopping within a few seconds...")


def _show_outcome(run: jobs.Run) -> None:
    status, state = run.status, run.state
    if state == RunState.FAILED:
        st.error(f"The run failed: {texts.md(status.error or 'no message')}")
    elif state == RunState.CANCELLED:
        if access.may_administer():  # a visitor never sees the server's folders
            st.warning("The run was cancelled. Resume it here or with:")
            st.code(run.resume_command, language="bash")
        else:
            st.warning("The run was cancelled.")
    elif state == RunState.FINISHED and status.summary is not None:
        metrics, threshold = status.summary.metrics, status.summary.threshold
        st.success(f"Finished: {finished_line(metrics, threshold)}")
        models.use_model_ui(str(run.path / "model.keras"))
    if state in (RunState.CANCELLED, RunState.FAILED) and _may_resume(run):
        said = f"Run {texts.md(run.name)} resumed in the background from its last finished epoch."
        st.button("Resume run", type="primary", on_click=_act, args=(jobs.resume_run, run, said))


def finished_line(metrics: Any, threshold: float | None) -> str:
    """ "validation AUC 0.912, accuracy 0.850 at threshold 0.420", leaving out what the run
    did not measure (never a made-up 0.000)."""
    parts = [
        f"{label} {value:.3f}"
        for label, key in (("validation AUC", "roc_auc"), ("accuracy", "accuracy"))
        if (value := metrics.value(key)) is not None
    ]
    text = ", ".join(parts) or "no validation metrics recorded"
    return text + (f" at threshold {threshold:.3f}." if threshold is not None else ".")


def _may_resume(run: jobs.Run) -> bool:
    """Administrators (or anyone in the open mode); a visitor who may train, their own runs."""
    return access.may_administer() or (access.may_launch() and access.may_cancel(run.name))


def _show_run(path: str) -> None:
    """State, progress, speed, curves and outcome of one run, read from its folder."""
    run = jobs.read_run(path)
    view = monitor_view(run.status)
    st.markdown(f"**{texts.md(run.name)}**: {texts.md(view.headline)}")
    if run.problem:
        st.error(f"This run's files cannot be read: {texts.md(run.problem)}")
    elif run.active:
        _show_active(run, view)
    else:
        _show_outcome(run)
    if run.status.validation:
        st.caption(
            f"Data: {texts.md(run.status.validation)}. Device: {texts.md(run.status.device or '-')}"
        )
    if run.history:
        st.plotly_chart(charts.history_figure(run.history))
    elif not run.problem:
        st.caption("Curves appear after the first epoch.")
    s = st.session_state
    if not run.active and s.get(WAS_ACTIVE) == path:
        s.pop(WAS_ACTIVE)
        st.rerun()  # the run ended: refresh the page (runs table, model list)
    if run.active:
        s[WAS_ACTIVE] = path


def monitor_ui(runs: list[jobs.Run]) -> None:
    """A run picker (the active run first chosen) and the chosen run, refreshed every 2 s
    while it is active."""
    if not runs:
        st.info("No runs yet: set up a run in the sidebar and press Launch training.")
        return
    s = st.session_state
    # Names only: a keyed selectbox keeps the labels it first showed, so a state in them goes
    # stale; the state is shown below the picker instead.
    paths = {str(run.path): run.name for run in runs}
    active = next((run for run in runs if run.active), None)
    if s.get(SHOWN_RUN) not in paths:
        s[SHOWN_RUN] = str(active.path) if active else str(runs[0].path)
    shown = st.selectbox("Run", list(paths), format_func=paths.get, key=SHOWN_RUN)
    if next(run for run in runs if str(run.path) == shown).active:
        st.fragment(run_every=2)(_show_run)(shown)
    else:
        _show_run(shown)
