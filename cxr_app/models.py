"""Everyone's default model: a finished run beside the current default before it replaces it.

A visitor's "Use this model" changes their session only; where it changes everyone's default
(the open mode, a signed-in administrator), the run's stored validation figures are shown
beside the default's (:func:`cxr_core.evaluation.model_compare.compare_models`) and a model that
looks
worse needs a second, explicit click.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from cxr_app import access, catalog, charts, texts
from cxr_core.errors import CXRError

__all__ = ["PENDING_DEFAULT", "compare_with_default", "use_model_ui"]

#: Session key: the model whose "Use this model" waits for a confirmation.
PENDING_DEFAULT = "train_pending_default"


def compare_with_default(path: str) -> tuple[Any, str | None]:
    """``(cxr_core.evaluation.model_compare.ModelComparison, the default's name)`` for the model at
    ``path``; the comparison is None when it is the default already.

    Raises:
        CXRError: The candidate's sidecar cannot be read.
    """
    from cxr_core.evaluation.model_compare import compare_models
    from cxr_core.sidecar import check_model_file

    current = catalog.default_model(
        [entry for entry in catalog.discover_models() if entry.problem is None]
    )
    if current is not None and current.path == str(path):
        return None, current.name
    metadata = catalog.model_metadata(current) if current else None
    return compare_models(check_model_file(path), metadata), current.name if current else None


def _ask_default(path: str, worse: bool) -> None:
    if worse:
        st.session_state[PENDING_DEFAULT] = path
    else:
        catalog.set_active_model(path)


def _keep_default() -> None:
    st.session_state.pop(PENDING_DEFAULT, None)


def _confirm_default(path: str) -> None:
    st.session_state.pop(PENDING_DEFAULT, None)
    catalog.set_active_model(path)


def use_model_ui(path: str) -> None:
    """The "Use this model" button: a visitor's session only; where it sets everyone's default,
    beside the current default first, and confirmed when it looks worse."""
    if not access.may_administer():
        only = "For this session only: the administrator sets everyone's default."
        st.button("Use this model", on_click=catalog.set_active_model, args=(path,), help=only)
        return
    try:
        comparison, current = compare_with_default(path)
    except CXRError as error:
        st.error(f"This run's model cannot be compared: {texts.md(error)}")
        return
    if comparison is None:
        st.caption("This run's model is the default.")
        return
    st.markdown(f"**This run beside the current default ({texts.md(current or 'none')})**")
    st.dataframe(charts.comparison_frame(comparison), hide_index=True)
    checks_of = {"This run": comparison.candidate_checks}
    checks_of["The current default"] = comparison.current_checks
    for title, checks in checks_of.items():
        if checks:
            st.caption(f"{title}, independent checks: " + " ".join(texts.md(c) for c in checks))
    if st.session_state.get(PENDING_DEFAULT) != path:
        st.button("Use this model", on_click=_ask_default, args=(path, comparison.worse))
        return
    st.warning(
        "This model looks worse than the current default, which every visitor gets:\n\n"
        + "\n".join(f"- {texts.md(concern)}" for concern in comparison.concerns)
    )
    sure, keep = st.columns(2)
    sure.button("Make it the default anyway", on_click=_confirm_default, args=(path,))
    keep.button("Keep the current default", on_click=_keep_default)
