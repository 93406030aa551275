"""Framing (random-resized-crop) and corruption augmentation, the suite's training options."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cxr_core import data
from cxr_core.config import DataConfig, RunConfig
from cxr_core.data.augment import RandomResizedCrop, make_augmenter
from cxr_core.errors import ConfigError
from cxr_core.imaging import corruptions
from cxr_core.training.run_settings import run_config
from tests.conftest import synthetic_xray

QUICK = DataConfig(batch_size=6, cache=False, augment=0.0, acquisition_augment=0.0)


def _bullseye(size: int = 64) -> np.ndarray:
    """A bright disc in the centre of a dark square, as a (1, size, size, 1) batch."""
    y, x = np.indices((size, size)) - (size - 1) / 2
    return np.where(np.hypot(x, y) < size / 4, 230.0, 20.0).astype(np.float32)[None, ..., None]


def test_random_resized_crop_zooms_in_and_keeps_range() -> None:
    image = np.repeat(_bullseye(), 8, axis=0)
    layer = RandomResizedCrop(1.0, seed=3)
    out = np.asarray(layer(image, training=True))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 255
    # Cropping then resizing back makes the disc cover more of the frame (zoom in).
    assert ((out > 125).mean(axis=(1, 2, 3)) >= (image > 125).mean() - 1e-6).all()
    assert (out > 125).mean() > (image > 125).mean() * 1.1
    np.testing.assert_array_equal(np.asarray(layer(image, training=False)), image)
    np.testing.assert_array_equal(np.asarray(RandomResizedCrop(0.0)(image, training=True)), image)


def test_random_resized_crop_at_half_strength_zooms_less() -> None:
    image = np.repeat(_bullseye(), 64, axis=0)
    strong = np.asarray(RandomResizedCrop(1.0, seed=0)(image, training=True))
    mild = np.asarray(RandomResizedCrop(0.5, seed=0)(image, training=True))
    assert (mild > 125).mean() < (strong > 125).mean()


def test_make_augmenter_puts_framing_first_and_checks_it() -> None:
    augmenter = make_augmenter(0.0, framing=1.0, seed=0)
    assert isinstance(augmenter.layers[0], RandomResizedCrop)
    with pytest.raises(ConfigError, match="Received: framing=1.5"):
        make_augmenter(1.0, framing=1.5)


def test_corrupt_batch_uses_only_the_given_families_at_the_given_rate() -> None:
    images = np.stack([synthetic_xray(i, np.random.default_rng(i), 48) for i in range(40)])
    images = images.astype(np.float32)
    none = corruptions.corrupt_batch(images, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(none, images)
    darker = corruptions.corrupt_batch(images, np.random.default_rng(0), 1.0, ("brightness_down",))
    assert (darker.mean(axis=(1, 2)) < images.mean(axis=(1, 2))).all()
    half = corruptions.corrupt_batch(images, np.random.default_rng(1), 0.5)
    changed = np.abs(half - images).mean(axis=(1, 2)) > 0.05
    assert 10 <= changed.sum() <= 30
    np.testing.assert_array_equal(
        half, corruptions.corrupt_batch(images, np.random.default_rng(1), 0.5)
    )
    # (n, H, W, 1) batches, as the input pipeline holds them, keep their shape.
    assert corruptions.corrupt_batch(images[..., None], np.random.default_rng(2), 1.0).shape == (
        40, 48, 48, 1,
    )  # fmt: skip


def test_corruption_augmentation_draws_choice_families_only(monkeypatch) -> None:
    drawn = []
    real = corruptions.corruption

    def spy(family: str, severity: int):
        drawn.append(family)
        return real(family, severity)

    monkeypatch.setattr(corruptions, "corruption", spy)
    images = np.full((200, 16, 16), 120.0, np.float32)
    corruptions.corrupt_batch(images, np.random.default_rng(0), 1.0)
    assert set(drawn) == set(corruptions.CHOICE_FAMILIES)
    assert not set(drawn) & set(corruptions.HELD_OUT_FAMILIES)


@pytest.mark.parametrize("name", ["framing_augment", "corruption_augment"])
@pytest.mark.parametrize("value", [-0.1, 1.5, True])
def test_config_refuses_augmentation_outside_0_1(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"Received: {name}="):
        DataConfig(**{name: value})


def test_settings_and_cli_map_onto_the_new_options() -> None:
    config = run_config({"data_root": "d", "framing_augment": 0.5, "corruption_augment": 0.3})
    assert isinstance(config, RunConfig)
    assert config.data.framing_augment == 0.5 and config.data.corruption_augment == 0.3
    assert RunConfig.from_dict(config.to_dict()) == config


def test_training_pipeline_applies_both_and_evaluation_neither(tiny_dataset) -> None:
    table = data.scan(tiny_dataset).iloc[:6]
    both = dataclasses.replace(QUICK, framing_augment=1.0, corruption_augment=1.0)

    def first_batch(config: DataConfig, training: bool) -> np.ndarray:
        images, _ = next(iter(data.make_dataset(table, 32, config, training=training)))
        return np.asarray(images)

    clean = first_batch(QUICK, training=False)
    np.testing.assert_array_equal(first_batch(both, training=False), clean)
    trained = first_batch(both, training=True)
    plain = first_batch(QUICK, training=True)  # same shuffled order, no augmentation
    assert trained.shape == clean.shape and trained.min() >= 0 and trained.max() <= 255
    assert (np.abs(trained - plain).mean(axis=(1, 2, 3)) > 1.0).all()
    np.testing.assert_array_equal(trained[..., 0], trained[..., 2])
