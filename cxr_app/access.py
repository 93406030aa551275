"""Who may do what in the app: the open single-user mode and the shared-server mode.

Without settings the app is the open single-user tool: anyone at the page may train, cancel,
resume and type any folder. Setting ``CXR_ADMIN_PASSWORD`` (environment variable, or the same
key in ``.streamlit/secrets.toml``) makes it a shared deployment:

- launching, cancelling and resuming training, and typing free dataset or weights paths, need
  the administrator password (compared with ``hmac.compare_digest``; wrong ones are limited
  for the whole server, not per session: :class:`cxr_core.runs.policy.SignInLimiter`); visitors
  still diagnose
  and browse, and choose datasets from the allowed folders;
- with ``CXR_VISITOR_TRAINING=1`` visitors may also launch runs within the visitor limits
  (:class:`cxr_core.runs.policy.TrainingLimits`: ``CXR_VISITOR_MAX_IMAGE_SIZE``, ``_MAX_EPOCHS``,
  ``_MAX_IMAGES_PER_CLASS``, ``CXR_VISITOR_BACKBONES``; conservative defaults) and cancel
  only the runs they started in their session.

``CXR_FEEDBACK_DIR`` names the folder where Diagnose's "agree" / "the right answer is ..."
answers are saved (:mod:`cxr_core.data.feedback`); without it feedback is off. In the shared mode
only the administrator may give feedback unless ``CXR_VISITOR_FEEDBACK=1``.

``CXR_DATA_ROOTS`` (folders separated by ``:``) limits the folders the Dataset, Train and
Evaluate pages may open, in either mode. Settings are read on every rerun, so no restart is
needed after editing the secrets file.
"""

from __future__ import annotations

import hmac
import math
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from cxr_core.runs.policy import (
    SCORING_QUEUE,
    SIGN_IN_LIMITER,
    VISITOR_DEFAULTS,
    VISITOR_QUOTA_DEFAULTS,
    VISITOR_SAMPLE_SIZES,
    TrainingLimits,
    TrainingQuota,
    allowed_folder,
    clean_visitor_runs,
    mark_visitor_run,
    parse_roots,
)

__all__ = [
    "feedback_folder",
    "Deployment",
    "admin_login_ui",
    "checked_folder",
    "dataset_folder_ui",
    "deployment",
    "is_admin",
    "mark_if_visitor",
    "sample_size_ui",
    "scoring_slot",
    "visitor_quota_check",
    "may_administer",
    "may_cancel",
    "may_launch",
    "remember_own_run",
    "setting",
    "training_limits",
]

_ADMIN = "cxr_admin"
_OWN_RUNS = "cxr_own_runs"
_PASSWORD_INPUT = "cxr_admin_password"
_LOGIN_MESSAGE = "cxr_admin_message"


def setting(name: str) -> str | None:
    """A setting from the environment, else from ``.streamlit/secrets.toml``, else None."""
    if name in os.environ:
        return os.environ[name]
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file, or an unreadable one: no setting
        return None
    return None if value is None else str(value)


@dataclass(frozen=True)
class Deployment:
    """The deployment settings.

    Attributes:
        admin_password: The administrator password, or None for the open single-user mode.
        data_roots: Folders the pages may open (empty: any).
        visitor_training: Whether visitors may launch runs within :attr:`limits`.
        limits: The largest run a non-administrator may start.
    """

    admin_password: str | None
    data_roots: tuple[Path, ...]
    visitor_training: bool
    limits: TrainingLimits

    @property
    def shared(self) -> bool:
        """Whether an administrator password protects the app."""
        return bool(self.admin_password)


def deployment() -> Deployment:
    """Read the deployment settings (raises ConfigError for a malformed limit)."""
    password = setting("CXR_ADMIN_PASSWORD") or None
    values = {key: setting(key) for key in VISITOR_DEFAULTS}
    if password:
        values = {key: default if values[key] is None else values[key]
                  for key, default in VISITOR_DEFAULTS.items()}  # fmt: skip
    visitors = (setting("CXR_VISITOR_TRAINING") or "").strip().lower() in ("1", "true", "yes")
    roots = parse_roots(setting("CXR_DATA_ROOTS"))
    return Deployment(password, roots, visitors, TrainingLimits.from_settings(values))


def is_admin() -> bool:
    """Whether this session signed in with the administrator password."""
    return deployment().shared and st.session_state.get(_ADMIN) is True


def may_administer() -> bool:
    """Launch, cancel and resume any run, type free paths: open mode or an administrator."""
    return not deployment().shared or is_admin()


def may_launch() -> bool:
    """Whether this session may start a run (administrators; visitors if allowed)."""
    return may_administer() or deployment().visitor_training


def training_limits() -> TrainingLimits:
    """The limits this session's runs must keep (none for a signed-in administrator)."""
    return TrainingLimits() if is_admin() else deployment().limits


def visitor_quota_check(runs_root: Path, is_active: Any) -> None:
    """For a visitor of a shared deployment: clean up old visitor runs, then check the
    training quota (runs per hour, disk). Nothing for administrators or the open mode.

    Raises:
        JobError: The quota is used up; ConfigError: a quota setting is malformed.
    """
    if may_administer():
        return
    quota = TrainingQuota.from_settings({key: setting(key) for key in VISITOR_QUOTA_DEFAULTS})
    clean_visitor_runs(runs_root, quota.keep_hours, is_active)
    quota.check(runs_root)


def mark_if_visitor(run_dir: Path) -> None:
    """Mark a run a visitor started, for the quota and the clean-up."""
    if not may_administer():
        mark_visitor_run(run_dir)


def sample_size_ui(container: Any) -> int:
    """The Evaluate page's sample size: free for administrators (and the open mode), one of
    :data:`VISITOR_SAMPLE_SIZES` for visitors, so their scores are computed once and cached."""
    if may_administer():
        return int(
            container.number_input(
                "Sample at most N images for speed (0 = the whole set)", 0, 1_000_000, 0, 100,
                help="A sample keeps the set's own share of each class, so PPV, NPV and ECE "
                "stay honest.",
            )
        )  # fmt: skip
    return int(
        container.selectbox(
            "Sample size (stratified)", VISITOR_SAMPLE_SIZES,
            help="On this server visitors score fixed samples; each is scored once for all.",
        )
    )  # fmt: skip


@contextmanager
def scoring_slot() -> Iterator[None]:
    """A visitor's scoring runs in the server's bounded queue (one job per session, a few
    at once); administrators and the open mode score directly.

    Raises:
        JobError: This session already scores, or the server stayed busy too long.
    """
    if may_administer():
        yield
        return
    with SCORING_QUEUE.job(_session_id()):
        yield


def _session_id() -> str:
    if "cxr_session_id" not in st.session_state:
        st.session_state["cxr_session_id"] = uuid.uuid4().hex
    return str(st.session_state["cxr_session_id"])


def remember_own_run(name: str) -> None:
    """Record that this session started the run ``name`` (visitors may cancel their own)."""
    st.session_state[_OWN_RUNS] = {*st.session_state.get(_OWN_RUNS, set()), name}


def may_cancel(name: str) -> bool:
    """Whether this session may cancel the run ``name``."""
    return may_administer() or name in st.session_state.get(_OWN_RUNS, set())


def feedback_folder() -> str | None:
    """Where this session's feedback goes (``CXR_FEEDBACK_DIR``), or None when it may give none:
    no folder set, or a visitor of a shared deployment without ``CXR_VISITOR_FEEDBACK=1``."""
    folder = (setting("CXR_FEEDBACK_DIR") or "").strip()
    if not folder:
        return None
    visitors = (setting("CXR_VISITOR_FEEDBACK") or "").strip().lower() in ("1", "true", "yes")
    return folder if may_administer() or visitors else None


def checked_folder(path: str) -> str:
    """``path`` if the pages may open it (see ``CXR_DATA_ROOTS``); raises DataError if not."""
    return allowed_folder(path, deployment().data_roots)


def _sign_in() -> None:
    entered = str(st.session_state.get(_PASSWORD_INPUT) or "")
    password = deployment().admin_password or ""
    st.session_state[_PASSWORD_INPUT] = ""
    outcome = SIGN_IN_LIMITER.attempt(
        lambda: (
            bool(password)
            and hmac.compare_digest(entered.encode("utf-8"), password.encode("utf-8"))
        )
    )
    if outcome.accepted:
        st.session_state[_ADMIN] = True
        st.session_state.pop(_LOGIN_MESSAGE, None)
    elif outcome.wait_seconds:
        st.session_state[_LOGIN_MESSAGE] = (
            "Too many wrong passwords on this server: sign-in is paused for "
            f"{math.ceil(outcome.wait_seconds)} s."
        )
    else:
        time.sleep(1.0)  # slows one session's guessing; the limiter slows all of them
        st.session_state[_LOGIN_MESSAGE] = "Wrong password."


def _sign_out() -> None:
    st.session_state[_ADMIN] = False


def admin_login_ui() -> None:
    """The administrator's sign-in in the sidebar (only in the shared mode)."""
    if not deployment().shared:
        return
    with st.sidebar.expander("Administrator", expanded=False):
        if is_admin():
            st.caption("Signed in: training and free paths are open to you.")
            st.button("Sign out", on_click=_sign_out, key="cxr_sign_out")
            return
        st.text_input("Administrator password", type="password", key=_PASSWORD_INPUT)
        st.button("Sign in", on_click=_sign_in, key="cxr_sign_in")
        if _LOGIN_MESSAGE in st.session_state:
            st.error(st.session_state[_LOGIN_MESSAGE])


def dataset_folder_ui(label: str, key: str, default: str, container=None) -> str:
    """A dataset folder widget: free text for administrators, a choice for visitors.

    Visitors of a shared deployment choose among ``CXR_DATA_ROOTS`` (or the app's default
    dataset); they cannot type a path. Returns the chosen folder ("" if none is offered).
    """
    from cxr_app.state import folder_changed, shared_folder

    where = container or st
    shared_folder(key, default)  # one folder for Dataset, Train and Evaluate, kept on reload
    changed = {"on_change": folder_changed, "args": (key, default)}
    if may_administer():
        return where.text_input(label, key=key, **changed).strip()
    roots = deployment().data_roots
    choices = [str(root) for root in roots] or ([default] if default else [])
    if not choices:
        where.info("No dataset folder is offered on this server.")
        return ""
    if st.session_state.get(key) not in choices:
        st.session_state[key] = choices[0]
    return where.selectbox(label, choices, key=key, **changed)
