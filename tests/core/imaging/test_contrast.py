"""CLAHE as the model's first layer, the acquisition augmentation, and models saved before both."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxr_core import data
from cxr_core.config import DataConfig, ModelConfig, RunConfig
from cxr_core.data.augment import make_augmenter
from cxr_core.imaging.contrast import CLAHE
from cxr_core.imaging.decode import read_image
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.inference.predictor import Predictor
from cxr_core.model.build import build_model, load_model, save_model
from tests.conftest import synthetic_xray


def as_batch(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[None, ..., None], 3, axis=-1).astype(np.float32)


@pytest.mark.parametrize("size", [64, 128, 224])
def test_clahe_matches_opencv(size: int) -> None:
    rng = np.random.default_rng(size)
    grey = cv2.resize(synthetic_xray(1, rng, 256), (size, size), interpolation=cv2.INTER_AREA)
    expected = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    got = CLAHE(2.0, 8)(as_batch(grey)).numpy()
    assert got.shape == (1, size, size, 3)
    assert np.array_equal(got[..., 0], got[..., 2])
    difference = np.abs(got[0, ..., 0] - expected.astype(np.float32))
    assert difference.mean() < 0.05 and difference.max() <= 1  # float rounding only


def test_clahe_handles_sizes_the_grid_does_not_divide() -> None:
    # OpenCV pads such images; this layer uses tiles that differ by a pixel instead.
    grey = synthetic_xray(0, np.random.default_rng(5), 100)
    got = CLAHE(2.0, 8)(as_batch(grey)).numpy()
    assert got.shape == (1, 100, 100, 3) and got.min() >= 0 and got.max() <= 255
    assert got[0, ..., 0].std() > grey.std()


def test_one_file_gives_the_same_tensor_through_training_and_prediction(
    tiny_dataset: Path,
) -> None:
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    table = data.scan(tiny_dataset)
    table = table[table["path"].str.endswith(".png")].head(1)  # lossless: one decoder's pixels
    config = DataConfig(batch_size=1, cache=False, augment=0.0, acquisition_augment=0.0)
    images, _ = next(iter(data.make_dataset(table, 64, config, training=False)))
    pixels = read_image(table["path"].iloc[0]).pixels  # the upload path
    served = to_model_input(pixels, 64)[None]
    assert np.allclose(images.numpy(), served.numpy(), atol=1e-4)
    clahe = model.get_layer("preprocess_clahe")
    assert np.allclose(clahe(images).numpy(), clahe(served).numpy(), atol=1e-4)
    predictor = Predictor(model, {"threshold": 0.5, "image_size": 64})
    direct = float(model(images, training=False)[0, 0])
    assert predictor.predict(pixels).probability == pytest.approx(direct, abs=1e-5)


def test_clahe_model_round_trips_through_save_and_load(tmp_path: Path) -> None:
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    path = save_model(
        model, tmp_path / "m.keras", {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5}
    )
    loaded, _ = load_model(path)
    batch = as_batch(synthetic_xray(1, np.random.default_rng(2)))
    assert "preprocess_clahe" in {layer.name for layer in loaded.layers}
    assert np.allclose(model(batch).numpy(), loaded(batch).numpy(), atol=1e-6)


def test_a_model_saved_before_clahe_loads_and_predicts_as_trained(tmp_path: Path) -> None:
    # The sidecar and run config of a model saved before contrast settings existed.
    legacy = ModelConfig(backbone="small_cnn", weights="none", image_size=64, contrast="none")
    model = build_model(legacy)
    run = RunConfig(str(tmp_path), legacy).to_dict()
    for section, key in (
        ("model", "contrast"),
        ("model", "clahe_clip_limit"),
        ("model", "clahe_tiles"),
        ("data", "acquisition_augment"),
        ("train", "threshold_scores"),
        ("train", "calibration"),
        ("train", "input_gate"),
    ):
        run[section].pop(key)
    path = save_model(
        model,
        tmp_path / "old.keras",
        {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5, "run_config": run},
    )
    loaded, metadata = load_model(path)
    assert "preprocess_clahe" not in {layer.name for layer in loaded.layers}
    rebuilt = RunConfig.from_dict(json.loads(json.dumps(metadata.run_config)))
    assert rebuilt.model.contrast == "none" and rebuilt.data.acquisition_augment == 0.0
    assert rebuilt.train.calibration == "none" and rebuilt.train.threshold_scores == "clean"
    pixels = synthetic_xray(1, np.random.default_rng(3))
    expected = float(model(to_model_input(pixels, 64)[None], training=False)[0, 0])
    got = Predictor.from_path(path).predict(pixels)
    assert got.probability == pytest.approx(expected, abs=1e-6)
    assert got.input_check.accepted and got.input_check.distance is None


def test_acquisition_augmentation_changes_images_and_keeps_them_in_range() -> None:
    rng = np.random.default_rng(4)
    batch = np.stack([synthetic_xray(i % 2, rng) for i in range(16)])[..., None].astype("float32")
    augmenter = make_augmenter(0.0, seed=1, acquisition=2.0)
    out = augmenter(batch, training=True).numpy()
    assert out.shape == batch.shape
    assert out.min() >= 0 and out.max() <= 255
    changed = np.abs(out - batch).mean(axis=(1, 2, 3)) > 0.5
    assert 4 <= changed.sum() <= 16  # each change hits about half the images
    assert np.array_equal(augmenter(batch, training=False).numpy(), batch)


def test_acquisition_strength_is_checked() -> None:
    from cxr_core.errors import ConfigError

    with pytest.raises(ConfigError, match="acquisition must be a number in"):
        make_augmenter(1.0, acquisition=3)
    with pytest.raises(ConfigError, match="acquisition_augment"):
        DataConfig(acquisition_augment=-1)
    with pytest.raises(ConfigError, match="contrast must be"):
        ModelConfig(contrast="equalise")
