"""Words the pages share: escaped Markdown, the research-demo note, the dataset guide, durations."""

from __future__ import annotations

import streamlit as st

from cxr_core.explain.report import DISCLAIMER
from cxr_core.markdown import escape_markdown

__all__ = ["DATASET_GUIDE", "DISCLAIMER", "dataset_guide", "disclaimer", "format_seconds", "md"]

#: Untrusted text (file names, DICOM fields, run names, error messages) inside Markdown.
md = escape_markdown

DATASET_GUIDE = """
**No dataset yet?** The app expects Kaggle's *Chest X-Ray Images (Pneumonia)* (Kermany, Zhang
and Goldbaum 2018, CC BY 4.0) in this layout:

```
data/chest_xray/train/NORMAL/*.jpeg     data/chest_xray/train/PNEUMONIA/*.jpeg
data/chest_xray/val/...                 data/chest_xray/test/...   (optional)
```

1. Download it from kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia (or with
   `kaggle datasets download -d paultimothymooney/chest-xray-pneumonia`).
2. Unzip it so that `data/chest_xray/train` exists beside `streamlit_app.py`, or anywhere
   else and type that folder in the dataset field (or start the app with
   `CXR_DATA=/path/to/chest_xray`).
"""


def dataset_guide() -> None:
    """Show how to get and place Kaggle's chest X-ray dataset (:data:`DATASET_GUIDE`)."""
    st.markdown(DATASET_GUIDE)


def disclaimer() -> None:
    """Show the research-demo note."""
    st.caption(f":warning: **{DISCLAIMER}** Outputs are model scores, not findings.")


def format_seconds(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``, ``9`` -> ``"9 s"``, ``4000`` -> ``"1 h 6 min"``, None -> "-"."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
