"""Tests for cxr_core.model.ensemble: one flat model averaging members' logits, explained through
all."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cxr_core.config import ModelConfig
from cxr_core.errors import ConfigError
from cxr_core.inference.predictor import Predictor
from cxr_core.model.build import build_model, load_model, save_model
from cxr_core.model.ensemble import build_ensemble, explained_layers

SIZE = 64


def tiny(size: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=size))


def logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    head = keras.Model(model.input, model.get_layer("logit").output)
    return keras.ops.convert_to_numpy(head(images, training=False))


def images(count: int, size: int = SIZE) -> np.ndarray:
    grey = np.random.default_rng(3).integers(0, 256, (count, size, size, 1)).astype(np.float32)
    return np.repeat(grey, 3, axis=-1)


@pytest.fixture(scope="module")
def members() -> list[keras.Model]:
    return [tiny(SIZE, 0), tiny(48, 1)]


def test_ensemble_logit_is_the_mean_of_the_members_logits(members):
    ensemble = build_ensemble(members, SIZE)
    batch = images(4)
    smaller = keras.ops.convert_to_numpy(keras.ops.image.resize(batch, (48, 48), antialias=True))
    expected = (logits(members[0], batch) + logits(members[1], smaller)) / 2
    np.testing.assert_allclose(logits(ensemble, batch), expected, rtol=1e-4, atol=1e-4)
    probability = keras.ops.convert_to_numpy(ensemble(batch, training=False))
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-expected)), atol=1e-5)


def test_first_members_pool_keeps_its_name_for_the_input_check(members):
    ensemble = build_ensemble(members, SIZE)
    names = [layer.name for layer in ensemble.layers]
    assert "pool" in names and "m1_pool" in names and "m0_pool" not in names
    assert names[-2:] == ["logit", "probability"]
    assert explained_layers(members) == ["m0_last_conv", "m1_last_conv"]


def test_ensemble_of_a_model_with_itself_scores_and_explains_like_the_model():
    model = tiny(SIZE, 5)
    ensemble = build_ensemble([model, model], SIZE)
    metadata = {"threshold": 0.5, "image_size": SIZE, "backbone": "small_cnn"}
    single = Predictor(model, metadata)
    double = Predictor(ensemble, {**metadata, "gradcam_layers": explained_layers([model] * 2)})
    assert double.layer_names == ("m0_last_conv", "m1_last_conv")
    image = images(1, 80)[0, ..., 0].astype(np.uint8)
    for method in ("gradcam", "gradcam++"):
        alone, joined = single.explain(image, method), double.explain(image, method)
        assert alone.heatmap.max() == pytest.approx(1.0)  # not a trivially flat map
        assert joined.probability == pytest.approx(alone.probability, abs=1e-5)
        np.testing.assert_allclose(joined.heatmap, alone.heatmap, atol=1e-4)


def test_saved_ensemble_loads_with_its_grad_cam_layers(members, tmp_path):
    ensemble = build_ensemble(members, SIZE)
    layers = explained_layers(members)
    metadata = {"threshold": 0.4, "image_size": SIZE, "backbone": "small_cnn ensemble"}
    path = save_model(ensemble, tmp_path / "ensemble.keras", {**metadata, "gradcam_layers": layers})
    loaded, checked = load_model(path)
    assert checked.gradcam_layers == tuple(layers)
    batch = images(2)
    np.testing.assert_allclose(logits(loaded, batch), logits(ensemble, batch), atol=1e-5)
    predictor = Predictor.from_path(path)
    assert predictor.layer_names == tuple(layers)
    explained = predictor.explain(images(1, 100)[0, ..., 0].astype(np.uint8))
    assert explained.heatmap.shape == (100, 100) and np.isfinite(explained.heatmap).all()
    assert Predictor(loaded, checked, layer_name="m1_last_conv").layer_names == ("m1_last_conv",)


def test_an_ensemble_needs_two_members(members):
    with pytest.raises(ConfigError, match="two or more members"):
        build_ensemble(members[:1], SIZE)
