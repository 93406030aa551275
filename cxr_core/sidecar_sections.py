"""Typed sections of the model sidecar added for site fitting, "uncertain" and honest headlines.

Each section is a frozen dataclass read once from the sidecar with :class:`cxr_core.fields.Fields`
(a wrongly shaped section makes the model unusable with one sentence naming the key) and written
back with ``to_dict``. All are optional: a sidecar saved before they existed loads as before.

- ``conformal``: :class:`cxr_core.stats.conformal.ConformalSets` (class-conditional quantiles).
- ``population_check``: :class:`PopulationCheck`, the input check's "unusual" grade.
- ``site_calibration``: :class:`SiteCalibration`, what ``python -m cxr_core calibrate`` fitted.
- ``independent_checks``: a list whose objects are :class:`IndependentCheck` records (dated
  figures measured outside this repository); plain strings in it are older free-text notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cxr_core.fields import Fields, is_number
from cxr_core.stats.conformal import ConformalSets

__all__ = [
    "CHECK_METRICS",
    "Figure",
    "IndependentCheck",
    "PopulationCheck",
    "SiteCalibration",
    "read_conformal",
    "read_independent_records",
    "read_population_check",
    "read_site_calibration",
]

#: Metrics an independent check may record, each a number in [0, 1].
CHECK_METRICS = (
    "sensitivity",
    "specificity",
    "accuracy",
    "ece",
    "roc_auc",
    "coverage",
    "uncertain",
    "definite_accuracy",
    "refused",
)


@dataclass(frozen=True)
class Figure:
    """One measured figure with its 95% interval (``low``/``high`` None when not measured)."""

    value: float
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """``{"value", "low", "high"}``."""
        return {"value": self.value, "low": self.low, "high": self.high}


def _figures(fields: Fields, key: str) -> dict[str, Figure]:
    out = {}
    for name, item in fields.mapping(key).items():
        sub = Fields(item, f"{fields.source} {key} {name}", fields.error)
        value = sub.number("value", required=True)
        out[str(name)] = Figure(value, sub.number("low"), sub.number("high"))
    return out


def read_conformal(fields: Fields) -> ConformalSets | None:
    """The ``conformal`` section, or None when absent."""
    if fields.values.get("conformal") is None:
        return None
    sub = fields.sub("conformal")
    normal_max = sub.number("normal_max")
    pneumonia_min = sub.number("pneumonia_min")
    return ConformalSets(
        coverage=sub.number("coverage", low=0.5, high=0.999, required=True),
        normal_max=float("inf") if normal_max is None else normal_max,
        pneumonia_min=float("-inf") if pneumonia_min is None else pneumonia_min,
        n_normal=sub.integer("n_normal", 0, low=0),
        n_pneumonia=sub.integer("n_pneumonia", 0, low=0),
        fitted_on=sub.text("fitted_on", ""),
    )


@dataclass(frozen=True)
class PopulationCheck:
    """The input check's three grades: typical, unusual, refused.

    Attributes:
        unusual_threshold: Feature distances above it (and at most the refusal threshold) are
            graded ``unusual``: a verdict with a warning.
        unusual_quantile: The quantile of the validation distances under the stress suite
            it was set at.
        figures: Share of each image set in each grade (set name -> grade -> share).
        training_ages: ``(youngest, oldest)`` age in years of the training children; a DICOM
            whose age lies outside is graded ``unusual`` too.
    """

    unusual_threshold: float
    unusual_quantile: float
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    training_ages: tuple[float, float] = (1.0, 5.0)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's ``population_check`` entry."""
        return {
            "unusual_threshold": self.unusual_threshold,
            "unusual_quantile": self.unusual_quantile,
            "figures": self.figures,
            "training_ages": list(self.training_ages),
        }


def read_population_check(fields: Fields) -> PopulationCheck | None:
    """The ``population_check`` section, or None when absent."""
    if fields.values.get("population_check") is None:
        return None
    sub = fields.sub("population_check")
    figures = {}
    for name, shares in sub.mapping("figures").items():
        figures[str(name)] = Fields({"x": shares}, sub.source, sub.error).numbers("x")
    ages = sub.values.get("training_ages", [1.0, 5.0])
    if not (isinstance(ages, list) and len(ages) == 2 and all(map(is_number, ages))):
        sub.fail("training_ages", "a list of two ages")
    return PopulationCheck(
        unusual_threshold=sub.number("unusual_threshold", low=0.0, required=True),
        unusual_quantile=sub.number("unusual_quantile", low=0.0, high=1.0, required=True),
        figures=figures,
        training_ages=(float(ages[0]), float(ages[1])),
    )


@dataclass(frozen=True)
class SiteCalibration:
    """What fitting a model to a site's labelled images did (``python -m cxr_core calibrate``).

    Attributes:
        site: The site's name (its folder, or ``--site-name``).
        n_normal: Site images of NORMAL used.
        n_pneumonia: Site images of PNEUMONIA used.
        prevalence: Share of PNEUMONIA among them.
        date: When it was fitted (ISO 8601, UTC).
        data_fingerprint: Fingerprint of the site's image list
        (``cxr_core.data.tables.fingerprint``).
        method: ``platt`` or ``temperature``.
        scale: Fitted slope on the original model's logit.
        bias: Fitted intercept.
        threshold: The new threshold, by the original model's rule on calibrated site scores.
        original_model: File name of the model it was fitted from (never modified).
        original_threshold: That model's threshold.
        folds: Folds of the cross-fitting.
        before: Out-of-fold figures of the original model at its own threshold.
        after: Cross-fitted out-of-fold figures of the fitted model (each fold's images scored
            by a fit on the other folds).
    """

    site: str
    n_normal: int
    n_pneumonia: int
    prevalence: float
    date: str
    data_fingerprint: str
    method: str
    scale: float
    bias: float
    threshold: float
    original_model: str
    original_threshold: float
    folds: int
    before: dict[str, Figure] = field(default_factory=dict)
    after: dict[str, Figure] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's ``site_calibration`` entry."""
        values = {k: v for k, v in self.__dict__.items() if k not in ("before", "after")}
        values["before"] = {name: f.to_dict() for name, f in self.before.items()}
        values["after"] = {name: f.to_dict() for name, f in self.after.items()}
        return values


def read_site_calibration(fields: Fields) -> SiteCalibration | None:
    """The ``site_calibration`` section, or None when absent."""
    if fields.values.get("site_calibration") is None:
        return None
    s = fields.sub("site_calibration")
    return SiteCalibration(
        site=s.text("site", required=True),
        n_normal=s.integer("n_normal", low=0, required=True),
        n_pneumonia=s.integer("n_pneumonia", low=0, required=True),
        prevalence=s.number("prevalence", low=0.0, high=1.0, required=True),
        date=s.text("date", ""),
        data_fingerprint=s.text("data_fingerprint", ""),
        method=s.text("method", "platt"),
        scale=s.number("scale", required=True),
        bias=s.number("bias", required=True),
        threshold=s.number("threshold", low=0.0, high=1.0, required=True),
        original_model=s.text("original_model", ""),
        original_threshold=s.number("original_threshold", 0.5, low=0.0, high=1.0),
        folds=s.integer("folds", 0, low=0),
        before=_figures(s, "before"),
        after=_figures(s, "after"),
    )


@dataclass(frozen=True)
class IndependentCheck:
    """A dated record of figures measured independently of this repository's data.

    Attributes:
        date: When it was measured (ISO date).
        model: Which model, in words (e.g. "bundled ensemble cxr_lite0").
        threshold: The threshold the figures were measured at (None for ranking-only figures).
        population: Who was scored, e.g. "official test split, children 1-5, Guangzhou".
        n: Images scored.
        setting: What was done, e.g. "at the stored threshold" or "after site fitting on 50
            local images (mean of 20 draws)".
        figures: Metric name (:data:`CHECK_METRICS`) -> value in [0, 1].
        note: One plain sentence more, or empty.
    """

    date: str
    model: str
    threshold: float | None
    population: str
    n: int
    setting: str
    figures: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """One object of the sidecar's ``independent_checks`` list."""
        return dict(self.__dict__)


def read_independent_records(fields: Fields) -> tuple[IndependentCheck, ...]:
    """The object records of ``independent_checks`` (its strings are read as notes elsewhere)."""
    items = fields.values.get("independent_checks") or []
    if not isinstance(items, list):
        fields.fail("independent_checks", "a list")
    records = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            continue
        sub = Fields(item, f"{fields.source} independent_checks[{index}]", fields.error)
        figures = sub.numbers("figures")
        if not all(0.0 <= value <= 1.0 for value in figures.values()):
            sub.fail("figures", "an object of numbers in [0, 1]")
        records.append(
            IndependentCheck(
                date=sub.text("date", required=True),
                model=sub.text("model", required=True),
                threshold=sub.number("threshold", low=0.0, high=1.0),
                population=sub.text("population", required=True),
                n=sub.integer("n", 0, low=0),
                setting=sub.text("setting", ""),
                figures=figures,
                note=sub.text("note", ""),
            )
        )
    return tuple(records)
