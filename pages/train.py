"""Train: set up a run in the sidebar, launch it in the background, watch it live."""

from datetime import datetime

import streamlit as st

import app_access as access
import app_charts as charts
import app_nav
import app_support as app
from cxr_core import jobs
from cxr_core.config import BACKBONES
from cxr_core.errors import CXRError, JobError
from cxr_core.runs import RunState

app_nav.ensure_app_navigation()

SHOWN_RUN, MESSAGE, WAS_ACTIVE = "train_shown_run", "train_message", "train_was_active"
SIZES = [64, 96, 128, 160, 192, 224, 256, 320]
s = st.session_state
limits = access.training_limits()
defaults = {**app.TRAIN_DEFAULTS, "t_data": app.default_data_root()}
defaults["t_name"] = f"run-{datetime.now():%Y%m%d-%H%M%S}"
for key, value in defaults.items():  # re-set, so that values survive switching pages
    s[key] = s.get(key, value)


def launch() -> None:
    """Launch button callback: start the run, remember what to say, pick a fresh name."""
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
    s.t_name = f"run-{datetime.now():%Y%m%d-%H%M%S}"


def backbone_changed() -> None:
    """Start from ImageNet weights, except for small_cnn, which has none."""
    s.t_weights = "none" if s.t_backbone == "small_cnn" else "imagenet"


backbones = [b for b in BACKBONES if limits.backbones is None or b in limits.backbones]
sizes = [size for size in SIZES if limits.max_image_size is None or size <= limits.max_image_size]
weights_options = ["imagenet", "none", "file"] if access.may_administer() else ["imagenet", "none"]
for key, options in (("t_backbone", backbones), ("t_size", sizes), ("t_weights", weights_options)):
    if s[key] not in options:
        s[key] = options[0] if key != "t_size" else options[-1]
max_epochs = limits.max_epochs or 200
for key in ("t_head_epochs", "t_finetune_epochs"):
    s[key] = min(s[key], max_epochs)
if limits.max_images_per_class:
    s.t_limit = min(s.t_limit or limits.max_images_per_class, limits.max_images_per_class)

with st.sidebar:
    st.header("New training run")
    if not access.may_launch():
        st.info("Training is open to the administrator on this server (sign in below).")
    st.text_input("Run name", key="t_name")
    access.dataset_folder_ui("Dataset folder", "t_data", app.default_data_root())
    st.selectbox("Backbone", backbones, key="t_backbone", on_change=backbone_changed)
    st.caption(BACKBONES[s.t_backbone].description)
    st.radio(
        "Starting weights",
        weights_options,
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
        st.caption(f"Without pretrained weights the network trains in one phase of {total} epochs.")
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
    st.number_input(
        "At most N train images per class (0 = all)",
        0 if not limits.max_images_per_class else 2,
        limits.max_images_per_class or 100_000,
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
    st.button(
        "Launch training",
        type="primary",
        on_click=launch,
        width="stretch",
        disabled=not access.may_launch(),
    )

st.title("Train")
st.caption("Runs train in a separate process: you can leave this page or reload it.")
if MESSAGE in s:
    kind, text = s.pop(MESSAGE)
    (st.success if kind == "success" else st.error)(text)

runs = jobs.list_runs(app.runs_dir())
try:
    config = app.run_config_from(s)
    limits.check(config)
    st.caption(app.training_estimate(config, app.scan_dataset(config.data_root), runs))
except CXRError as error:
    st.warning(f"These settings cannot start a run yet: {app.md(error)}")


def act(action, run: jobs.Run) -> None:
    """Cancel or resume button callback; a refusal is shown, never raised."""
    try:
        action(run.path)
    except CXRError as error:
        s[MESSAGE] = ("error", app.md(error))


def show_run(path: str) -> None:
    """State, progress, speed, curves and outcome of one run, read from its folder."""
    run = jobs.read_run(path)
    status, state, name = run.status, run.state, app.md(run.name)
    st.markdown(f"**{name}**: {state}" + (f" ({app.md(status.phase)})" if status.phase else ""))
    if run.problem:
        st.error(f"This run's files cannot be read: {app.md(run.problem)}")
    elif state.active:
        total = max(status.total_epochs or 1, 1)
        batches = max(status.batches_per_epoch or 1, 1)
        done = min(max((max(status.epoch - 1, 0) + status.batch / batches) / total, 0.0), 1.0)
        st.progress(
            done, text=f"epoch {max(status.epoch, 1)} of {total}, batch {status.batch} of {batches}"
        )
        speed, left, device = st.columns(3)
        speed.metric("Images/s", status.images_per_second or "-")
        left.metric("Time left", app.format_seconds(status.eta_seconds))
        device.metric("Device", app.md(status.device or "-"))
        if access.may_cancel(run.name) and st.button("Cancel run"):
            act(jobs.cancel_run, run)
            st.info("Stopping within a few seconds...")
    elif state == RunState.FAILED:
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
    if state in (RunState.CANCELLED, RunState.FAILED) and access.may_administer():
        st.button("Resume run", on_click=act, args=(jobs.resume_run, run))
    if status.validation:
        st.caption(f"Data: {app.md(status.validation)}. Device: {app.md(status.device or '-')}")
    if run.history:
        st.plotly_chart(charts.history_figure(run.history))
    elif not run.problem:
        st.caption("Curves appear after the first epoch.")
    if not state.active and s.get(WAS_ACTIVE) == path:
        s.pop(WAS_ACTIVE)
        st.rerun()  # the run ended: refresh the page (runs table, model list)
    if state.active:
        s[WAS_ACTIVE] = path


st.subheader("Monitor")
if not runs:
    st.info("No runs yet: set up a run in the sidebar and press Launch training.")
    st.stop()
# Names only: a keyed selectbox keeps the labels it first showed, so a state in them goes stale;
# the state is shown below the picker instead.
paths = {str(run.path): run.name for run in runs}
active = next((run for run in runs if run.active), None)
if s.get(SHOWN_RUN) not in paths:
    s[SHOWN_RUN] = str(active.path) if active else str(runs[0].path)
shown = st.selectbox("Run", list(paths), format_func=paths.get, key=SHOWN_RUN)
if jobs.read_run(shown).active:
    st.fragment(run_every=2)(show_run)(shown)
else:
    show_run(shown)

st.subheader("Past runs")
st.dataframe(app.runs_table(runs), hide_index=True)
