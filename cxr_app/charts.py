"""Plotly figures of the Streamlit app: plain functions from numbers to ``go.Figure``.

No Streamlit here and no computation beyond arranging the numbers: metrics come from
``cxr_core.stats.metrics`` and training histories from ``cxr_core.runs.jobs.read_run``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cxr_core.config import CLASS_NAMES
from cxr_core.runs.files import HistoryRow

__all__ = [
    "comparison_frame",
    "CLASS_COLOURS",
    "calibration_figure",
    "confusion_figure",
    "counts_figure",
    "headline_figure",
    "history_figure",
    "pr_figure",
    "risk_coverage_figure",
    "roc_figure",
]

CLASS_COLOURS = {CLASS_NAMES[0]: "#2f7f6f", CLASS_NAMES[1]: "#c2573a"}
_TRAIN, _VAL = "#1f6f8b", "#d08c2f"
_LINES = ("#1f6f8b", "#c2573a", "#6a4c93", "#2f7f6f")
_LAYOUT = {"template": "plotly_white", "margin": {"l": 40, "r": 20, "t": 50, "b": 40}}
# Legends under the plot leave the square ROC, PR and calibration plots their full width.
_LEGEND_BELOW = {"legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0}}


def counts_figure(counts: pd.DataFrame) -> go.Figure:
    """Grouped bars of images per split and class, from ``cxr_core.data.tables.count_table``."""
    rows = counts.drop(index="total", errors="ignore")
    figure = go.Figure()
    for label in CLASS_NAMES:
        figure.add_bar(
            x=list(rows.index),
            y=rows[label].tolist(),
            name=label,
            marker_color=CLASS_COLOURS[label],
            text=rows[label].tolist(),
            textposition="outside",
        )
    values = rows[list(CLASS_NAMES)].to_numpy()
    # Kaggle's val split (8 + 8) beside its train split (3,875): a linear axis hides the small
    # bars, so a spread over 20x gets a log axis (the numbers on the bars stay exact).
    positive = values[values > 0]
    log = positive.size > 0 and positive.max() / positive.min() > 20
    figure.update_layout(
        barmode="group",
        title="Images per split and class" + (" (log scale)" if log else ""),
        yaxis_title="images (log scale)" if log else "images",
        yaxis_type="log" if log else "linear",
        **_LAYOUT,
    )
    return figure


def history_figure(history: Sequence[HistoryRow]) -> go.Figure:
    """Loss, accuracy and AUC per epoch, training against validation, side by side.

    Args:
        history: One checked row per epoch (``cxr_core.runs.files.read_history``) with ``loss``,
            ``val_loss``, ``accuracy``, ``val_accuracy``, ``auc`` and ``val_auc`` (missing
            metrics are skipped).
    """
    panels = (("loss", "Loss"), ("accuracy", "Accuracy"), ("auc", "ROC AUC"))
    figure = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in panels])
    epochs = [row.epoch for row in history]
    for column, (key, _) in enumerate(panels, start=1):
        for prefix, name, colour in (("", "train", _TRAIN), ("val_", "validation", _VAL)):
            values = [row.value(prefix + key) for row in history]
            if all(value is None for value in values):
                continue
            figure.add_scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=name,
                line={"color": colour},
                legendgroup=name,
                showlegend=column == 1,
                row=1,
                col=column,
            )
    title = "Training curves"
    for row, previous in zip(history[1:], history[:-1], strict=False):
        if row.phase != previous.phase:
            figure.add_vline(x=row.epoch - 0.5, line_dash="dot", line_color="#888")
            title = "Training curves (dotted line: fine-tuning starts)"
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_layout(height=340, title=title)
    figure.update_layout(**_LAYOUT)
    return figure


def confusion_figure(matrix: dict[str, int]) -> go.Figure:
    """The 2 x 2 confusion matrix (rows: true class, columns: predicted class)."""
    values = [[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]]
    names = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    text = [
        [f"{v}<br>{n}" for v, n in zip(r, m, strict=True)]
        for r, m in zip(values, names, strict=True)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"predicted {name}" for name in CLASS_NAMES],
            y=[f"true {name}" for name in CLASS_NAMES],
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#eef4f7"], [1, "#1f6f8b"]],
            showscale=False,
        )
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title="Confusion matrix", height=440, **_LAYOUT)
    return figure


def _add_marks(figure: go.Figure, marks: Sequence[tuple[str, float, float]]) -> None:
    for (name, x, y), symbol in zip(marks, ("diamond", "circle"), strict=False):
        figure.add_scatter(
            x=[x],
            y=[y],
            mode="markers",
            name=name,
            marker={"symbol": symbol, "size": 12, "color": "#222", "line": {"width": 1}},
        )


def _log_fpr_floor(curves: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> float:
    """Where a log false-positive axis starts: half the smallest non-zero FPR (at most 0.01)."""
    positive = [x for _, fpr, _ in curves for x in fpr if x > 0]
    return min([0.01, *positive]) / 2


def roc_figure(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    marks: Sequence[tuple[str, float, float]] = (),
    log_fpr: bool = False,
) -> go.Figure:
    """ROC curves of one or more models on one plot.

    Args:
        curves: ``(name, fpr, tpr)`` per model; the name should carry its AUC. Names are
            HTML-escaped (Plotly would render tags in them).
        marks: ``(name, fpr, tpr)`` operating points, e.g. the stored threshold.
        log_fpr: A logarithmic false-positive axis, which spreads out the top-left corner where
            good models' curves crowd; a false-positive rate of 0 is drawn at the axis start.
    """
    floor = _log_fpr_floor(curves) if log_fpr else 0.0
    figure = go.Figure()
    chance = [floor + (1 - floor) * i / 50 for i in range(51)] if log_fpr else [0, 1]
    figure.add_scatter(
        x=chance, y=chance, mode="lines", name="chance", line={"dash": "dash", "color": "#aaa"}
    )
    for (name, fpr, tpr), colour in zip(curves, _LINES, strict=False):
        # Plotly reads <a href>, <b> and friends in trace names: a model name is text.
        figure.add_scatter(
            x=[max(x, floor) for x in fpr],
            y=list(tpr),
            mode="lines",
            name=html.escape(name),
            line={"color": colour},
        )
    _add_marks(figure, [(name, max(x, floor), y) for name, x, y in marks])
    axis = "1 - specificity (false positive rate)"
    if log_fpr:
        figure.update_xaxes(type="log", range=[math.log10(floor), 0])
        axis += f", log scale (0 drawn at {floor:.2g})"
    figure.update_layout(
        title="ROC curve",
        xaxis_title=axis,
        yaxis_title="sensitivity",
        height=440,
        **_LAYOUT,
        **_LEGEND_BELOW,
    )
    return figure


def pr_figure(
    recall: Sequence[float],
    precision: Sequence[float],
    average_precision: float | None,
    prevalence: float,
    marks: Sequence[tuple[str, float, float]] = (),
) -> go.Figure:
    """Precision-recall curve with the prevalence line; ``marks`` are (name, recall, precision)."""
    figure = go.Figure()
    figure.add_scatter(
        x=[0, 1],
        y=[prevalence, prevalence],
        mode="lines",
        name=f"prevalence {prevalence:.2f}",
        line={"dash": "dash", "color": "#aaa"},
    )
    name = "model" if average_precision is None else f"model (AP {average_precision:.3f})"
    figure.add_scatter(
        x=list(recall), y=list(precision), mode="lines", name=name, line={"color": _LINES[0]}
    )
    _add_marks(figure, marks)
    figure.update_layout(
        title="Precision-recall curve",
        xaxis_title="recall (sensitivity)",
        yaxis_title="precision (PPV)",
        height=440,
        **_LAYOUT,
        **_LEGEND_BELOW,
    )
    return figure


def calibration_figure(
    predicted: Sequence[float], observed: Sequence[float], counts: Sequence[int], ece: float
) -> go.Figure:
    """Reliability diagram over a bar chart of the images in each bin.

    Args:
        predicted: Mean predicted probability of each non-empty bin.
        observed: Fraction of PNEUMONIA in each bin.
        counts: Images in each bin (shown as bars, labels and on hover).
        ece: Expected calibration error, shown in the title.
    """
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.05
    )
    figure.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name="perfect",
        line={"dash": "dash", "color": "#aaa"},
        row=1,
        col=1,
    )
    hover = "predicted %{x:.3f}<br>observed %{y:.3f}<br>%{text} images<extra></extra>"
    figure.add_scatter(
        x=list(predicted),
        y=list(observed),
        mode="lines+markers",
        name="model",
        text=[str(n) for n in counts],
        hovertemplate=hover,
        line={"color": _LINES[0]},
        row=1,
        col=1,
    )
    figure.add_bar(
        x=list(predicted),
        y=list(counts),
        width=0.06,
        name="images per bin",
        text=[str(n) for n in counts],
        textposition="outside",
        cliponaxis=False,
        marker_color="#9bb7c4",
        row=2,
        col=1,
    )
    figure.update_xaxes(range=[-0.02, 1.02])
    figure.update_xaxes(title_text="mean predicted probability", row=2, col=1)
    figure.update_yaxes(title_text="fraction PNEUMONIA", range=[-0.02, 1.02], row=1, col=1)
    figure.update_yaxes(title_text="images", rangemode="tozero", row=2, col=1)
    figure.update_layout(
        title=f"Calibration (ECE {ece:.3f}); bars: images per bin",
        height=520,
        **_LAYOUT,
        **_LEGEND_BELOW,
    )
    return figure


def headline_figure(bars: Sequence[tuple[str, float, float]]) -> go.Figure:
    """Sensitivity and specificity side by side for each group (validation, new patients,
    after site fitting), from ``cxr_core.evaluation.card_sections.comparison_bars``."""
    figure = go.Figure()
    names = [name for name, _, _ in bars]
    for index, (metric, colour) in enumerate((("sensitivity", _TRAIN), ("specificity", _VAL))):
        values = [bar[index + 1] for bar in bars]
        figure.add_bar(
            x=names, y=values, name=metric, marker_color=colour,
            text=[f"{v:.2f}" for v in values], textposition="outside",
        )  # fmt: skip
    figure.update_layout(
        barmode="group", title="Sensitivity and specificity: validation vs new patients",
        yaxis={"range": [0, 1.1], "title": "share"}, height=330, **_LAYOUT, **_LEGEND_BELOW,
    )  # fmt: skip
    return figure


def risk_coverage_figure(rows: Sequence[dict]) -> go.Figure:
    """Share of definite answers and their accuracy as the conformal coverage level moves,
    from ``cxr_core.stats.conformal.risk_coverage``."""
    levels = [row["level"] for row in rows]
    figure = go.Figure()
    for key, name, colour in (
        ("definite_share", "share of definite answers", _TRAIN),
        ("definite_accuracy", "accuracy of definite answers", _VAL),
        ("coverage", "coverage (true class in the set)", _LINES[2]),
    ):
        figure.add_scatter(
            x=levels, y=[row[key] for row in rows], name=name, mode="lines+markers",
            line={"color": colour},
        )  # fmt: skip
    figure.update_layout(
        title="Risk-coverage: definite answers against their accuracy",
        xaxis_title="target coverage of the sets", yaxis={"range": [0, 1.02]},
        **_LAYOUT, **_LEGEND_BELOW,
    )  # fmt: skip
    return figure


def comparison_frame(comparison: Any) -> pd.DataFrame:
    """A ``cxr_core.evaluation.model_compare.ModelComparison`` as a plain table (figures as
    text)."""

    def shown(value: float | None, metric: str) -> str:
        if value is None:
            return "-"
        return f"{value:.0f}" if metric == "n" else f"{value:.3f}"

    return pd.DataFrame(
        {
            "Validation figure": [row.label for row in comparison.rows],
            "This run": [shown(row.candidate, row.metric) for row in comparison.rows],
            "Current default": [shown(row.current, row.metric) for row in comparison.rows],
        }
    )
