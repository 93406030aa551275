"""The model sidecar (``<model>.json``) as a typed, validated record; no TensorFlow needed.

:func:`read_metadata` reads and checks a sidecar once and returns a frozen
:class:`ModelMetadata`; everything else reads its attributes. A sidecar of the wrong shape
(``null``, a list, ``"threshold": "abc"``, ``metrics`` as a list, ...) raises
:class:`ModelLoadError` with one sentence naming the key, so the app lists that model as
unusable and goes on with the others. :func:`check_model_file` also looks inside the ``.keras``
zip (without loading it) for the input size and for truncation.
"""

from __future__ import annotations

import io as _io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxr_core import io
from cxr_core.config import CLASS_NAMES, RunConfig
from cxr_core.errors import ConfigError, ModelLoadError
from cxr_core.fields import Fields, is_number, short_repr
from cxr_core.sidecar_reports import (
    METRIC_NAMES,
    CalibrationEntry,
    InputGateEntry,
    StressReport,
    read_calibration,
    read_input_gate,
    read_stress,
)
from cxr_core.sidecar_sections import (
    ConformalSets,
    IndependentCheck,
    PopulationCheck,
    SiteCalibration,
    read_conformal,
    read_independent_records,
    read_population_check,
    read_site_calibration,
)

__all__ = [
    "GATE_VERSION",
    "METRIC_NAMES",
    "Metrics",
    "ModelMetadata",
    "check_model_file",
    "keras_input_size",
    "read_metadata",
    "sidecar_path",
    "unsafe_layer",
]

#: Largest model configuration read from a ``.keras`` archive.
MAX_KERAS_CONFIG_BYTES = 16 * 1024 * 1024
#: Keras layers that run stored Python code: refused when a model is listed.
UNSAFE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
#: Version of the input check's file format (:mod:`cxr_core.inference.input_check`).
GATE_VERSION = 1
#: Largest input check file read (a 1,280-feature gate is about 6.5 MB).
MAX_GATE_BYTES = 64 * 1024 * 1024

_CONFUSION = ("tn", "fp", "fn", "tp")


def sidecar_path(model_path: str | Path) -> Path:
    """Return the JSON metadata path that belongs to ``model_path``."""
    return Path(model_path).with_suffix(".json")


@dataclass(frozen=True)
class Metrics:
    """A validation report's numbers (``evaluate --json`` without curves).

    Attributes:
        values: Metric name (one of :data:`METRIC_NAMES`) -> value in [0, 1]; absent when the
            report holds none (e.g. ROC AUC on one class).
        intervals: Metric name -> bootstrap 95% interval ``(low, high)``.
        confusion: ``tn``, ``fp``, ``fn``, ``tp`` counts (empty when not stored).
        n: Number of images, or None.
    """

    values: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confusion: dict[str, int] = field(default_factory=dict)
    n: int | None = None

    def value(self, name: str) -> float | None:
        """The metric ``name``, or None when the report lacks it."""
        return self.values.get(name)

    def interval(self, name: str) -> tuple[float, float] | None:
        """The metric's 95% interval, or None."""
        return self.intervals.get(name)

    @classmethod
    def from_fields(cls, fields: Fields) -> Metrics:
        """Read and check a report object (raises the ``fields`` error class)."""
        values = {}
        for name in METRIC_NAMES:
            value = fields.number(name, low=0.0, high=1.0)
            if value is not None:
                values[name] = value
        intervals = {}
        for name, pair in fields.mapping("ci").items():
            if pair is None:
                continue
            if not (isinstance(pair, list) and len(pair) == 2 and all(map(is_number, pair))):
                fields.fail("ci", "an object of [low, high] pairs")
            intervals[str(name)] = (float(pair[0]), float(pair[1]))
        matrix = fields.sub("confusion_matrix")
        confusion = {key: matrix.integer(key, low=0) for key in _CONFUSION}
        confusion = {key: count for key, count in confusion.items() if count is not None}
        return cls(values, intervals, confusion, fields.integer("n", low=0))


@dataclass(frozen=True)
class ModelMetadata:
    """What the sidecar of a saved model says, checked.

    Attributes:
        backbone: Registry name of the backbone (``cxr_core.backbones.BACKBONES``), or another
            name for models from elsewhere.
        image_size: Side of the square model input, in pixels.
        threshold: Decision threshold on the PNEUMONIA probability, in [0, 1].
        class_names: Names of label 0 and label 1.
        last_conv_layer: The layer Grad-CAM explains, or None to search for it.
        gradcam_layers: The layers Grad-CAM explains together (an ensemble's members' last
            convolutional layers); empty for a single model, which uses ``last_conv_layer``.
        metrics: The validation report.
        run_config: The training configuration as stored (a JSON object), or None.
        validation: One line on the validation split.
        texts: Other descriptive strings (``threshold_rule``, ``training_command``,
            ``hardware``, ``devices``, ``data_fingerprint``, ``saved_at``, ``name``, ...).
        training_seconds: Training time, or None.
        versions: Library name -> version at training time.
        independent_checks: Free-text sentences on checks beyond the validation split (the
            strings of the sidecar's ``independent_checks`` list).
        independent_records: The dated, typed records of that list
            (:class:`cxr_core.sidecar_sections.IndependentCheck`).
        stress: The stress suite report (:func:`cxr_core.evaluation.stress.stress_report`), or None.
        calibration: How probabilities were calibrated, or None.
        input_gate: The input check's entry (:func:`cxr_core.inference.input_check.save_gate`),
            or None (``cxr_core.sidecar_reports`` types these three).
        conformal: Class-conditional conformal bounds (``cxr_core.stats.conformal``), or None.
        population_check: The input check's "unusual" grade, or None.
        site_calibration: What fitting the model to a site did, or None.
        raw: The whole sidecar object, for re-saving it (not compared).
    """

    backbone: str
    image_size: int
    threshold: float
    class_names: tuple[str, str] = CLASS_NAMES
    last_conv_layer: str | None = None
    gradcam_layers: tuple[str, ...] = ()
    metrics: Metrics = field(default_factory=Metrics)
    run_config: dict[str, Any] | None = None
    validation: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    training_seconds: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    independent_checks: tuple[str, ...] = ()
    stress: StressReport | None = None
    calibration: CalibrationEntry | None = None
    input_gate: InputGateEntry | None = None
    independent_records: tuple[IndependentCheck, ...] = ()
    conformal: ConformalSets | None = None
    population_check: PopulationCheck | None = None
    site_calibration: SiteCalibration | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    #: Descriptive string keys kept in ``texts``.
    TEXT_KEYS = (
        "name",
        "threshold_rule",
        "threshold_rule_text",
        "threshold_scores",
        "training_command",
        "hardware",
        "devices",
        "data_fingerprint",
        "saved_at",
        "card_notes",
        "intended_use",
        "ensemble",
        "site_fitting_note",
    )

    def text(self, key: str, default: str = "") -> str:
        """A descriptive string of :attr:`TEXT_KEYS`, or ``default``."""
        return self.texts.get(key, default)

    @property
    def recipe(self) -> RunConfig | None:
        """The training configuration as a :class:`RunConfig`, or None if absent or stale."""
        if self.run_config is None:
            return None
        try:
            return RunConfig.from_dict(self.run_config)
        except ConfigError:
            return None

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as read (a copy), e.g. to save it beside a copied model."""
        return json.loads(json.dumps(self.raw))

    @classmethod
    def from_dict(cls, values: Any, source: str = "model metadata") -> ModelMetadata:
        """Check a parsed sidecar; raises :class:`ModelLoadError` naming the bad key."""
        f = Fields(values, source, ModelLoadError)
        names = values.get("class_names", list(CLASS_NAMES))
        if not (
            isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)
        ):
            f.fail("class_names", "a list of two names")
        versions = f.mapping("versions")
        if not all(isinstance(v, str) for v in versions.values()):
            f.fail("versions", "an object of version strings")
        run_config = values.get("run_config")
        if run_config is not None and not isinstance(run_config, dict):
            f.fail("run_config", "a JSON object")
        texts = {key: f.text(key) for key in cls.TEXT_KEYS}
        return cls(
            backbone=_nonempty(f, "backbone"),
            image_size=f.integer("image_size", low=16, high=4096, required=True),
            threshold=f.number("threshold", low=0.0, high=1.0, required=True),
            class_names=(names[0], names[1]),
            last_conv_layer=f.text("last_conv_layer") or None,
            gradcam_layers=f.texts("gradcam_layers"),
            metrics=Metrics.from_fields(f.sub("metrics")),
            run_config=run_config,
            validation=f.text("validation"),
            texts={key: value for key, value in texts.items() if value is not None},
            training_seconds=f.number("training_seconds", low=0.0),
            versions=dict(versions),
            independent_checks=_notes(f),
            independent_records=read_independent_records(f),
            conformal=read_conformal(f),
            population_check=read_population_check(f),
            site_calibration=read_site_calibration(f),
            stress=read_stress(f),
            calibration=read_calibration(f),
            input_gate=read_input_gate(f),
            raw=values,
        )


def _notes(fields: Fields) -> tuple[str, ...]:
    """The strings of ``independent_checks`` (its objects are records)."""
    items = fields.values.get("independent_checks") or []
    if not isinstance(items, list) or not all(isinstance(i, str | dict) for i in items):
        fields.fail("independent_checks", "a list of sentences and records")
    return tuple(item for item in items if isinstance(item, str))


def _nonempty(fields: Fields, key: str) -> str:
    value = fields.text(key, required=True)
    if not value or not value.strip():
        fields.fail(key, "a name")
    return value


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read and check the sidecar of the model at ``path``.

    Raises:
        ModelLoadError: The sidecar is missing, not JSON, or wrongly shaped (the message
            names the key and the value received).
    """
    sidecar = sidecar_path(path)
    try:
        values = io.read_json(sidecar, ModelLoadError)
    except FileNotFoundError:
        raise ModelLoadError(f"model metadata file not found: {sidecar.name}") from None
    return ModelMetadata.from_dict(values, source=f"model metadata {sidecar.name}")


def keras_input_size(path: str | Path) -> int | None:
    """The input side a ``.keras`` file declares, read from its zip without loading it.

    Returns:
        The side in pixels, or None when the file does not say (a model that takes any size).

    Raises:
        ModelLoadError: The file is missing, truncated or not a ``.keras`` zip archive.
    """
    return _input_side(_keras_config(Path(path)))


def _input_side(config: Any) -> int | None:
    try:
        layers = config["config"]["layers"]
        first = next(layer for layer in layers if layer.get("class_name") == "InputLayer")
        shape = first["config"].get("batch_shape") or first["config"].get("batch_input_shape")
        side = shape[1]
    except (KeyError, TypeError, IndexError, StopIteration, AttributeError):
        return None
    return side if isinstance(side, int) else None


def _keras_config(path: Path) -> Any:
    """The model configuration inside a ``.keras`` zip, read within a size and depth cap."""
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path.name}")
    damaged = ModelLoadError(
        f"{path.name} is truncated or damaged: it is not a complete .keras (zip) archive"
    )
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("config.json").file_size > MAX_KERAS_CONFIG_BYTES:
                raise damaged
            text = archive.read("config.json")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError, RuntimeError):
        raise damaged from None
    return io.parse_json(text, f"{path.name}'s config.json", ModelLoadError, max_depth=256)


def unsafe_layer(config: Any) -> str | None:
    """The class name of the first layer in a Keras model config that runs stored code
    (``Lambda``, ``TFOpLambda``), which safe mode refuses to load; None when there is none."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("class_name") in UNSAFE_LAYERS:
                return str(value["class_name"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _check_gate_file(path: Path) -> None:
    """The input check's arrays are readable and consistent (the model's feature size is
    checked again when the model is loaded)."""
    unusable = f"the input check {path.name} is unusable"
    try:
        data = io.read_regular_bytes(path, MAX_GATE_BYTES, ModelLoadError)
        with np.load(_io.BytesIO(data), allow_pickle=False) as stored:
            version = int(stored["version"])
            size = stored["location"].shape
            square = stored["precision"].shape
            threshold = float(stored["threshold"])
    except FileNotFoundError:
        raise ModelLoadError(f"{unusable}: the file is missing") from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile):
        raise ModelLoadError(f"{unusable}: the file is damaged") from None
    if version != GATE_VERSION:
        raise ModelLoadError(f"{unusable}: version {version}, not {GATE_VERSION}")
    if len(size) != 1 or square != (size[0], size[0]) or not np.isfinite(threshold):
        raise ModelLoadError(f"{unusable}: its arrays do not fit together")


def check_model_file(path: str | Path) -> ModelMetadata:
    """Read a model's sidecar and check that it fits the ``.keras`` file, cheaply.

    Raises:
        ModelLoadError: The model or its sidecar is missing, truncated or wrongly shaped,
            the model holds a layer that runs stored code (``Lambda``), its input check file
            is missing or damaged, or the sidecar's image size disagrees with the model's
            input.
    """
    metadata = read_metadata(path)
    config = _keras_config(Path(path))
    unsafe = unsafe_layer(config)
    if unsafe:
        raise ModelLoadError(
            f"{Path(path).name} contains a {unsafe} layer, which runs stored code; "
            "Keras safe mode never loads it"
        )
    if metadata.input_gate is not None:
        _check_gate_file(Path(path).with_suffix(".gate.npz"))
    side = _input_side(config)
    if side is not None and side != metadata.image_size:
        raise ModelLoadError(
            f"the metadata says {metadata.image_size} px but the model takes {side} px images. "
            f"Received: image_size={short_repr(metadata.image_size)}"
        )
    return metadata
