"""Tests for cxr_core.inference.predictor: verdicts, heatmaps that localise, no retracing, flat
memory."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from cxr_core.backbones import BACKBONES
from cxr_core.config import ModelConfig
from cxr_core.errors import ConfigError, InvalidImageError, ModelLoadError
from cxr_core.imaging.decode import read_image
from cxr_core.inference.predictor import Prediction, Predictor, find_last_conv_layer, overlay
from cxr_core.model.build import build_model, save_model

SIZE = 64
TINY = ModelConfig(backbone="small_cnn", weights="none", image_size=SIZE)
METADATA = {"threshold": 0.5, "image_size": SIZE, "backbone": "small_cnn"}
# At 64 px small_cnn's last conv is 2 x 2 and every cell sees the whole image, so no layer that
# coarse can say which quadrant a blob is in; block 3's output (8 x 8) still can.
LOCAL_LAYER = "block3_relu2"


def blob_image(rng: np.random.Generator, top_left_blob: bool, size: int = SIZE) -> np.ndarray:
    """Dark noise, plus a bright Gaussian blob somewhere in the top-left quadrant if asked."""
    image = rng.normal(40.0, 8.0, (size, size))
    if top_left_blob:
        half = size // 2
        centre_y, centre_x = rng.uniform(0.25, 0.75, 2) * half
        rows, cols = np.mgrid[0:size, 0:size]
        sigma = size / 16
        image += 180.0 * np.exp(-((rows - centre_y) ** 2 + (cols - centre_x) ** 2) / (2 * sigma**2))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def blob_model() -> keras.Model:
    """small_cnn trained to say PNEUMONIA iff a bright blob sits in the top-left quadrant."""
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    images = np.stack([blob_image(rng, bool(label)) for label in labels]).astype(np.float32)
    images = np.repeat(images[..., None], 3, axis=-1)  # what to_model_input gives at 64 px
    keras.utils.set_random_seed(0)
    model = build_model(TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(images, labels.astype(np.float32), epochs=8, batch_size=32, verbose=0)
    # The weights moved fast; a few forward passes in training mode let BatchNormalization's
    # running statistics catch up, so inference sees what training saw.
    for _ in range(5):
        for start in range(0, len(images), 32):
            model(images[start : start + 32], training=True)
    return model


@pytest.fixture(scope="module")
def blob_predictor(blob_model) -> Predictor:
    return Predictor(blob_model, METADATA, layer_name=LOCAL_LAYER)


@pytest.fixture(scope="module")
def fresh_predictor() -> Predictor:
    return Predictor(build_model(TINY), METADATA)


def assert_valid_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> None:
    assert heatmap.shape == shape
    assert heatmap.dtype == np.float32
    assert not np.isnan(heatmap).any()
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    return int(row), int(col)


# --- localisation ---------------------------------------------------------------------------


def test_blob_model_learned_the_task(blob_predictor):
    rng = np.random.default_rng(1)
    for label in (0, 1) * 5:
        result = blob_predictor.predict(blob_image(rng, bool(label)))
        assert result.label == ("PNEUMONIA" if label else "NORMAL")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heatmap_peak_falls_in_the_blob_quadrant(blob_predictor, method):
    rng = np.random.default_rng(2)
    for _ in range(5):
        result = blob_predictor.explain(blob_image(rng, True), method=method)
        assert result.label == "PNEUMONIA"
        assert_valid_heatmap(result.heatmap, (SIZE, SIZE))
        row, col = peak(result.heatmap)
        assert row < SIZE // 2 and col < SIZE // 2


def test_heatmap_follows_a_larger_input_image(blob_predictor):
    # The same picture at 3x the size: the map comes back at the input's size, same quadrant.
    image = blob_image(np.random.default_rng(3), True)
    large = cv2.resize(image, (SIZE * 3, SIZE * 2), interpolation=cv2.INTER_LINEAR)
    result = blob_predictor.explain(large)
    assert_valid_heatmap(result.heatmap, (SIZE * 2, SIZE * 3))
    row, col = peak(result.heatmap)
    assert row < SIZE and col < SIZE * 3 // 2


def test_normal_verdict_explains_the_negative_logit(blob_model):
    # A copy whose logit is shrunk 1000-fold keeps its gradients' directions but leaves the
    # probability near 0.5, so the threshold alone decides which class is explained.
    damped = keras.models.clone_model(blob_model)
    damped.set_weights(blob_model.get_weights())
    logit = damped.get_layer("logit")
    logit.set_weights([w / 1000.0 for w in logit.get_weights()])
    image = blob_image(np.random.default_rng(4), True)
    as_pneumonia = Predictor(damped, {**METADATA, "threshold": 0.0}, LOCAL_LAYER)
    as_normal = Predictor(damped, {**METADATA, "threshold": 1.0}, LOCAL_LAYER)
    positive, negative = as_pneumonia.explain(image), as_normal.explain(image)
    assert (positive.label, negative.label) == ("PNEUMONIA", "NORMAL")
    # Evidence for PNEUMONIA at the blob is evidence against NORMAL there.
    assert negative.heatmap[peak(positive.heatmap)] < 0.5


# --- contract -------------------------------------------------------------------------------


def test_default_layer_is_the_backbone_last_conv(fresh_predictor):
    assert find_last_conv_layer(fresh_predictor.model) == "last_conv"
    assert fresh_predictor.layer_name == "last_conv"


def test_layer_choice_order_is_argument_then_metadata_then_search():
    model = build_model(TINY)
    assert Predictor(model, {**METADATA, "last_conv_layer": "block4_relu2"}).layer_name == (
        "block4_relu2"
    )
    explicit = Predictor(model, {**METADATA, "last_conv_layer": "block4_relu2"}, "block2_relu1")
    assert explicit.layer_name == "block2_relu1"
    with pytest.raises(ConfigError):
        Predictor(model, METADATA, layer_name="logit")  # not a 4-D output


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_find_last_conv_layer_matches_every_registered_backbone(backbone):
    model = build_model(ModelConfig(backbone=backbone, weights="none", image_size=64))
    assert find_last_conv_layer(model) == BACKBONES[backbone].last_conv_layer


def test_default_backbone_is_explained_at_its_last_conv_layer():
    model = build_model(ModelConfig(backbone="efficientnet_lite0", weights="none", image_size=64))
    predictor = Predictor(model, METADATA)
    result = predictor.explain(blob_image(np.random.default_rng(11), True, size=80)[:, :70])
    assert predictor.layer_name == "top_activation"
    assert_valid_heatmap(result.heatmap, (80, 70))


def test_metadata_disagreeing_with_the_model_input_is_refused():
    with pytest.raises(ModelLoadError, match="128 px"):
        Predictor(build_model(TINY), {**METADATA, "image_size": 128})
    with pytest.raises(ModelLoadError):
        Predictor(build_model(TINY), {**METADATA, "threshold": 1.5})


def test_predict_gives_probability_label_and_threshold_without_heatmap(fresh_predictor):
    result = fresh_predictor.predict(np.full((80, 100), 128, dtype=np.uint8))
    assert isinstance(result, Prediction)
    assert 0.0 <= result.probability <= 1.0
    assert result.threshold == 0.5
    assert result.label == ("PNEUMONIA" if result.probability >= 0.5 else "NORMAL")
    assert result.heatmap is None


def test_explain_probability_matches_the_model_output(fresh_predictor):
    from cxr_core.imaging.preprocess import to_model_input

    image = blob_image(np.random.default_rng(5), True, size=90)
    expected = float(fresh_predictor.model(to_model_input(image, SIZE)[None], training=False)[0, 0])
    assert fresh_predictor.explain(image).probability == pytest.approx(expected, abs=1e-5)
    assert fresh_predictor.predict(image).probability == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_flat_gradient_gives_an_all_zero_heatmap(method):
    model = build_model(TINY)
    logit = model.get_layer("logit")
    logit.set_weights([np.zeros_like(w) for w in logit.get_weights()])
    result = Predictor(model, METADATA).explain(np.full((70, 50), 90, np.uint8), method)
    assert_valid_heatmap(result.heatmap, (70, 50))
    assert not result.heatmap.any()


def test_unknown_method_is_refused(fresh_predictor):
    with pytest.raises(ConfigError, match="gradcam"):
        fresh_predictor.explain(np.zeros((64, 64), np.uint8), method="saliency")


def test_non_image_array_is_refused(fresh_predictor):
    with pytest.raises(InvalidImageError):
        fresh_predictor.predict(np.zeros((4, 64, 64, 3), np.uint8))


def test_rgb_input_scores_like_its_grey_version(fresh_predictor):
    grey = blob_image(np.random.default_rng(6), True)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    assert fresh_predictor.predict(rgb).probability == pytest.approx(
        fresh_predictor.predict(grey).probability, abs=1e-6
    )


def test_steps_are_traced_once_for_any_image_size_and_method():
    predictor = Predictor(build_model(TINY), METADATA)
    rng = np.random.default_rng(7)
    for height, width in [(64, 64), (100, 80), (37, 211), (64, 64)]:
        image = rng.integers(0, 256, (height, width), dtype=np.uint8)
        predictor.predict(image)
        predictor.explain(image, method="gradcam")
        predictor.explain(image, method="gradcam++")
    assert predictor.trace_counts == {"input": 1, "predict": 1, "explain": 1}


def _resident_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_two_hundred_explanations_do_not_grow_memory(fresh_predictor):
    image = blob_image(np.random.default_rng(8), True, size=96)
    for _ in range(20):  # warm-up: allocator pools and TensorFlow caches settle
        fresh_predictor.explain(image)
    before = _resident_bytes()
    for _ in range(200):
        fresh_predictor.explain(image)
    growth = _resident_bytes() - before
    # A leaked gradient model or graph per call costs far more than 16 MB over 200 calls.
    assert growth < 16 * 1024 * 1024, f"resident memory grew by {growth / 2**20:.1f} MB"


def test_from_path_uses_the_saved_threshold_and_layer(tmp_path):
    path = save_model(build_model(TINY), tmp_path / "tiny.keras", {**METADATA, "threshold": 0.3})
    predictor = Predictor.from_path(path)
    assert predictor.threshold == pytest.approx(0.3)
    assert predictor.image_size == SIZE
    assert predictor.class_names == ("NORMAL", "PNEUMONIA")
    assert predictor.layer_name == "last_conv"
    assert_valid_heatmap(predictor.explain(np.zeros((40, 40), np.uint8)).heatmap, (40, 40))


# --- real X-rays ----------------------------------------------------------------------------


def test_predictions_run_on_the_shared_full_resolution_val_images(shared_data, fresh_predictor):
    files = sorted((shared_data / "val").glob("*/*.jpeg"))
    assert len(files) == 16
    for path in files:
        pixels = read_image(path).pixels
        result = fresh_predictor.explain(pixels)
        assert 0.0 <= result.probability <= 1.0
        assert_valid_heatmap(result.heatmap, pixels.shape)
        assert overlay(pixels, result.heatmap).shape == (*pixels.shape, 3)
