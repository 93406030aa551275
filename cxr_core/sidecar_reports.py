"""Typed sections of the model sidecar written when a model is finalized.

- ``stress``: :class:`StressReport`, the stress suite's report
  (:func:`cxr_core.evaluation.stress.stress_report`): metrics per key, clean first, and a summary.
- ``calibration``: :class:`CalibrationEntry`, how the probabilities were calibrated
  (``cxr_core.training.finalize``).
- ``input_gate``: :class:`InputGateEntry`, the input check's entry
  (:func:`cxr_core.inference.input_check.save_gate`).

Each is a frozen dataclass read once with :class:`cxr_core.fields.Fields` (a wrongly shaped
section makes the model unusable with one sentence naming the key) and written back with
``to_dict`` to the JSON it was read from: keys the dataclass does not name are kept, as found,
in ``extra``. A null value is read as an absent one. All are optional, and sidecars saved before
the suite had a held-out summary or MedMNIST-C figures still load (those parts read as empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cxr_core.errors import CXRError, ModelLoadError
from cxr_core.fields import Fields, is_number

__all__ = [
    "METRIC_NAMES",
    "CalibrationEntry",
    "InputGateEntry",
    "StressReport",
    "SuiteMetrics",
    "SuiteSummary",
    "read_calibration",
    "read_input_gate",
    "read_stress",
]

#: Metrics a validation report may hold, each a number in [0, 1] or null.
METRIC_NAMES = (
    "roc_auc",
    "pr_auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "npv",
    "f1",
    "ece",
    "brier",
    "prevalence",
)
_CONFUSION = ("tn", "fp", "fn", "tp")


def _number_map(fields: Fields, key: str) -> dict[str, float | None]:
    """An object of numbers (null kept), values as stored; ``{}`` when absent."""
    value = fields.mapping(key)
    if not all(v is None or is_number(v) for v in value.values()):
        fields.fail(key, "an object of numbers")
    return {str(k): v for k, v in value.items()}


def _optional_map(fields: Fields, key: str) -> dict[str, float | None] | None:
    """:func:`_number_map`, or None when the key is absent or null."""
    return None if fields.values.get(key) is None else _number_map(fields, key)


def _extra(fields: Fields, named: tuple[str, ...]) -> dict[str, Any]:
    """The keys a section's dataclass does not name, as found (null values dropped)."""
    return {k: v for k, v in fields.values.items() if k not in named and v is not None}


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without its None entries (absent keys stay absent when written back)."""
    return {k: v for k, v in values.items() if v is not None}


def _entry_dict(entry: Any) -> dict[str, Any]:
    """A section's JSON: the keys it did not name (``extra``), then its named fields that are
    set."""
    named = {k: v for k, v in entry.__dict__.items() if k != "extra"}
    return {**entry.extra, **_present(named)}


@dataclass(frozen=True)
class SuiteMetrics:
    """The metrics of one stress-suite key: ``evaluate --json``'s without curves, plus
    ``flip_rate`` and ``balanced_error``.

    Attributes:
        values: Every number of the report by name (``roc_auc``, ``sensitivity``, ``flip_rate``,
            ``n``, ``threshold``, ...); None where the report holds null (e.g. ROC AUC on one
            class). The metrics of :data:`METRIC_NAMES` lie in [0, 1].
        intervals: ``ci``: metric name -> bootstrap 95% ``[low, high]`` or None; None when
            the report has no ``ci``.
        confusion: ``confusion_matrix``: ``tn``, ``fp``, ``fn``, ``tp`` counts; None when absent.
        extra: Other keys, as found.
    """

    values: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] | None = None
    confusion: dict[str, int | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The metric ``name``, or None when the report lacks it."""
        return self.values.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The report object as stored."""
        out = {**self.extra, **self.values}
        if self.intervals is not None:
            out["ci"] = {k: None if p is None else list(p) for k, p in self.intervals.items()}
        if self.confusion is not None:
            out["confusion_matrix"] = dict(self.confusion)
        return out

    @classmethod
    def from_fields(cls, fields: Fields) -> SuiteMetrics:
        """Read and check one key's report (raises the ``fields`` error class)."""
        values, extra = {}, {}
        for key, value in fields.values.items():
            if key in ("ci", "confusion_matrix"):
                continue
            if key in METRIC_NAMES:
                fields.number(key, low=0.0, high=1.0)
            elif key == "n":
                fields.integer(key, low=0)
            elif not (value is None or is_number(value)):
                extra[key] = value
                continue
            values[key] = value
        intervals = None
        if fields.values.get("ci") is not None:
            intervals = {}
            for name, pair in fields.mapping("ci").items():
                if pair is not None and not (
                    isinstance(pair, list) and len(pair) == 2 and all(map(is_number, pair))
                ):
                    fields.fail("ci", "an object of [low, high] pairs")
                intervals[str(name)] = None if pair is None else (pair[0], pair[1])
        confusion = None
        if fields.values.get("confusion_matrix") is not None:
            matrix = fields.sub("confusion_matrix")
            for key in _CONFUSION:
                matrix.integer(key, low=0)
            confusion = dict(matrix.values)
        return cls(values, intervals, confusion, extra)


@dataclass(frozen=True)
class SuiteSummary:
    """The stress suite's summary over its perturbations (each part empty when not stored).

    Attributes:
        worst: Metric -> its worst value (lowest; highest for ``balanced_error``, ``ece`` and
            ``flip_rate``).
        worst_perturbation: Metric -> the key where that worst value was measured.
        mean: Metric -> its mean over the perturbations.
        worst_held_out: ``worst`` over the held-out families only.
        medmnist_c: ``balanced_error``, ``relative_balanced_error`` and ``families``
            (:func:`cxr_core.evaluation.stress.relative_balanced_error`).
        extra: Other keys, as found.
    """

    worst: dict[str, float | None] = field(default_factory=dict)
    worst_perturbation: dict[str, str] = field(default_factory=dict)
    mean: dict[str, float | None] = field(default_factory=dict)
    worst_held_out: dict[str, float | None] = field(default_factory=dict)
    medmnist_c: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _NUMBERS = ("worst", "mean", "worst_held_out", "medmnist_c")

    def to_dict(self) -> dict[str, Any]:
        """The ``summary`` object."""
        parts = {name: dict(getattr(self, name)) for name in self._NUMBERS}
        return {**self.extra, **parts, "worst_perturbation": dict(self.worst_perturbation)}

    @classmethod
    def from_fields(cls, fields: Fields) -> SuiteSummary:
        """Read and check a ``summary`` object (raises the ``fields`` error class)."""
        which = fields.mapping("worst_perturbation")
        if not all(isinstance(v, str) for v in which.values()):
            fields.fail("worst_perturbation", "an object of names")
        parts = {name: _number_map(fields, name) for name in cls._NUMBERS}
        extra = _extra(fields, (*cls._NUMBERS, "worst_perturbation"))
        return cls(worst_perturbation=dict(which), extra=extra, **parts)


@dataclass(frozen=True)
class StressReport:
    """The stress suite's report stored with a model (``stress``).

    Attributes:
        threshold: The threshold the verdicts were counted at, or None when not stored.
        clean: The unperturbed images' metrics.
        perturbations: Key (``family@severity``; a suite v1 sidecar has bare names) -> metrics,
            in stored order.
        summary: Worst case, mean, held-out worst case and MedMNIST-C figures.
        extra: Other keys, as found (``stress --json`` adds ``model``, ``split`` and ``n``).
    """

    threshold: float | None = None
    clean: SuiteMetrics = field(default_factory=SuiteMetrics)
    perturbations: dict[str, SuiteMetrics] = field(default_factory=dict)
    summary: SuiteSummary = field(default_factory=SuiteSummary)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as :func:`cxr_core.evaluation.stress.stress_report` returns it."""
        return {
            **self.extra,
            **_present({"threshold": self.threshold}),
            "clean": self.clean.to_dict(),
            "perturbations": {name: m.to_dict() for name, m in self.perturbations.items()},
            "summary": self.summary.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, values: Any, source: str = "stress report", error: type[CXRError] = ModelLoadError
    ) -> StressReport:
        """Check a stress report; raises ``error`` naming the bad key."""
        f = Fields(values, source, error)
        perturbations = {
            str(name): SuiteMetrics.from_fields(Fields(report, f"{source} {name}", error))
            for name, report in f.mapping("perturbations").items()
        }
        return cls(
            threshold=f.number("threshold", low=0.0, high=1.0),
            clean=SuiteMetrics.from_fields(f.sub("clean")),
            perturbations=perturbations,
            summary=SuiteSummary.from_fields(f.sub("summary")),
            extra=_extra(f, ("threshold", "clean", "perturbations", "summary")),
        )


@dataclass(frozen=True)
class CalibrationEntry:
    """How the model's probabilities were calibrated (``calibration``).

    Attributes:
        method: ``platt`` (folded into the logit layer) or ``none``.
        fitted_on: Which scores it was fitted on, in words.
        folded_into: Where the fit lives in the model (``logit layer``).
        scale: Platt slope on the logit.
        bias: Platt intercept.
        ece_before: ECE by score set (``clean``, ``stressed``) before the fit.
        ece_after: The same after it.
        ece: ECE by score set when nothing was fitted (``method`` ``none``).
        note: Why it was not calibrated, when it was not.
        extra: Other keys, as found.

    Every attribute but ``extra`` is None when the sidecar lacks it.
    """

    method: str | None = None
    fitted_on: str | None = None
    folded_into: str | None = None
    scale: float | None = None
    bias: float | None = None
    ece_before: dict[str, float | None] | None = None
    ece_after: dict[str, float | None] | None = None
    ece: dict[str, float | None] | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _TEXTS = ("method", "fitted_on", "folded_into", "note")
    _MAPS = ("ece_before", "ece_after", "ece")

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's ``calibration`` entry."""
        return _entry_dict(self)


def read_calibration(fields: Fields) -> CalibrationEntry | None:
    """The ``calibration`` section, or None when absent."""
    if fields.values.get("calibration") is None:
        return None
    s = fields.sub("calibration")
    entry = CalibrationEntry._TEXTS + CalibrationEntry._MAPS + ("scale", "bias")
    return CalibrationEntry(
        **{key: s.text(key) for key in CalibrationEntry._TEXTS},
        **{key: _optional_map(s, key) for key in CalibrationEntry._MAPS},
        scale=_stored(s, "scale"),
        bias=_stored(s, "bias"),
        extra=_extra(s, entry),
    )


def _stored(fields: Fields, key: str, low: float | None = None, high: float | None = None) -> Any:
    """A number checked like :meth:`Fields.number` but kept as stored (an int stays an int)."""
    fields.number(key, low=low, high=high)
    return fields.values.get(key)


@dataclass(frozen=True)
class InputGateEntry:
    """The input check's entry (``input_gate``); its arrays lie in the ``.gate.npz`` beside.

    Attributes:
        file: Name of the gate file (``<model>.gate.npz``).
        version: The gate file's format version.
        method: How distances are measured, in words.
        feature_layer: The layer whose pooled features are checked.
        threshold: Refusal threshold on the feature distance.
        fitted_on: Training images the gate was fitted on.
        accept_quantile: Share of validation images kept below the threshold.
        min_contrast: Pixel check: least grey-level spread accepted.
        max_colour: Pixel check: most colour accepted.
        figures: One sentence of measured refusal figures.
        extra: Other keys, as found.

    Every attribute but ``extra`` is None when the sidecar lacks it.
    """

    file: str | None = None
    version: int | None = None
    method: str | None = None
    feature_layer: str | None = None
    threshold: float | None = None
    fitted_on: int | None = None
    accept_quantile: float | None = None
    min_contrast: float | None = None
    max_colour: float | None = None
    figures: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _TEXTS = ("file", "method", "feature_layer", "figures")
    _NUMBERS = ("threshold", "min_contrast", "max_colour")

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's ``input_gate`` entry."""
        return _entry_dict(self)


def read_input_gate(fields: Fields) -> InputGateEntry | None:
    """The ``input_gate`` section, or None when absent."""
    if fields.values.get("input_gate") is None:
        return None
    s = fields.sub("input_gate")
    named = (*InputGateEntry._TEXTS, *InputGateEntry._NUMBERS, "version", "fitted_on")
    return InputGateEntry(
        **{key: s.text(key) for key in InputGateEntry._TEXTS},
        **{key: _stored(s, key) for key in InputGateEntry._NUMBERS},
        version=s.integer("version"),
        fitted_on=s.integer("fitted_on", low=0),
        accept_quantile=_stored(s, "accept_quantile", 0.0, 1.0),
        extra=_extra(s, (*named, "accept_quantile")),
    )


def read_stress(fields: Fields) -> StressReport | None:
    """The ``stress`` section, or None when absent."""
    if fields.values.get("stress") is None:
        return None
    sub = fields.sub("stress")
    return StressReport.from_dict(sub.values, sub.source, fields.error)
