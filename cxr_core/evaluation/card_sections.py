"""The honest headline and the newer sections of the model card, from the typed sidecar.

The Home page and the model card lead with what was measured on patients the model never saw
(:class:`cxr_core.sidecar_sections.IndependentCheck` records), in a plain table, and only then
with the validation figures, labelled as flattering. A record states the model and threshold it
was measured for: when the current model's threshold differs, the table says the records do not
describe it. Strings from the sidecar are escaped for Markdown where Markdown is produced.
"""

from __future__ import annotations

from cxr_core.markdown import escape_markdown as md
from cxr_core.sidecar import ModelMetadata

__all__ = [
    "HEADLINE_COLUMNS",
    "comparison_bars",
    "conformal_lines",
    "headline_markdown",
    "headline_note",
    "headline_rows",
    "population_lines",
    "site_lines",
]

#: Columns of the headline table, in order.
HEADLINE_COLUMNS = (
    "Who",
    "Sensitivity",
    "Specificity",
    "ECE",
    "Setting",
    "Images",
    "Measured",
    "Model (threshold)",
)
_SAME_THRESHOLD = 0.0005


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def headline_rows(metadata: ModelMetadata) -> list[dict[str, str]]:
    """One plain-text row per independent record (:data:`HEADLINE_COLUMNS`)."""
    rows = []
    for record in metadata.independent_records:
        threshold = "" if record.threshold is None else f" ({record.threshold:.3f})"
        rows.append(
            {
                "Measured": record.date,
                "Who": record.population,
                "Images": str(record.n),
                "Setting": record.setting,
                "Sensitivity": _number(record.figures.get("sensitivity")),
                "Specificity": _number(record.figures.get("specificity")),
                "ECE": _number(record.figures.get("ece")),
                "Model (threshold)": f"{record.model}{threshold}",
            }
        )
    return rows


def headline_note(metadata: ModelMetadata) -> str:
    """One sentence on whom the records describe; empty when there are none."""
    records = metadata.independent_records
    if not records:
        return ""
    thresholds = {r.threshold for r in records if r.threshold is not None}
    if thresholds and all(abs(t - metadata.threshold) > _SAME_THRESHOLD for t in thresholds):
        measured = ", ".join(f"{t:.3f}" for t in sorted(thresholds))
        return (
            f"These records were measured for a model at threshold {measured} (see each "
            f"record's date); this model's threshold is {metadata.threshold:.3f}, so they do "
            "not describe it. It has not been checked independently yet."
        )
    return (
        "Measured by the maintainers on patients this model never saw (data kept out of the "
        "repository). These, not the validation figures below, are the guide to new patients."
    )


def headline_markdown(metadata: ModelMetadata) -> list[str]:
    """The card's first section: the records as a Markdown table (empty when none)."""
    rows = headline_rows(metadata)
    if not rows:
        return []
    lines = [
        "## Independent checks: read these first",
        md(headline_note(metadata)),
        "",
        "| " + " | ".join(HEADLINE_COLUMNS) + " |",
        "|" + "---|" * len(HEADLINE_COLUMNS),
    ]
    lines += ["| " + " | ".join(md(row[c]) for c in HEADLINE_COLUMNS) + " |" for row in rows]
    lines += [""]
    for record in metadata.independent_records:
        extra = {k: v for k, v in record.figures.items() if k not in ("sensitivity", "specificity")}
        details = ", ".join(
            f"{k.replace('_', ' ')} {v:.3f}" for k, v in extra.items() if k != "ece"
        )
        sentence = "; ".join(part for part in (details, record.note) if part)
        if sentence:
            lines.append(f"- {md(record.setting)} ({md(record.population)}): {md(sentence)}")
    return [*lines, ""]


def comparison_bars(metadata: ModelMetadata) -> list[tuple[str, float, float]]:
    """``(group, sensitivity, specificity)`` for the headline picture: validation, new
    children at the stored threshold, after site fitting (the groups the sidecar holds)."""
    bars = []
    sens, spec = metadata.metrics.value("sensitivity"), metadata.metrics.value("specificity")
    if sens is not None and spec is not None:
        bars.append(("validation (flatters)", sens, spec))
    for record in metadata.independent_records:
        f = record.figures
        if "sensitivity" not in f or "specificity" not in f or record.n < 100:
            continue
        if record.setting == "at the stored threshold":
            bars.append(("new children, stored threshold", f["sensitivity"], f["specificity"]))
        elif record.setting.startswith("after site fitting") and len(bars) < 3:
            bars.append(
                (f"after fitting on {record.setting.split(' on ')[1].split(' (')[0]}",
                 f["sensitivity"], f["specificity"])
            )  # fmt: skip
    return bars


def conformal_lines(metadata: ModelMetadata) -> list[str]:
    """The card's section on UNCERTAIN answers (empty when the model has no conformal sets)."""
    sets = metadata.conformal
    if sets is None:
        return []
    where = (
        "the site's images; they hold for images like them"
        if metadata.site_calibration
        else "the validation split, so they hold at the training hospital only; at a new "
        "hospital, fit the model to it first"
    )
    return [
        "## Uncertain answers",
        f"Class-conditional split-conformal sets at {sets.coverage:.0%} (Vovk; Angelopoulos & "
        f"Bates 2021), fitted on {md(sets.fitted_on)} ({sets.n_normal} NORMAL, "
        f"{sets.n_pneumonia} PNEUMONIA), from {where}. NORMAL is plausible at a probability of "
        f"pneumonia up to {_number(sets.normal_max)}, PNEUMONIA from "
        f"{_number(sets.pneumonia_min)}; the stored threshold's verdict always is. When both "
        "are plausible the decision is UNCERTAIN: a clinician should read the film.",
        "",
    ]


def population_lines(metadata: ModelMetadata) -> list[str]:
    """The card's section on the three grades (empty without a population check)."""
    check = metadata.population_check
    if check is None:
        return []
    lines = [
        "## Population check: typical, unusual, refused",
        f"Images whose feature distance exceeds {check.unusual_threshold:.1f} (the "
        f"{check.unusual_quantile:.0%} quantile of the validation images' distances under the "
        "stress suite, a stand-in for new patients' images) get their "
        "verdict with a warning that they are unlike the training images (children aged "
        f"{check.training_ages[0]:.0f}-{check.training_ages[1]:.0f} from one hospital); "
        "above the refusal threshold they get none. A DICOM whose age lies outside those "
        "years is graded unusual too. Share of each image set in each grade:",
        "",
        "| images | typical | unusual | refused |",
        "|---|---|---|---|",
    ]
    suffix = f" @ q{check.unusual_quantile}"
    for name, shares in check.figures.items():
        if name.endswith(suffix):
            cells = [f"{shares.get(g, 0.0):.1%}" for g in ("typical", "unusual", "refused")]
            lines.append(f"| {md(name[: -len(suffix)])} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def site_lines(metadata: ModelMetadata) -> list[str]:
    """The card's "Fitted to a site" section (empty for a model that was not fitted)."""
    lines = []
    note = metadata.text("site_fitting_note")
    site = metadata.site_calibration
    if site is None:
        return ["## Site fitting", md(note, limit=2000), ""] if note else []
    lines = [
        "## Fitted to a site",
        f"- Site {md(site.site)}: {site.n_normal} NORMAL and {site.n_pneumonia} PNEUMONIA "
        f"images (prevalence {site.prevalence:.3f}), fitted {md(site.date)}, data fingerprint "
        f"`{md(site.data_fingerprint)}`.",
        f"- From {md(site.original_model)} (threshold {site.original_threshold:.3f}, unchanged "
        f"on disk): {site.method} scaling of its logit (slope {site.scale:.3f}, intercept "
        f"{site.bias:.3f}) folded into the logit layer; new threshold {site.threshold:.3f}.",
        f"- Figures cross-fitted over {site.folds} folds by patient: each image scored by a fit "
        "on the other folds; 95% bootstrap intervals.",
        "",
        "| figure | before (original) | after (fitted, out-of-fold) |",
        "|---|---|---|",
    ]
    for name, after in site.after.items():
        before = site.before.get(name)
        span = "" if after.low is None else f" ({after.low:.3f}-{after.high:.3f})"
        was = "-" if before is None else f"{before.value:.3f}"
        lines.append(f"| {name.replace('_', ' ')} | {was} | {after.value:.3f}{span} |")
    if note:
        lines += ["", md(note, limit=2000)]
    return [*lines, ""]
