"""Settings that survive a reload, and the dataset folder shared by Dataset, Train and Evaluate.

A reload starts a new Streamlit session, so widget values live on in the page's URL query
parameters (``?t_image_size=224&t_head_epochs=3``: only the values that differ from the defaults).
The dataset folder is one value for the three pages that read a dataset: typed on one page, it
is the folder on the others, and a reload of any of them keeps it (``?data=...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

__all__ = [
    "DATA_PARAM",
    "SHARED_DATA",
    "folder_changed",
    "remember_settings",
    "restore_settings",
    "shared_folder",
]

#: Session key of the shared dataset folder; URL parameter that keeps it across reloads.
SHARED_DATA, DATA_PARAM = "cxr_data_root", "data"
_TRUE = ("1", "true", "yes", "on")


def _parse(text: str, default: Any) -> Any:
    """``text`` from the URL in the type of ``default``; raises ValueError when it is not."""
    if isinstance(default, bool):
        return text.strip().lower() in _TRUE
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return str(text)


def restore_settings(defaults: Mapping[str, Any]) -> None:
    """Give each widget key not set in this session its value from the URL, if it has one.

    Call before the widgets are drawn. A value of the wrong type is ignored (the default
    stays); range checks stay with the widgets and the run's own validation.
    """
    params = st.query_params
    for key, default in defaults.items():
        if key in st.session_state or key not in params:
            continue
        try:
            st.session_state[key] = _parse(params[key], default)
        except ValueError:
            continue


def remember_settings(defaults: Mapping[str, Any]) -> None:
    """Write each widget value that differs from its default into the URL (and drop the rest)."""
    for key, default in defaults.items():
        value = st.session_state.get(key, default)
        if value == default:
            if key in st.query_params:
                del st.query_params[key]
        else:
            st.query_params[key] = str(value)


def shared_folder(key: str, default: str) -> None:
    """Before a page's dataset folder widget ``key``: set it to the shared folder (this
    session's, else the URL's, else ``default``) and keep that folder in the URL."""
    value = st.session_state.get(SHARED_DATA)
    if value is None:
        value = st.query_params.get(DATA_PARAM) or st.session_state.get(key) or default
    st.session_state[key] = value
    st.session_state[SHARED_DATA] = value
    _remember_folder(value, default)


def folder_changed(key: str, default: str) -> None:
    """``on_change`` of a dataset folder widget: its value becomes the shared folder."""
    value = st.session_state.get(key) or ""
    st.session_state[SHARED_DATA] = value
    _remember_folder(value, default)


def _remember_folder(value: str, default: str) -> None:
    if value and value != default:
        st.query_params[DATA_PARAM] = value
    elif DATA_PARAM in st.query_params:
        del st.query_params[DATA_PARAM]
