"""Train: set up a run in the sidebar, launch it in the background, watch it live."""

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

import app_charts as charts
import app_support as app
from cxr_core import jobs
from cxr_core.config import BACKBONES, DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import ConfigError, CXRError

SHOWN_RUN, MESSAGE = "train_shown_run", "train_message"
# Defaults give a run that finishes in a few minutes on a laptop CPU.
DEFAULTS = {
    "t_name": f"run-{datetime.now():%Y%m%d-%H%M%S}",
    "t_data": app.default_data_root(),
    "t_backbone": "small_cnn",
    "t_weights": "none",
    "t_weights_file": "",
    "t_size": 128,
    "t_head_epochs": 1,
    "t_finetune_epochs": 1,
    "t_batch": 32,
    "t_head_lr": 1e-3,
    "t_finetune_lr": 1e-4,
    "t_layers": 60,
    "t_class_weights": True,
    "t_augment": 1.0,
    "t_val_fraction": 0.15,
    "t_seed": 42,
    "t_limit": 300,
    "t_dropout": 0.2,
    "t_patience": 3,
    "t_rule": "youden",
}
for key, value in DEFAULTS.items():  # re-set, so that values survive switching pages
    st.session_state[key] = st.session_state.get(key, value)
s = st.session_state


def run_config() -> RunConfig:
    """The RunConfig of the sidebar's values; raises ConfigError naming a bad value."""
    weights = s.t_weights_file.strip() if s.t_weights == "file" else s.t_weights
    if s.t_weights == "file" and not Path(weights).is_file():
        raise ConfigError(f"The weights file {weights or '(empty)'} does not exist.")
    return RunConfig(
        data_root=s.t_data.strip(),
        model=ModelConfig(s.t_backbone, weights or "none", int(s.t_size), float(s.t_dropout)),
        data=DataConfig(
            val_fraction=float(s.t_val_fraction),
            seed=int(s.t_seed),
            batch_size=int(s.t_batch),
            augment=float(s.t_augment),
            limit_per_class=int(s.t_limit) or None,
        ),
        train=TrainConfig(
            head_epochs=int(s.t_head_epochs),
            finetune_epochs=int(s.t_finetune_epochs),
            head_learning_rate=float(s.t_head_lr),
            finetune_learning_rate=float(s.t_finetune_lr),
            finetune_layers=int(s.t_layers),
            class_weighting=bool(s.t_class_weights),
            early_stopping_patience=int(s.t_patience),
            threshold_rule=s.t_rule,
        ),
    )


def launch() -> None:
    """Launch button callback: start the run, remember what to say, pick a fresh name."""
    try:
        config = run_config()
        app.scan_dataset(config.data_root)  # a bad folder is refused here, not in the run
        run = jobs.start_run(app.runs_dir(), s.t_name.strip(), config)
    except CXRError as error:
        s[MESSAGE] = ("error", f"Not started: {error}")
        return
    s[MESSAGE] = ("success", f"Run {run['name']} started in the background.")
    s[SHOWN_RUN] = run["path"]
    s.t_name = f"run-{datetime.now():%Y%m%d-%H%M%S}"


with st.sidebar:
    st.header("New training run")
    st.text_input("Run name", key="t_name")
    st.text_input("Dataset folder", key="t_data")
    st.selectbox(
        "Backbone",
        list(BACKBONES),
        key="t_backbone",
        format_func=lambda name: f"{name}: {BACKBONES[name].description}",
    )
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
    st.button("Launch training", type="primary", on_click=launch, width="stretch")

st.title("Train")
st.caption("Runs train in a separate process: you can leave this page or reload it.")
if MESSAGE in s:
    kind, text = s.pop(MESSAGE)
    (st.success if kind == "success" else st.error)(text)

runs = jobs.list_runs(app.runs_dir())
try:
    counts = app.scan_dataset(s.t_data.strip()).query("split == 'train'")["label"].value_counts()
    per_class = counts.clip(upper=int(s.t_limit) or None)
    n_train = int(per_class.sum() * (1 - float(s.t_val_fraction)))
    epochs = int(s.t_head_epochs) + int(s.t_finetune_epochs)
    estimate = app.training_estimate(n_train, epochs, s.t_backbone, int(s.t_size), runs)
    st.caption(
        estimate
        or f"About {n_train} training images x {epochs} epochs; the first run "
        "with this backbone measures the speed, for an estimate next time."
    )
except CXRError as error:
    st.warning(f"Dataset folder: {error}")


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
        left.metric("Time left", "-" if eta is None else f"{eta // 60:.0f} min {eta % 60:.0f} s")
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
    if state not in jobs.ACTIVE_STATES and s.get("train_was_active") == path:
        s.pop("train_was_active")
        st.rerun()  # the run ended: refresh the page (runs table, model list)
    if state in jobs.ACTIVE_STATES:
        s["train_was_active"] = path


st.subheader("Monitor")
if not runs:
    st.info("No runs yet: set up a run in the sidebar and press Launch training.")
    st.stop()
paths = {run["path"]: f"{run['name']} ({run['state']})" for run in runs}
active = jobs.active_run(app.runs_dir())
if s.get(SHOWN_RUN) not in paths:
    s[SHOWN_RUN] = active["path"] if active else runs[0]["path"]
shown = st.selectbox("Run", list(paths), format_func=paths.get, key=SHOWN_RUN)
if jobs.read_run(shown)["state"] in jobs.ACTIVE_STATES:
    st.fragment(run_every=2)(show_run)(shown)
else:
    show_run(shown)

st.subheader("Past runs")
table = pd.DataFrame(
    {
        "run": run["name"],
        "state": run["state"],
        "backbone": (run["config"].get("model") or {}).get("backbone"),
        "image size": (run["config"].get("model") or {}).get("image_size"),
        "epochs": len(run["history"]),
        **{
            k: (run.get("summary") or {}).get(k)
            for k in ("roc_auc", "accuracy", "sensitivity", "specificity", "threshold")
        },
        "started": run.get("started_at"),
        "seconds": run.get("elapsed_seconds"),
    }
    for run in runs
)
st.dataframe(table, hide_index=True)
