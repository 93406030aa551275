"""Train: set up a run in the sidebar, launch it in the background, watch it live."""

from datetime import datetime
from pathlib import Path

import streamlit as st

import app_charts as charts
import app_support as app
from cxr_core import jobs
from cxr_core.config import BACKBONES
from cxr_core.errors import CXRError

SHOWN_RUN, MESSAGE, WAS_ACTIVE = "train_shown_run", "train_message", "train_was_active"
s = st.session_state
defaults = {**app.TRAIN_DEFAULTS, "t_data": app.default_data_root()}
defaults["t_name"] = f"run-{datetime.now():%Y%m%d-%H%M%S}"
for key, value in defaults.items():  # re-set, so that values survive switching pages
    s[key] = s.get(key, value)


def launch() -> None:
    """Launch button callback: start the run, remember what to say, pick a fresh name."""
    try:
        config = app.run_config_from(s)
        app.scan_dataset(config.data_root)  # a bad folder is refused here, not in the run
        run = jobs.start_run(app.runs_dir(), s.t_name.strip(), config)
    except CXRError as error:
        s[MESSAGE] = ("error", f"Not started: {error}")
        return
    s[MESSAGE] = ("success", f"Run {run['name']} started in the background.")
    s[SHOWN_RUN] = run["path"]
    s.t_name = f"run-{datetime.now():%Y%m%d-%H%M%S}"


def backbone_changed() -> None:
    """Start from ImageNet weights, except for small_cnn, which has none."""
    s.t_weights = "none" if s.t_backbone == "small_cnn" else "imagenet"


with st.sidebar:
    st.header("New training run")
    st.text_input("Run name", key="t_name")
    st.text_input("Dataset folder", key="t_data")
    st.selectbox("Backbone", list(BACKBONES), key="t_backbone", on_change=backbone_changed)
    st.caption(BACKBONES[s.t_backbone].description)
    st.radio(
        "Starting weights",
        ["imagenet", "none", "file"],
        key="t_weights",
        horizontal=True,
        help="small_cnn has no ImageNet weights: use none.",
    )
    if s.t_weights == "file":
        st.text_input("Weights file (.weights.h5)", key="t_weights_file")
    st.select_slider("Image size (px)", [64, 96, 128, 160, 192, 224, 256, 320], key="t_size")
    st.number_input("Epochs, phase 1 (head)", 1, 200, key="t_head_epochs")
    st.number_input("Epochs, phase 2 (fine-tuning)", 0, 200, key="t_finetune_epochs")
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
        "At most N train images per class (0 = all)", 0, 100_000, step=50, key="t_limit"
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
    st.button("Launch training", type="primary", on_click=launch, width="stretch")

st.title("Train")
st.caption("Runs train in a separate process: you can leave this page or reload it.")
if MESSAGE in s:
    kind, text = s.pop(MESSAGE)
    (st.success if kind == "success" else st.error)(text)

runs = jobs.list_runs(app.runs_dir())
try:
    config = app.run_config_from(s)
    st.caption(app.training_estimate(config, app.scan_dataset(config.data_root), runs))
except CXRError as error:
    st.warning(f"These settings cannot start a run yet: {error}")


def show_run(path: str) -> None:
    """State, progress, speed, curves and outcome of one run, read from its folder."""
    run = jobs.read_run(path)
    state, history = run["state"], run["history"]
    st.markdown(f"**{run['name']}**: {state}" + (f" ({run['phase']})" if run.get("phase") else ""))
    if state in jobs.ACTIVE_STATES:
        total = max(int(run.get("total_epochs") or 1), 1)
        epoch, batch = int(run.get("epoch") or 0), int(run.get("batch") or 0)
        batches = max(int(run.get("batches_per_epoch") or 1), 1)
        done = min(max((max(epoch - 1, 0) + batch / batches) / total, 0.0), 1.0)
        st.progress(done, text=f"epoch {max(epoch, 1)} of {total}, batch {batch} of {batches}")
        eta = run.get("eta_seconds")
        speed, left, device = st.columns(3)
        speed.metric("Images/s", run.get("images_per_second") or "-")
        left.metric("Time left", app.format_seconds(eta))
        device.metric("Device", run.get("device") or "-")
        if st.button("Cancel run"):
            jobs.cancel_run(path)
            st.info("Stopping after the current batch...")
    elif state == "failed":
        st.error(f"The run failed: {run.get('error') or 'no message'}")
    elif state == "cancelled":
        st.warning("The run was cancelled; continue it with `python -m cxr_core train --resume`.")
    elif state == "finished":
        summary = run.get("summary") or {}
        st.success(
            f"Finished: validation AUC {summary.get('roc_auc') or 0:.3f}, accuracy "
            f"{summary.get('accuracy', 0):.3f} at threshold {summary.get('threshold', 0):.3f}."
        )
        model_path = str(Path(path) / "model.keras")
        st.button("Use this model", on_click=app.set_active_model, args=(model_path,))
    if run.get("validation"):
        st.caption(f"Data: {run['validation']}. Device: {run.get('device', '-')}")
    if history:
        st.plotly_chart(charts.history_figure(history))
    else:
        st.caption("Curves appear after the first epoch.")
    if state not in jobs.ACTIVE_STATES and s.get(WAS_ACTIVE) == path:
        s.pop(WAS_ACTIVE)
        st.rerun()  # the run ended: refresh the page (runs table, model list)
    if state in jobs.ACTIVE_STATES:
        s[WAS_ACTIVE] = path


st.subheader("Monitor")
if not runs:
    st.info("No runs yet: set up a run in the sidebar and press Launch training.")
    st.stop()
# Names only: a keyed selectbox keeps the labels it first showed, so a state in them goes stale;
# the state is shown below the picker instead.
paths = {run["path"]: run["name"] for run in runs}
active = jobs.active_run(app.runs_dir())
if s.get(SHOWN_RUN) not in paths:
    s[SHOWN_RUN] = active["path"] if active else runs[0]["path"]
shown = st.selectbox("Run", list(paths), format_func=paths.get, key=SHOWN_RUN)
if jobs.read_run(shown)["state"] in jobs.ACTIVE_STATES:
    st.fragment(run_every=2)(show_run)(shown)
else:
    show_run(shown)

st.subheader("Past runs")
st.dataframe(app.runs_table(runs), hide_index=True)
