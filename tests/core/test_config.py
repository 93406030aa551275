"""Configuration dataclasses: defaults are valid, bad values name the field and the value."""

from __future__ import annotations

import dataclasses

import pytest

from cxr_core.backbones import BACKBONES, backbone_spec
from cxr_core.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from cxr_core.errors import ConfigError


def test_registry_has_the_planned_backbones() -> None:
    expected = {"mobilenet_v2", "efficientnet_b0", "densenet121", "resnet50", "vgg16"}
    lite = {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert expected | {"small_cnn"} | lite == set(BACKBONES)


def test_unknown_backbone_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Received: backbone='alexnet'") as error:
        backbone_spec("alexnet")
    assert "mobilenet_v2" in str(error.value)


@pytest.mark.parametrize(
    ("factory", "field", "value"),
    [
        (ModelConfig, "image_size", 16),
        (ModelConfig, "image_size", 224.0),
        (ModelConfig, "dropout", 1.0),
        (ModelConfig, "weights", ""),
        (DataConfig, "val_fraction", 0.0),
        (DataConfig, "val_fraction", 0.8),
        (DataConfig, "batch_size", 0),
        (DataConfig, "augment", 3),
        (DataConfig, "seed", -1),
        (DataConfig, "limit_per_class", 1),
        (DataConfig, "horizontal_flip", "yes"),
        (TrainConfig, "head_epochs", 0),
        (TrainConfig, "finetune_epochs", -1),
        (TrainConfig, "head_learning_rate", 0),
        (TrainConfig, "threshold_rule", "f1"),
        (TrainConfig, "target_sensitivity", 1.5),
        (TrainConfig, "distribute", "tpu"),
        (TrainConfig, "class_weighting", 1),
    ],
)
def test_bad_value_names_field_and_value(factory: type, field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"{field} must be .*Received: {field}={value!r}"):
        factory(**{field: value})


def test_configs_are_frozen() -> None:
    config = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.image_size = 128  # type: ignore[misc]


def test_replace_checks_the_new_value() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        dataclasses.replace(DataConfig(), batch_size=-4)


def test_run_config_round_trips_through_a_dict() -> None:
    config = RunConfig(
        data_root="/data/chest_xray",
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=96),
        data=DataConfig(batch_size=8, limit_per_class=50),
        train=TrainConfig(head_epochs=3, threshold_rule="sensitivity"),
    )
    assert RunConfig.from_dict(config.to_dict()) == config


def test_run_config_from_malformed_dict_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        RunConfig.from_dict({"data_root": "/x", "model": {"colour": "blue"}})


def test_pretrained_follows_weights() -> None:
    assert ModelConfig(weights="imagenet").pretrained
    assert not ModelConfig(weights="none").pretrained


def test_stress_images_below_twenty_is_refused_naming_the_setting() -> None:
    assert TrainConfig(stress_images=20).stress_images == 20
    with pytest.raises(ConfigError, match="stress_images must be an integer from 20 to 100000"):
        TrainConfig(stress_images=19)
