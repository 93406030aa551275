"""Helpers shared by the app tests: a tiny untrained model with a complete sidecar."""

from __future__ import annotations

from pathlib import Path

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.runs.files import RunPaths, RunState, update_status, write_json_atomic

#: Validation metrics written into the tiny model's sidecar (shown on the Home page).
TINY_METRICS = {
    "roc_auc": 0.91,
    "accuracy": 0.83,
    "sensitivity": 0.85,
    "specificity": 0.8,
    "ci": {"roc_auc": [0.85, 0.96]},
}


def make_tiny_model(
    folder: Path, data_root: Path, name: str = "tiny", limit_per_class: int | None = None
) -> Path:
    """Save an untrained 64 px small_cnn as ``folder/<name>.keras`` and return its path.

    Its sidecar holds a 0.5 threshold, :data:`TINY_METRICS` and a ``run_config`` on
    ``data_root`` (with ``limit_per_class``: its validation split is sampled likewise), as a
    trained model's would.
    """
    from cxr_core.model.build import build_model, save_model

    config = RunConfig(
        data_root=str(data_root),
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=64),
        data=DataConfig(batch_size=8, limit_per_class=limit_per_class),
    )
    return save_model(
        build_model(config.model),
        folder / f"{name}.keras",
        {
            "backbone": "small_cnn",
            "image_size": 64,
            "threshold": 0.5,
            "last_conv_layer": "last_conv",
            "metrics": TINY_METRICS,
            "run_config": config.to_dict(),
            "validation": "train: 20 images; validation: 4 images",
        },
    )


def point_app_at(monkeypatch, models: Path, runs: Path, data_root: Path) -> None:
    """Point the app at a models folder, a runs folder and a dataset, in the open mode (no
    password, no visitor limits); a page error fails the test instead of showing a message."""
    for name in (
        "CXR_ADMIN_PASSWORD",
        "CXR_DATA_ROOTS",
        "CXR_VISITOR_TRAINING",
        "CXR_VISITOR_BACKBONES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CXR_MODELS_DIR", str(models))
    monkeypatch.setenv("CXR_RUNS_DIR", str(runs))
    monkeypatch.setenv("CXR_DATA", str(data_root))
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # runs start `python -m cxr_core` here


def fake_run(runs: Path, name: str, data_root: Path, **status: object) -> RunPaths:
    """A run folder with a tiny config and the given status.json fields (no process)."""
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    config = RunConfig(
        str(data_root),
        ModelConfig("small_cnn", "none", 32),
        DataConfig(batch_size=8, min_val_images=0),
        TrainConfig(head_epochs=1, finetune_epochs=0, calibration="none"),
    )
    write_json_atomic(paths.config, config.to_dict())
    if "state" in status:
        status["state"] = RunState(status["state"])
    if status:
        update_status(paths, **status)
    return paths
