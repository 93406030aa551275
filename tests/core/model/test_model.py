"""Model building, preprocessing inside the graph, saving and safe loading."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cxr_core.backbones import BACKBONES
from cxr_core.config import ModelConfig
from cxr_core.errors import ModelLoadError, WeightsUnavailableError
from cxr_core.model.build import backbone_layers, build_model, load_model, save_model, sidecar_path

# Small inputs keep the parametrized builds fast; 32 px is the smallest most backbones take.
SMALL_SIZES = {name: 32 for name in BACKBONES} | {"vgg16": 32, "efficientnet_lite0": 64}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_builds_a_flat_graph_with_a_probability_output(backbone: str) -> None:
    size = SMALL_SIZES[backbone]
    model = build_model(ModelConfig(backbone=backbone, weights="none", image_size=size))
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images))
    assert probabilities.shape == (2, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    names = [layer.name for layer in model.layers]
    assert names[-2:] == ["logit", "probability"]
    assert BACKBONES[backbone].last_conv_layer in names
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat


def test_backbone_layers_exclude_input_preprocessing_and_head() -> None:
    model = build_model(ModelConfig(backbone="mobilenet_v2", weights="none", image_size=32))
    names = {layer.name for layer in backbone_layers(model)}
    assert "Conv1" in names and "out_relu" in names
    assert not names & {"image", "preprocess_scale", "pool", "dropout", "logit", "probability"}


def test_tf_preprocessing_maps_pixels_to_minus_one_one() -> None:
    model = build_model(ModelConfig(backbone="mobilenet_v2", weights="none", image_size=32))
    scaler = model.get_layer("preprocess_scale")
    out = keras.ops.convert_to_numpy(scaler(np.array([[0.0, 127.5, 255.0]])))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 1.0]], atol=1e-6)


def test_scratch_models_use_fast_batchnorm_statistics() -> None:
    model = build_model(ModelConfig(backbone="mobilenet_v2", weights="none", image_size=32))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    small = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=32))
    norms = [layer for layer in small.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.7 for layer in norms)  # never raised to 0.9


def _tiny_model() -> keras.Model:
    return build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=32))


def test_save_and_load_round_trip_keeps_predictions_and_metadata(tmp_path: Path) -> None:
    model = _tiny_model()
    path = save_model(
        model, tmp_path / "m.keras", {"backbone": "small_cnn", "image_size": 32, "threshold": 0.3}
    )
    loaded, metadata = load_model(path)
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(images), loaded(images), atol=1e-6)
    assert metadata.threshold == 0.3
    assert metadata.class_names == ("NORMAL", "PNEUMONIA")
    assert {"tensorflow", "keras", "cxr_core"} <= set(metadata.versions)
    assert not list(tmp_path.glob(".*tmp*")), "temporary files must not be left behind"


def test_missing_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_model(tmp_path / "absent.keras")


def test_corrupt_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    sidecar_path(path).write_text(
        json.dumps({"backbone": "small_cnn", "image_size": 32, "threshold": 0.5})
    )
    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        load_model(path)


def test_model_without_sidecar_is_a_model_load_error(tmp_path: Path) -> None:
    path = save_model(
        _tiny_model(),
        tmp_path / "m.keras",
        {"backbone": "small_cnn", "image_size": 32, "threshold": 0.5},
    )
    sidecar_path(path).unlink()
    with pytest.raises(ModelLoadError, match="metadata file not found"):
        load_model(path)


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    config = ModelConfig(backbone="small_cnn", weights=str(tmp_path / "nope.weights.h5"))
    with pytest.raises(WeightsUnavailableError, match="weights file not found"):
        build_model(config)


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    source = build_model(ModelConfig(backbone="mobilenet_v2", weights="none", image_size=32))
    weights = tmp_path / "backbone.weights.h5"
    backbone = keras.Model(source.input, source.get_layer("out_relu").output)
    backbone.save_weights(weights)
    rebuilt = build_model(ModelConfig(backbone="mobilenet_v2", weights=str(weights), image_size=32))
    np.testing.assert_array_equal(
        source.get_layer("Conv1").get_weights()[0], rebuilt.get_layer("Conv1").get_weights()[0]
    )


def test_unreachable_imagenet_download_gives_one_clear_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keras.src.utils import file_utils

    def offline(*_: object, **__: object) -> None:
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
            "[Errno -2] Name or service not known"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        build_model(ModelConfig(backbone="mobilenet_v2", weights="imagenet", image_size=96))
    message = str(error.value)
    assert "no network connection" in message and "weights 'none'" in message
    assert "\n" not in message and "googleapis" not in message


def test_saved_model_carries_no_optimizer_state(tmp_path: Path) -> None:
    import zipfile

    import h5py

    model = _tiny_model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    images = np.zeros((4, 32, 32, 3), "float32")
    model.fit(images, np.array([0, 1, 0, 1], "float32"), epochs=1, verbose=0)
    path = save_model(
        model, tmp_path / "m.keras", {"backbone": "small_cnn", "image_size": 32, "threshold": 0.5}
    )
    with zipfile.ZipFile(path) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    assert oct(sidecar_path(path).stat().st_mode & 0o777) != oct(0o600)
