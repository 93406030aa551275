"""Tables and thumbnails as the pages show them: human column headers, small framed images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

__all__ = ["HEADERS", "display_table", "thumbnail"]

#: Column headers as the app shows them, for the machine names of ``cxr_core`` tables.
HEADERS = {
    "split": "Split", "label": "Class", "total": "Total", "sampled": "Files read",
    "median_width": "Median width (px)", "median_height": "Median height (px)",
    "min_side": "Smallest side (px)", "max_side": "Largest side (px)",
    "modes": "Colour modes", "formats": "File formats", "files": "Files", "splits": "Splits",
    "labels": "Classes", "across_splits": "Spans splits", "conflicting_labels": "Spans classes",
    "names": "File names", "patient_id": "Patient", "images": "Images", "example": "Example file",
}  # fmt: skip


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``cxr_core`` table for ``st.dataframe``: human headers, no empty cells.

    Columns and the index name are renamed by :data:`HEADERS` (others: first letter upper
    case, ``_`` as spaces); booleans read ``yes``/``no``; missing values (None, NaN) ``-``.
    """

    def header(name: Any) -> Any:
        if not isinstance(name, str):
            return name
        return HEADERS.get(name) or name[:1].upper() + name[1:].replace("_", " ")

    shown = frame.rename(columns=header, index={"total": "Total"})
    shown.index.name = header(frame.index.name)
    for column in shown.columns:
        values = shown[column]
        if values.dtype == bool:
            shown[column] = values.map({True: "yes", False: "no"})
        elif values.isna().any():
            # As text throughout: a column mixing numbers and "-" would not convert to Arrow.
            shown[column] = values.map(lambda value: "-" if pd.isna(value) else str(value))
    return shown


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, side: int = 160, border: tuple[int, int, int] | None = None):
    """A small RGB copy of an image file, optionally framed in a coloured border (6 px)."""
    with Image.open(path) as image:
        image.draft("L", (side, side))  # JPEG: decode at reduced scale
        small = ImageOps.exif_transpose(image).convert("RGB")
        small.thumbnail((side, side))
    if border is not None:
        small = ImageOps.expand(small, border=6, fill=border)
    return np.asarray(small)
