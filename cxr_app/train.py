"""The Train page's parts: the sidebar that returns a RunConfig, launching, and the run monitor.

:func:`run_config_ui` draws every setting in the sidebar and returns the run they describe,
through the command line's own mapping (:func:`cxr_core.training.run_settings.run_config`).
:func:`monitor_ui` shows a run from its folder's files only (no TensorFlow, no dataset scan),
so a reloaded page shows the last known state at once. :func:`training_estimate` and
:func:`runs_table` are the page's size-and-duration line and its table of past runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from cxr_app import access, charts, models
from cxr_app import support as app
from cxr_app.state import remember_settings, restore_settings
from cxr_core import data
from cxr_core.backbones import BACKBONES
from cxr_core.config import RunConfig, TrainConfig
from cxr_core.errors import CXRError, JobError
from cxr_core.runs import jobs
from cxr_core.runs.files import RunState
from cxr_core.runs.progress import monitor_view
from cxr_core.training.run_settings import default_settings

__all__ = [
    "CPU_QUICK_RUN",
    "GPU_RUN",
    "GPU_TRAIN_DEFAULTS",
    "MESSAGE",
    "SHOWN_RUN",
    "TRAIN_DEFAULTS",
    "TRAIN_SETTINGS",
    "dataset_chosen",
    "monitor_ui",
    "run_config_from",
    "run_config_ui",
    "runs_table",
    "show_message",
    "train_defaults",
    "training_estimate",
]

SHOWN_RUN, MESSAGE, WAS_ACTIVE = "train_shown_run", "train_message", "train_was_active"
SIZES = [64, 96, 128, 160, 192, 224, 256, 320]


# ---------------------------------------------------------------------------------------------
# Settings and estimates

#: Train page widget keys -> the settings of :func:`cxr_core.training.run_settings.run_config`.
TRAIN_SETTINGS = {
    "t_data": "data_root", "t_backbone": "backbone", "t_size": "image_size",
    "t_dropout": "dropout", "t_contrast": "contrast", "t_head_epochs": "head_epochs",
    "t_finetune_epochs": "finetune_epochs", "t_batch": "batch_size",
    "t_head_lr": "head_learning_rate", "t_finetune_lr": "finetune_learning_rate",
    "t_layers": "finetune_layers", "t_class_weights": "class_weighting", "t_augment": "augment",
    "t_acquisition": "acquisition_augment", "t_val_fraction": "val_fraction", "t_seed": "seed",
    "t_limit": "limit_per_class", "t_patience": "early_stopping_patience",
    "t_rule": "threshold_rule", "t_threshold_scores": "threshold_scores",
    "t_calibration": "calibration",
}  # fmt: skip


#: What the Train page changes from the library's defaults
#: (:func:`cxr_core.training.run_settings.default_settings`, the dataclasses' own) for a run that
#: finishes in minutes on a CPU. Every other widget starts at the library's default.
CPU_QUICK_RUN: dict[str, Any] = {
    "image_size": 128, "head_epochs": 1, "finetune_epochs": 1, "limit_per_class": 300,
}  # fmt: skip
#: The same where TensorFlow sees a GPU: the library's defaults, every image, batches of 64.
GPU_RUN: dict[str, Any] = {
    "batch_size": 64, "limit_per_class": 0, "finetune_epochs": TrainConfig.finetune_epochs,
}  # fmt: skip


def _widget_values(overrides: dict[str, Any]) -> dict[str, Any]:
    """Widget key -> first value: the library's default for each setting, then ``overrides``."""
    library = {**default_settings(), "data_root": ""}
    values = {key: overrides.get(name, library[name]) for key, name in TRAIN_SETTINGS.items()}
    return {**values, "t_weights": library["weights"], "t_weights_file": ""}


#: Train page widget keys and their first values on a CPU.
TRAIN_DEFAULTS: dict[str, Any] = _widget_values(CPU_QUICK_RUN)
#: The widget values that differ on a machine with a GPU.
GPU_TRAIN_DEFAULTS: dict[str, Any] = {
    key: value for key, value in _widget_values(GPU_RUN).items() if value != TRAIN_DEFAULTS[key]
}


def train_defaults(devices: dict[str, Any]) -> dict[str, Any]:
    """The Train page's first widget values: :data:`TRAIN_DEFAULTS`, with
    :data:`GPU_TRAIN_DEFAULTS` over them when ``devices``
    (:func:`cxr_app.support.device_summary`) has a GPU."""
    return {**TRAIN_DEFAULTS, **(GPU_TRAIN_DEFAULTS if devices.get("gpus") else {})}


def run_config_from(values: Any) -> Any:
    """The RunConfig of the Train page's widget values (a mapping of ``TRAIN_DEFAULTS`` keys),
    through the command line's own mapping, :func:`cxr_core.training.run_settings.run_config`.

    Raises:
        ConfigError: A value is out of range or the weights file is missing (the message
            names the setting).
    """
    from cxr_core.training.run_settings import run_config

    settings = {name: values[key] for key, name in TRAIN_SETTINGS.items()}
    file = values["t_weights"] == "file"
    settings["weights"] = values["t_weights_file"] if file else values["t_weights"]
    return run_config(settings)


@st.cache_data(show_spinner=False, max_entries=32)
def _split_sizes(table: pd.DataFrame, data_config: Any) -> tuple[int, int]:
    """Train and validation images of a run's own split (a patient-grouped split of the whole
    train folder takes seconds, so every rerun of the page must not redo it)."""
    train, val, _ = data.resolve_splits(table, data_config)
    return len(train), len(val)


def training_estimate(config: Any, table: pd.DataFrame, runs: list[jobs.Run]) -> str:
    """The size and a rough duration of the run ``config`` would start.

    The images are the run's own (:func:`cxr_core.data.tables.resolve_splits`: the same split, limit
    and seed). The training speed of the newest run of the same backbone, scaled by the ratio
    of image areas, gives the time of training, validation and finishing
    (:func:`cxr_core.runs.progress.remaining_seconds`); without such a run only the size is given.

    Raises:
        DataError: The dataset cannot train (no train split, a class missing).
    """
    from cxr_core.runs.plan import run_workload
    from cxr_core.runs.progress import remaining_seconds

    n_train, n_val = _split_sizes(table, config.data)
    work = run_workload(config, n_train, n_val)
    text = f"{n_train} training images x {work.total_epochs} epochs, {n_val} validation images"
    for run in runs:
        rate = run.status.images_per_second
        if run.config is None or run.config.model.backbone != config.model.backbone or not rate:
            continue
        scaled = rate * (run.config.model.image_size / config.model.image_size) ** 2
        seconds = remaining_seconds(work, 1, 0, scaled)
        return (
            f"{text}: roughly {app.format_seconds(seconds)} at ~{scaled:.0f} training images/s "
            f"(the speed of run {app.md(run.name)}), plus ~20 s to start."
        )
    return f"{text}; the first run of this backbone measures the speed for an estimate."


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


# ---------------------------------------------------------------------------------------------
# Sidebar


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
        config = run_config_from(s)
        if config.model.weights not in ("imagenet", "none") and not access.may_administer():
            raise JobError("A weights file needs the administrator password.")
        access.training_limits().check(config)
        app.scan_dataset(config.data_root)  # a bad folder is refused here, not in the run
        access.visitor_quota_check(app.runs_dir(), lambda folder: jobs.read_run(folder).active)
        run = jobs.start_run(app.runs_dir(), s.t_name.strip(), config)
        access.mark_if_visitor(run.path)
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
        quick = TRAIN_DEFAULTS
        return (
            f"No GPU visible: quick CPU defaults ({quick['t_size']} px, {quick['t_limit']} images "
            f"per class, {quick['t_head_epochs']} + {quick['t_finetune_epochs']} epochs)."
        )
    memory = [gpu.get("memory_gb") for gpu in devices["gpus"] if gpu.get("memory_gb")]
    size = f" ({memory[0]:.0f} GB)" if memory else ""
    gpu = train_defaults(devices)
    return (
        f"Training runs on {app.md(devices.get('summary', 'a GPU'))}{size}: defaults of "
        f"{gpu['t_size']} px, batch {gpu['t_batch']}, every image, {gpu['t_head_epochs']} + "
        f"{gpu['t_finetune_epochs']} epochs."
    )


def _set_defaults(limits: Any, options: dict[str, list]) -> None:
    """First values (GPU-aware), then every value brought within this session's limits."""
    s = st.session_state
    values = {**train_defaults(app.device_summary()), "t_data": app.default_data_root()}
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
    kept = {k: v for k, v in train_defaults(app.device_summary()).items() if k != "t_data"}
    restore_settings(kept)  # the settings of the page before a reload, from its URL
    _set_defaults(limits, {"t_backbone": backbones, "t_size": sizes, "t_weights": weights})
    max_epochs = limits.max_epochs or 200
    with st.sidebar:
        st.header("New training run")
        st.caption(_device_note(app.device_summary()))
        if not access.may_launch():
            st.info("Training is open to the administrator on this server (sign in below).")
        st.text_input("Run name", key="t_name")
        access.dataset_folder_ui("Dataset folder", "t_data", app.default_data_root())
        # At the top, not under some 25 settings: their values are read when it is clicked.
        st.button("Launch training", type="primary", on_click=_launch, width="stretch",
                  disabled=not access.may_launch())  # fmt: skip
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
    remember_settings(kept)
    config = run_config_from(s)
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
        said = f"Run {app.md(run.name)} resumed in the background from its last finished epoch."
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
