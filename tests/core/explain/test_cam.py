"""Grad-CAM from the forward pass (cxr_core.explain.cam) agrees with the gradient path it
replaces."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cxr_core.config import ModelConfig
from cxr_core.explain.cam import linear_head
from cxr_core.imaging.decode import read_image
from cxr_core.inference.input_check import gate_path, load_gate, pooled_output
from cxr_core.inference.predictor import METHODS, Predictor
from cxr_core.model.build import build_model, load_model
from cxr_core.model.ensemble import build_ensemble, explained_layers
from cxr_core.stats.calibration import PlattScaling, fold_into_model
from tests.conftest import synthetic_xray

BUNDLED = Path(__file__).resolve().parents[3] / "assets" / "models" / "cxr_lite0.keras"
SIZE = 64
METADATA = {"threshold": 0.5, "image_size": SIZE, "backbone": "small_cnn"}


def small_cnn(seed: int, size: int = SIZE) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=size))


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    return int(row), int(col)


def assert_paths_agree(fast: Predictor, slow: Predictor, images: list[np.ndarray]) -> None:
    """Same verdict, probability and input check; maps correlated >= 0.99 with the same peak."""
    assert fast.explains_from_forward_pass and not slow.explains_from_forward_pass
    for image in images:
        a, b = fast.explain_all(image), slow.explain_all(image)
        assert a.label == b.label
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert a.input_check.accepted == b.input_check.accepted
        for method in METHODS:
            x, y = a.heatmaps[method], b.heatmaps[method]
            assert x.shape == y.shape == image.shape
            if not y.any():  # a flat gradient: both all zero
                assert not x.any()
                continue
            assert np.corrcoef(x.ravel(), y.ravel())[0, 1] >= 0.99
            assert peak(x) == peak(y)


def generated_images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (90, 70), (120, 150), (64, 100)]
    return [
        synthetic_xray(i % 2, rng, sizes[i % len(sizes)][0])[:, : sizes[i % len(sizes)][1]]
        for i in range(count)
    ]


@pytest.mark.parametrize("threshold", [0.0, 1.0])  # explains PNEUMONIA, then NORMAL
def test_cam_equals_gradcam_on_a_generated_model(threshold):
    model = small_cnn(1)
    metadata = {**METADATA, "threshold": threshold}
    fast, slow = Predictor(model, metadata), Predictor(model, metadata, force_gradients=True)
    assert_paths_agree(fast, slow, generated_images(4))


def test_cam_equals_gradcam_on_a_calibrated_ensemble_of_two_sizes():
    members = [small_cnn(2), small_cnn(3, size=96)]
    ensemble = build_ensemble(members, SIZE)
    fold_into_model(ensemble, PlattScaling(1.7, -0.4))
    metadata = {**METADATA, "gradcam_layers": explained_layers(members)}
    fast = Predictor(ensemble, metadata)
    slow = Predictor(ensemble, metadata, force_gradients=True)
    assert len(fast.layer_names) == 2
    assert_paths_agree(fast, slow, generated_images(4, seed=1))


def test_cam_reads_calibration_folded_after_the_predictor_was_built():
    model = small_cnn(4)
    fast, slow = Predictor(model, METADATA), Predictor(model, METADATA, force_gradients=True)
    fold_into_model(model, PlattScaling(3.0, 0.5))
    assert_paths_agree(fast, slow, generated_images(2, seed=2))


def test_nonlinear_head_keeps_the_gradient_path():
    base = small_cnn(5)
    pooled = base.get_layer("pool").output
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(pooled)
    logit = keras.layers.Dense(1, name="logit_2")(hidden)
    logit = keras.layers.Identity(name="logit")(logit)
    probability = keras.layers.Activation("sigmoid", name="probability")(logit)
    model = keras.Model(base.inputs, probability)
    assert linear_head(model, ["last_conv"]) is None
    predictor = Predictor(model, {**METADATA, "last_conv_layer": "last_conv"})
    assert not predictor.explains_from_forward_pass
    result = predictor.explain_all(generated_images(1)[0])
    assert set(result.heatmaps) == set(METHODS)


def test_a_layer_that_does_not_feed_the_pooling_keeps_the_gradient_path():
    model = small_cnn(6)
    assert linear_head(model, ["last_conv"]) is not None
    assert linear_head(model, ["block3_relu2"]) is None
    assert not Predictor(model, METADATA, layer_name="block3_relu2").explains_from_forward_pass


def test_explain_batch_equals_lone_calls():
    predictor = Predictor(small_cnn(7), METADATA)
    images = generated_images(5, seed=3)
    batch = predictor.explain_batch(images)
    for image, result in zip(images, batch, strict=True):
        lone = predictor.explain_all(image)
        assert result.label == lone.label
        assert result.probability == pytest.approx(lone.probability, abs=1e-5)
        for method in METHODS:
            np.testing.assert_allclose(result.heatmaps[method], lone.heatmaps[method], atol=1e-4)
    assert predictor.trace_counts["explain"] == 1  # batch sizes 5 and 1: one trace


def test_bundled_model_cam_equals_gradcam_on_the_val_xrays(shared_data: Path):
    model, metadata = load_model(BUNDLED)
    fast = Predictor.with_stored_gate(model, metadata, BUNDLED)
    gate = load_gate(gate_path(BUNDLED), int(pooled_output(model).shape[-1]))
    slow = Predictor(model, metadata, gate=gate, force_gradients=True)
    files = sorted((shared_data / "val").glob("*/*.jpeg"))[::4]
    images = [read_image(f.read_bytes(), max_side=1024).pixels for f in files]
    assert len(images) >= 4
    assert_paths_agree(fast, slow, images)
