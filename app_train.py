"""The Train page's parts: the sidebar that returns a RunConfig, launching, and the run monitor.

:func:`run_config_ui` draws every setting in the sidebar and returns the run they describe,
through the command line's own mapping (:func:`cxr_core.run_settings.run_config`).
:func:`monitor_ui` shows a run from its folder's files only (no TensorFlow, no dataset scan),
so a reloaded page shows the last known state at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

import app_access as access
import app_charts as charts
import app_support as app
from cxr_core import jobs
from cxr_core.config import BACKBONES, RunConfig
from cxr_core.errors import CXRError, JobError
from cxr_core.progress import monitor_view
from cxr_core.runs import RunState

__all__ = [
    "MESSAGE",
    "SHOWN_RUN",
    "dataset_chosen",
    "monitor_ui",
    "run_config_ui",
    "show_message",
]

SHOWN_RUN, MESSAGE, WAS_ACTIVE = "train_shown_run", "train_message", "train_was_active"
SIZES = [64, 96, 128, 160, 192, 224, 256, 320]


def show_message() -> None:
    """Show (once) what the last launch, resume or cancel said."""
    if MESSAGE in st.session_state:
        kind, text = st.session_state.pop(MESSAGE)
        (st.success if kind == "success" else st.error)(text)


def dataset_chosen() -> bool:
    """Whether the sidebar's dataset folder is filled in."""
    return bool(str(st.session_state.get("t_data") or "").strip())


def _fresh_name() -> str:
    return f"run-{datetime.now():%Y%m%d-%H%M%S}"


def _launch() -> None:
    """Launch button callback: start the run, remember what to say, pick a fresh name."""
    s = st.session_state
    try:
        if not access.may_launch():
            raise JobError("Launching training needs the administrator password.")
        config = app.run_config_from(s)
        if config.model.weights not in ("imagenet", "none") and not access.may_administer():
            raise JobError("A weights file needs the administrator password.")
        access.training_limits().check(config)
        app.scan_dataset(config.data_root)  # a bad folder is refused here, not in the run
        run = jobs.start_run(app.runs_dir(), s.t_name.strip(), config)
    except CXRError as error:
        s[MESSAGE] = ("error", f"Not started: {app.md(error)}")
        return
    access.remember_own_run(run.name)
    s[MESSAGE] = ("success", f"Run {app.md(run.name)} started in the background.")
    s[SHOWN_RUN] = str(run.path)
    s.t_name = _fresh_name()


def _backbone_changed() -> None:
    """Start from ImageNet weights, except for small_cnn, which has none."""
    s = st.session_state
    s.t_weights = "none" if s.t_backbone == "small_cnn" else "imagenet"


def _device_note(devices: dict[str, Any]) -> str:
    if not devices.get("gpus"):
        return "No GPU visible: quick CPU defaults (128 px, 300 images per class, 1 + 1 epochs)."
    memory = [gpu.get("memory_gb") for gpu in devices["gpus"] if gpu.get("memory_gb")]
    size = f" ({memory[0]:.0f} GB)" if memory else ""
    return (
        f"Training runs on {app.md(devices.get('summary', 'a GPU'))}{size}: defaults of "
        "224 px, batch 64, every image, 2 + 4 epochs."
    )


def _set_defaults(limits: Any, options: dict[str, list]) -> None:
    """First values (GPU-aware), then every value brought within this session's limits."""
    s = st.session_state
    values = {**app.train_defaults(app.device_summary()), "t_data": app.default_data_root()}
    values["t_name"] = _fresh_name()
    for key, value in values.items():  # re-set, so that values survive switching pages
        s[key] = s.get(key, value)
    for key, choices in options.items():
        if s[key] not in choices:
            s[key] = choices[0] if key != "t_size" else choices[-1]
    for key in ("t_head_epochs", "t_finetune_epochs"):
        s[key] = min(s[key], limits.max_epochs or 200)
    if limits.max_images_per_class:
        s.t_limit = min(s.t_limit or limits.max_images_per_class, limits.max_images_per_class)


def run_config_ui() -> RunConfig:
    """Every training setting in the sidebar, and the Launch button; returns their RunConfig.

    Raises:
        ConfigError: The settings cannot make a run (no dataset folder, a value out of range,
            a missing weights file, beyond this session's limits); the message says which.
    """
    s, limits = st.session_state, access.training_limits()
    backbones = [b for b in BACKBONES if limits.backbones is None or b in limits.backbones]
    sizes = [x for x in SIZES if limits.max_image_size is None or x <= limits.max_image_size]
    weights = ["imagenet", "none", "file"] if access.may_administer() else ["imagenet", "none"]
    _set_defaults(limits, {"t_backbone": backbones, "t_size": sizes, "t_weights": weights})
    max_epochs = limits.max_epochs or 200
    with st.sidebar:
        st.header("New training run")
        st.caption(_device_note(app.device_summary()))
        if not access.may_launch():
            st.info("Training is open to the administrator on this server (sign in below).")
        st.text_input("Run name", key="t_name")
        access.dataset_folder_ui("Dataset folder", "t_data", app.default_data_root())
        st.selectbox("Backbone", backbones, key="t_backbone", on_change=_backbone_changed)
        st.caption(BACKBONES[s.t_backbone].description)
        st.radio(
            "Starting weights",
            weights,
            key="t_weights",
            horizontal=True,
            help="small_cnn has no ImageNet weights: use none.",
        )
        if s.t_weights == "file":
            st.text_input("Weights file (.weights.h5)", key="t_weights_file")
        st.select_slider("Image size (px)", sizes, key="t_size")
        st.number_input("Epochs, phase 1 (head)", 1, max_epochs, key="t_head_epochs")
        st.number_input("Epochs, phase 2 (fine-tuning)", 0, max_epochs, key="t_finetune_epochs")
        if s.t_weights == "none":
            total = s.t_head_epochs + s.t_finetune_epochs
            st.caption(
                f"Without pretrained weights the network trains in one phase of {total} epochs."
            )
        _more_settings_ui(limits)
        st.button(
            "Launch training",
            type="primary",
            on_click=_launch,
            width="stretch",
            disabled=not access.may_launch(),
        )
    config = app.run_config_from(s)
    limits.check(config)
    return config


def _more_settings_ui(limits: Any) -> None:
    st.select_slider("Batch size", [8, 16, 32, 64, 128], key="t_batch")
    st.select_slider("Learning rate, phase 1", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], key="t_head_lr")
    st.select_slider("Learning rate, phase 2", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], key="t_finetune_lr")
    st.number_input("Layers to fine-tune", 0, 1000, key="t_layers")
    st.checkbox("Weight classes by inverse frequency", key="t_class_weights")
    st.slider("Augmentation strength (0 = off)", 0.0, 2.0, step=0.25, key="t_augment")
    st.slider(
        "Acquisition augmentation (blur/sharpen, resampling, JPEG, noise; 0 = off)",
        0.0,
        2.0,
        step=0.25,
        key="t_acquisition",
    )
    st.radio(
        "Contrast normalisation",
        ["clahe", "none"],
        key="t_contrast",
        horizontal=True,
        help="CLAHE as the model's first layer evens out exposure between hospitals.",
    )
    st.slider("Validation fraction (patients of train)", 0.05, 0.5, step=0.05, key="t_val_fraction")
    st.number_input("Seed", 0, 2**31 - 1, key="t_seed")
    cap = limits.max_images_per_class
    st.number_input(
        "At most N train images per class (0 = all)",
        0 if not cap else 2,
        cap or 100_000,
        step=50,
        key="t_limit",
    )
    with st.expander("More settings"):
        st.slider("Dropout", 0.0, 0.8, step=0.05, key="t_dropout")
        st.number_input("Early-stopping patience (epochs)", 1, 50, key="t_patience")
        st.radio(
            "Threshold rule",
            ["youden", "sensitivity"],
            key="t_rule",
            help="youden: best sensitivity + specificity; sensitivity: reach 95%.",
        )
        st.radio(
            "Threshold chosen on",
            ["stressed", "clean"],
            key="t_threshold_scores",
            help="stressed: validation scores pooled over the stress suite (holds under shift).",
        )
        st.radio("Calibration", ["platt", "none"], key="t_calibration", horizontal=True)


# ---------------------------------------------------------------------------------------------
# Monitor


def _act(action: Any, run: jobs.Run, said: str) -> None:
    """Cancel or resume button callback; a refusal is shown, never raised."""
    try:
        action(run.path)
    except CXRError as error:
        st.session_state[MESSAGE] = ("error", app.md(error))
        return
    if said:
        st.session_state[MESSAGE] = ("success", said)


def _time_left(seconds: float | None) -> str:
    if seconds is None:
        return "measuring..."
    return app.format_seconds(seconds) if seconds >= 1 else "any moment"


def _show_active(run: jobs.Run, view: Any) -> None:
    st.progress(view.fraction or 0.0)
    speed, left, device = st.columns(3)
    rate = run.status.images_per_second
    speed.metric("Images/s (training)", f"{rate:.1f}" if rate else "measuring...")
    left.metric("Time left (estimate)", _time_left(view.seconds_left))
    device.metric("Device", app.md(run.status.device or "-"))
    if access.may_cancel(run.name) and st.button("Cancel run"):
        _act(jobs.cancel_run, run, "")
        st.info("Stopping within a few seconds...")


def _show_outcome(run: jobs.Run) -> None:
    status, state = run.status, run.state
    if state == RunState.FAILED:
        st.error(f"The run failed: {app.md(status.error or 'no message')}")
    elif state == RunState.CANCELLED:
        st.warning("The run was cancelled. Resume it here or with:")
        st.code(run.resume_command, language="bash")
    elif state == RunState.FINISHED and status.summary is not None:
        metrics, threshold = status.summary.metrics, status.summary.threshold or 0.0
        st.success(
            f"Finished: validation AUC {metrics.value('roc_auc') or 0:.3f}, accuracy "
            f"{metrics.value('accuracy') or 0:.3f} at threshold {threshold:.3f}."
        )
        st.button(
            "Use this model", on_click=app.set_active_model, args=(str(run.path / "model.keras"),)
        )
    if state in (RunState.CANCELLED, RunState.FAILED) and _may_resume(run):
        said = f"Run {app.md(run.name)} resumed in the background from its last finished epoch."
        st.button("Resume run", type="primary", on_click=_act, args=(jobs.resume_run, run, said))


def _may_resume(run: jobs.Run) -> bool:
    """Administrators (or anyone in the open mode); a visitor who may train, their own runs."""
    return access.may_administer() or (access.may_launch() and access.may_cancel(run.name))


def _show_run(path: str) -> None:
    """State, progress, speed, curves and outcome of one run, read from its folder."""
    run = jobs.read_run(path)
    view = monitor_view(run.status)
    st.markdown(f"**{app.md(run.name)}**: {app.md(view.headline)}")
    if run.problem:
        st.error(f"This run's files cannot be read: {app.md(run.problem)}")
    elif run.active:
        _show_active(run, view)
    else:
        _show_outcome(run)
    if run.status.validation:
        st.caption(
            f"Data: {app.md(run.status.validation)}. Device: {app.md(run.status.device or '-')}"
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
