"""The Home page's honest headline: independent figures first, then validation, as plain text."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_app import charts
from cxr_core.evaluation.card_sections import (
    HEADLINE_COLUMNS,
    comparison_bars,
    headline_note,
    headline_rows,
)
from cxr_core.sidecar import ModelMetadata

__all__ = ["headline_ui"]


def headline_ui(meta: ModelMetadata) -> None:
    """The independent records as a plain table (cells are text, never Markdown), what they
    describe, and sensitivity/specificity bars: validation vs new patients vs after fitting."""
    st.subheader("How the model does on patients it never saw")
    rows = headline_rows(meta)
    if not rows:
        st.info(
            "This model has no independent check yet: the figures below come from its own "
            "validation split, which flatters every model on this dataset."
        )
        return
    st.text(headline_note(meta))
    st.dataframe(pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS)), hide_index=True)
    bars = comparison_bars(meta)
    if len(bars) > 1:
        st.plotly_chart(charts.headline_figure(bars))
