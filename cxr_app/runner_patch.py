"""A patch of Streamlit's script runner: keep the Keras session between script runs.

Applied on import; :mod:`cxr_app.navigation` imports it, and every page and ``streamlit_app.py``
import that first, so the patch is in place before any script run ends.
"""

from __future__ import annotations

import contextlib
import sys

from streamlit.runtime.scriptrunner import script_runner

__all__ = ["keep_keras_session"]


def _clean_up_after_run() -> None:
    """Streamlit's clean-up after a script run, less its ``keras.backend.clear_session()``."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        with contextlib.suppress(Exception):
            pyplot.close("all")


def keep_keras_session() -> None:
    """Stop Streamlit from clearing the Keras session after every script run.

    Once Keras is imported, Streamlit calls ``keras.backend.clear_session()`` after each run
    (``script_runner._clean_problem_modules``): in Keras 3 a full ``gc.collect()`` over
    TensorFlow's objects and a cleared TensorFlow kernel cache. That cost 0.3 s of CPU on every
    page switch and slider move, and made the next Grad-CAM 1-3 s instead of 0.1 s. The app
    builds models only in cached loaders, so there is nothing to clear between runs.
    """
    if hasattr(script_runner, "_clean_problem_modules"):  # absent: a Streamlit without it
        script_runner._clean_problem_modules = _clean_up_after_run


keep_keras_session()
