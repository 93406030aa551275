"""The Train page's parts: the sidebar that returns a RunConfig, its defaults, and launching.

:func:`run_config_ui` draws every setting in the sidebar and returns the run they describe,
through the command line's own mapping (:func:`cxr_core.training.run_settings.run_config`).
Each widget's key is the setting's name behind a fixed prefix (:func:`setting_key`:
``image_size`` -> ``t_image_size``), so the widget values map to settings with no table, and
their first values are the library's defaults
(:func:`cxr_core.training.run_settings.default_settings`) with the page's few overrides
(:data:`CPU_QUICK_RUN`, :data:`GPU_RUN`). :func:`training_estimate` is the page's
size-and-duration line; the run monitor is :mod:`cxr_app.train_monitor`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from cxr_app import access, environment, loaders, texts
from cxr_app.state import remember_settings, restore_settings
from cxr_app.train_monitor import MESSAGE, SHOWN_RUN
from cxr_core import data
from cxr_core.backbones import BACKBONES
from cxr_core.config import RunConfig, TrainConfig
from cxr_core.errors import CXRError, JobError
from cxr_core.runs import jobs
from cxr_core.training.run_settings import SETTING_NAMES, default_settings

if TYPE_CHECKING:  # annotations only: the page must not import the device module's code
    from cxr_core.distributed.devices import DeviceSummary

__all__ = [
    "CPU_QUICK_RUN",
    "GPU_RUN",
    "GPU_TRAIN_DEFAULTS",
    "KEY_PREFIX",
    "TRAIN_DEFAULTS",
    "WEIGHTS_FILE",
    "dataset_chosen",
    "run_config_from",
    "run_config_ui",
    "setting_key",
    "train_defaults",
    "training_estimate",
]

SIZES = [64, 96, 128, 160, 192, 224, 256, 320]


# ---------------------------------------------------------------------------------------------
# Settings and estimates

#: Prefix of the Train page's widget keys (also the page's URL parameters).
KEY_PREFIX = "t_"


def setting_key(name: str) -> str:
    """The Train page's widget key of the setting ``name`` (one of
    :data:`cxr_core.training.run_settings.SETTING_NAMES`): ``image_size`` -> ``t_image_size``."""
    return KEY_PREFIX + name


#: Widget keys that are no setting: the run's name, and the weights file when ``weights`` is
#: ``"file"``.
NAME, WEIGHTS_FILE = KEY_PREFIX + "name", KEY_PREFIX + "weights_file"
DATA, WEIGHTS = setting_key("data_root"), setting_key("weights")


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
    values = {setting_key(name): overrides.get(name, library[name]) for name in SETTING_NAMES}
    return {**values, WEIGHTS_FILE: ""}


#: Every setting's widget key and its first value on a CPU (a setting the page draws no widget
#: for keeps it: the library's default).
TRAIN_DEFAULTS: dict[str, Any] = _widget_values(CPU_QUICK_RUN)
#: The widget values that differ on a machine with a GPU.
GPU_TRAIN_DEFAULTS: dict[str, Any] = {
    key: value for key, value in _widget_values(GPU_RUN).items() if value != TRAIN_DEFAULTS[key]
}


def train_defaults(devices: DeviceSummary) -> dict[str, Any]:
    """The Train page's first widget values: :data:`TRAIN_DEFAULTS`, with
    :data:`GPU_TRAIN_DEFAULTS` over them when ``devices``
    (:func:`cxr_app.loaders.device_summary`) has a GPU."""
    return {**TRAIN_DEFAULTS, **(GPU_TRAIN_DEFAULTS if devices.gpus else {})}


def _settings_of(values: Any) -> dict[str, Any]:
    """Setting name -> value of a mapping of widget keys (the inverse of :func:`setting_key`)."""
    return {name: values[setting_key(name)] for name in SETTING_NAMES}


def run_config_from(values: Any) -> Any:
    """The RunConfig of the Train page's widget values (a mapping of ``TRAIN_DEFAULTS`` keys),
    through the command line's own mapping, :func:`cxr_core.training.run_settings.run_config`.

    Raises:
        ConfigError: A value is out of range or the weights file is missing (the message
            names the setting).
    """
    from cxr_core.training.run_settings import run_config

    settings = _settings_of(values)
    if values[WEIGHTS] == "file":
        settings["weights"] = values[WEIGHTS_FILE]
    return run_config(settings)


@st.cache_data(show_spinner=False, max_entries=32)
def _split_sizes(table: pd.DataFrame, data_config: Any) -> tuple[int, int]:
    """Train and validation images of a run's own split (a patient-grouped split of the whole
    train folder takes seconds, so every rerun of the page must not redo it)."""
    train, val, _ = data.resolve_splits(table, data_config)
    return len(train), len(val)


def training_estimate(config: Any, table: pd.DataFrame, runs: list[jobs.Run]) -> str:
    """The size and a rough duration of the run ``config`` would start.

    The images are the run's own (:func:`cxr_core.data.splits.resolve_splits`: the same split, limit
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
            f"{text}: roughly {texts.format_seconds(seconds)} at ~{scaled:.0f} training images/s "
            f"(the speed of run {texts.md(run.name)}), plus ~20 s to start."
        )
    return f"{text}; the first run of this backbone measures the speed for an estimate."


# ---------------------------------------------------------------------------------------------
# Sidebar


def dataset_chosen() -> bool:
    """Whether the sidebar's dataset folder is filled in."""
    return bool(str(st.session_state.get(DATA) or "").strip())


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
        loaders.scan_dataset(config.data_root)  # a bad folder is refused here, not in the run
        access.visitor_quota_check(
            environment.runs_dir(), lambda folder: jobs.read_run(folder).active
        )
        run = jobs.start_run(environment.runs_dir(), s[NAME].strip(), config)
        access.mark_if_visitor(run.path)
    except CXRError as error:
        s[MESSAGE] = ("error", f"Not started: {texts.md(error)}")
        return
    access.remember_own_run(run.name)
    s[MESSAGE] = ("success", f"Run {texts.md(run.name)} started in the background.")
    s[SHOWN_RUN] = str(run.path)
    s[NAME] = _fresh_name()


def _backbone_changed() -> None:
    """Start from ImageNet weights, except for small_cnn, which has none."""
    s = st.session_state
    s[WEIGHTS] = "none" if s[setting_key("backbone")] == "small_cnn" else "imagenet"


def _device_note(devices: DeviceSummary) -> str:
    if not devices.gpus:
        quick = _settings_of(TRAIN_DEFAULTS)
        return (
            f"No GPU visible: quick CPU defaults ({quick['image_size']} px, "
            f"{quick['limit_per_class']} images per class, {quick['head_epochs']} + "
            f"{quick['finetune_epochs']} epochs)."
        )
    memory = [gpu.memory_gb for gpu in devices.gpus if gpu.memory_gb]
    size = f" ({memory[0]:.0f} GB)" if memory else ""
    gpu = _settings_of(train_defaults(devices))
    return (
        f"Training runs on {texts.md(devices.summary)}{size}: defaults of "
        f"{gpu['image_size']} px, batch {gpu['batch_size']}, every image, {gpu['head_epochs']} + "
        f"{gpu['finetune_epochs']} epochs."
    )


def _set_defaults(limits: Any, options: dict[str, list]) -> None:
    """First values (GPU-aware), then every value brought within this session's limits."""
    s = st.session_state
    values = {**train_defaults(loaders.device_summary()), DATA: environment.default_data_root()}
    values[NAME] = _fresh_name()
    for key, value in values.items():  # re-set, so that values survive switching pages
        s[key] = s.get(key, value)
    for key, choices in options.items():
        if s[key] not in choices:
            s[key] = choices[0] if key != setting_key("image_size") else choices[-1]
    for key in (setting_key("head_epochs"), setting_key("finetune_epochs")):
        s[key] = min(s[key], limits.max_epochs or 200)
    cap, limit = limits.max_images_per_class, setting_key("limit_per_class")
    if cap:
        s[limit] = min(s[limit] or cap, cap)


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
    kept = {k: v for k, v in train_defaults(loaders.device_summary()).items() if k != DATA}
    restore_settings(kept)  # the settings of the page before a reload, from its URL
    _set_defaults(
        limits,
        {setting_key("backbone"): backbones, setting_key("image_size"): sizes, WEIGHTS: weights},
    )
    max_epochs = limits.max_epochs or 200
    with st.sidebar:
        st.header("New training run")
        st.caption(_device_note(loaders.device_summary()))
        if not access.may_launch():
            st.info("Training is open to the administrator on this server (sign in below).")
        st.text_input("Run name", key=NAME)
        access.dataset_folder_ui("Dataset folder", DATA, environment.default_data_root())
        # At the top, not under some 25 settings: their values are read when it is clicked.
        st.button("Launch training", type="primary", on_click=_launch, width="stretch",
                  disabled=not access.may_launch())  # fmt: skip
        st.selectbox(
            "Backbone", backbones, key=setting_key("backbone"), on_change=_backbone_changed
        )
        st.caption(BACKBONES[s[setting_key("backbone")]].description)
        st.radio(
            "Starting weights",
            weights,
            key=WEIGHTS,
            horizontal=True,
            help="small_cnn has no ImageNet weights: use none.",
        )
        if s[WEIGHTS] == "file":
            st.text_input("Weights file (.weights.h5)", key=WEIGHTS_FILE)
        st.select_slider("Image size (px)", sizes, key=setting_key("image_size"))
        st.number_input("Epochs, phase 1 (head)", 1, max_epochs, key=setting_key("head_epochs"))
        st.number_input(
            "Epochs, phase 2 (fine-tuning)", 0, max_epochs, key=setting_key("finetune_epochs")
        )
        if s[WEIGHTS] == "none":
            total = s[setting_key("head_epochs")] + s[setting_key("finetune_epochs")]
            st.caption(
                f"Without pretrained weights the network trains in one phase of {total} epochs."
            )
        _more_settings_ui(limits)
    remember_settings(kept)
    config = run_config_from(s)
    limits.check(config)
    return config


def _more_settings_ui(limits: Any) -> None:
    st.select_slider("Batch size", [8, 16, 32, 64, 128], key=setting_key("batch_size"))
    st.select_slider(
        "Learning rate, phase 1",
        [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
        key=setting_key("head_learning_rate"),
    )
    st.select_slider(
        "Learning rate, phase 2",
        [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        key=setting_key("finetune_learning_rate"),
    )
    st.number_input("Layers to fine-tune", 0, 1000, key=setting_key("finetune_layers"))
    st.checkbox("Weight classes by inverse frequency", key=setting_key("class_weighting"))
    st.slider("Augmentation strength (0 = off)", 0.0, 2.0, step=0.25, key=setting_key("augment"))
    st.slider(
        "Acquisition augmentation (blur/sharpen, resampling, JPEG, noise; 0 = off)",
        0.0,
        2.0,
        step=0.25,
        key=setting_key("acquisition_augment"),
    )
    st.radio(
        "Contrast normalisation",
        ["clahe", "none"],
        key=setting_key("contrast"),
        horizontal=True,
        help="CLAHE as the model's first layer evens out exposure between hospitals.",
    )
    st.slider(
        "Validation fraction (patients of train)",
        0.05,
        0.5,
        step=0.05,
        key=setting_key("val_fraction"),
    )
    st.number_input("Seed", 0, 2**31 - 1, key=setting_key("seed"))
    cap = limits.max_images_per_class
    st.number_input(
        "At most N train images per class (0 = all)",
        0 if not cap else 2,
        cap or 100_000,
        step=50,
        key=setting_key("limit_per_class"),
    )
    with st.expander("More settings"):
        st.slider("Dropout", 0.0, 0.8, step=0.05, key=setting_key("dropout"))
        st.number_input(
            "Early-stopping patience (epochs)", 1, 50, key=setting_key("early_stopping_patience")
        )
        st.radio(
            "Threshold rule",
            ["youden", "sensitivity"],
            key=setting_key("threshold_rule"),
            help="youden: best sensitivity + specificity; sensitivity: reach 95%.",
        )
        st.radio(
            "Threshold chosen on",
            ["stressed", "clean"],
            key=setting_key("threshold_scores"),
            help="stressed: validation scores pooled over the stress suite (holds under shift).",
        )
        st.number_input(
            "Stress-suite images",
            20,
            100_000,
            step=50,
            key=setting_key("stress_images"),
            help="Validation images scored under all 85 corruptions while the run finishes; "
            "fewer finish a CPU run sooner, with a noisier stress report.",
        )
        st.radio("Calibration", ["platt", "none"], key=setting_key("calibration"), horizontal=True)
