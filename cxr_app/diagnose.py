"""The Diagnose page's upload: take the files, analyse each and keep only the results.

The analysis itself (:func:`cxr_app.loaders.analyse_upload`, cached by content and model) is
shared with the Evaluate page's gallery; :mod:`cxr_app.results` draws what is kept.

An upload's bytes are held only while it is analysed (:func:`take_upload`): files over
:data:`MAX_FILES_PER_UPLOAD` are dropped unread, the others reserve their size in the
server's upload budget, and once analysed the session keeps an :class:`Analysed` (results,
no file content), the files leave Streamlit's upload store and the uploader is reset.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from cxr_app import catalog, loaders, texts
from cxr_app.results import result_row, results_csv, results_ui
from cxr_core.errors import CXRError, JobError
from cxr_core.inference.upload_budget import UPLOAD_BUDGET
from cxr_core.runs import policy

if TYPE_CHECKING:
    from cxr_core.inference.upload import UploadAnalysis

__all__ = [
    "MAX_FILES_PER_UPLOAD",
    "MAX_UPLOAD_MIB",
    "Analysed",
    "analyse_files",
    "release_files",
    "shown_ui",
    "summary_ui",
    "take_upload",
    "upload_ui",
]

#: Files of one upload that the Diagnose page analyses; the others are refused, not kept.
MAX_FILES_PER_UPLOAD = policy.MAX_FILES_PER_UPLOAD
#: The largest file accepted, in MiB (``cxr_core.imaging.decode`` refuses larger ones).
MAX_UPLOAD_MIB = policy.MAX_UPLOAD_MIB
#: Session-state keys: the uploader's round (its key), the last upload's kept results, and a
#: notice for the next run.
ROUND_KEY, SHOWN_KEY, NOTICE_KEY = "diagnose_round", "diagnose_shown", "diagnose_notice"

# ---------------------------------------------------------------------------------------------
# Sections of the page


def upload_ui() -> list[Any]:
    """The file uploader (JPEG, PNG or DICOM, several at once); the files dropped, maybe none.

    Its key changes after each analysis (:func:`take_upload`), so the next run shows an empty
    uploader and Streamlit forgets the files it held.
    """
    round_ = st.session_state.get(ROUND_KEY, 0)
    return st.file_uploader(
        f"Drop chest X-rays here (JPEG, PNG or DICOM; up to {MAX_FILES_PER_UPLOAD} at once, "
        f"each at most {MAX_UPLOAD_MIB} MiB)",
        accept_multiple_files=True,
        max_upload_size=policy.UPLOADER_LIMIT_MB,
        key=f"diagnose_upload_{round_}",
    )


@dataclass(frozen=True)
class Analysed:
    """One upload's outcome as the session keeps it once the uploaded bytes are released:
    what the page draws, and no file content.

    Attributes:
        model_path: The model file that analysed it.
        model_mtime: That file's modification time then.
        model_label: The model's label, for the reports.
        uploaded: Files in the upload (those over :data:`MAX_FILES_PER_UPLOAD` were not kept).
        results: ``(file name, analysis)`` of each file analysed, in upload order.
        errors: One Markdown line (names escaped) for each file that could not be analysed.
        rows: The results table's rows, one per analysed or unreadable file.
        csv: The results table as CSV (:func:`results_csv`).
    """

    model_path: str
    model_mtime: float
    model_label: str
    uploaded: int
    results: tuple[tuple[str, UploadAnalysis], ...]
    errors: tuple[str, ...]
    rows: tuple[dict[str, str], ...]
    csv: str


def release_files(files: list[Any]) -> None:
    """Drop uploaded files' bytes from Streamlit's upload store, where they would otherwise
    stay until the session ends (a new uploader key alone does not free them)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    remove = getattr(getattr(ctx, "uploaded_file_mgr", None), "remove_file", None)
    for upload in files:
        if remove is not None and getattr(upload, "file_id", None):
            remove(session_id=ctx.session_id, file_id=upload.file_id)
        with contextlib.suppress(AttributeError):
            upload.close()  # the widget's copy of the bytes


def analyse_files(entry: catalog.ModelEntry, uploads: list[Any], uploaded: int) -> Analysed:
    """Analyse each upload (an unreadable one gets its message) into an :class:`Analysed`.

    Args:
        entry: The model.
        uploads: The files to analyse (at most :data:`MAX_FILES_PER_UPLOAD`).
        uploaded: How many files the upload had, these and any refused.
    """
    results, rows, errors = [], [], []
    for upload in uploads:
        try:
            result = loaders.analyse_upload(entry, upload.getvalue(), upload.name)
        except CXRError as error:
            errors.append(f"**{texts.md(upload.name)}** could not be analysed: {texts.md(error)}")
            result = None
        else:
            results.append((upload.name, result))
        rows.append(result_row(upload.name, result))
    return Analysed(
        model_path=entry.path,
        model_mtime=entry.mtime,
        model_label=entry.label,
        uploaded=uploaded,
        results=tuple(results),
        errors=tuple(errors),
        rows=tuple(rows),
        csv=results_csv(uploads, rows, dict(results), entry.name),
    )


def take_upload(entry: catalog.ModelEntry, uploads: list[Any]) -> None:
    """Analyse a new upload and keep only its results: the session keeps an :class:`Analysed`,
    Streamlit's copy of the bytes is dropped and the page reruns with an empty uploader.

    Files over :data:`MAX_FILES_PER_UPLOAD` are dropped unread. The files analysed hold their
    size in :data:`cxr_core.inference.upload_budget.UPLOAD_BUDGET` meanwhile; when it is full
    the upload is dropped and the page says the server is busy.
    """
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    files = [u for u in uploads if isinstance(u, UploadedFile)]  # not a DeletedFile
    kept = files[:MAX_FILES_PER_UPLOAD]
    release_files(files[MAX_FILES_PER_UPLOAD:])
    if not kept:  # only files whose bytes are gone already: nothing to analyse
        st.session_state[ROUND_KEY] = st.session_state.get(ROUND_KEY, 0) + 1
        st.rerun()
    try:
        with UPLOAD_BUDGET.hold(sum(upload.size for upload in kept)):
            analysed = analyse_files(entry, kept, len(files))
    except JobError as error:  # the budget is full: nothing was analysed
        st.session_state[NOTICE_KEY] = str(error)
    except Exception:
        release_files(kept)
        raise
    else:
        st.session_state[SHOWN_KEY] = analysed
    # Not on a rerun or stop (BaseException): the next run analyses the same files again.
    release_files(kept)
    st.session_state[ROUND_KEY] = st.session_state.get(ROUND_KEY, 0) + 1
    st.rerun()


def refused_files_note(analysed: Analysed) -> str | None:
    """The sentence for an upload with more files than are analysed, or None (plain text)."""
    extra = analysed.uploaded - len(analysed.rows)
    if extra <= 0:
        return None
    return (
        f"{analysed.uploaded} files were uploaded; the first {len(analysed.rows)} are analysed "
        f"and the other {extra} were not kept. Upload them again, at most "
        f"{MAX_FILES_PER_UPLOAD} at a time."
    )


def summary_ui(analysed: Analysed) -> None:
    """Above the per-file views: files not kept, unreadable files' messages and, with several
    files, the results table and its CSV download."""
    note = refused_files_note(analysed)
    if note:
        st.warning(note)  # numbers and words only: nothing Markdown would change
    for line in analysed.errors:
        st.error(line)
    if len(analysed.rows) > 1:
        st.subheader(f"Results for {len(analysed.rows)} files")
        wide = st.column_config.TextColumn(width="large")  # never cut the input check off
        st.dataframe(
            pd.DataFrame(list(analysed.rows)), hide_index=True, width="stretch",
            column_config={"Input check": wide},
        )  # fmt: skip
        st.download_button(
            "Download results (CSV)", analysed.csv, "cxr_results.csv", "text/csv",
            on_click="ignore",
        )  # fmt: skip


def shown_ui(entry: catalog.ModelEntry, method: str, alpha: float) -> bool:
    """The last upload's results kept in this session (:func:`take_upload`), and a notice left
    by it; False when there is neither."""
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.warning(notice)  # BUSY: plain words
    analysed = st.session_state.get(SHOWN_KEY)
    if analysed is None:
        return bool(notice)
    if (analysed.model_path, analysed.model_mtime) != (entry.path, entry.mtime):
        st.info(
            f"These results are from the model {texts.md(analysed.model_label)}; upload the "
            f"files again to see the output of {texts.md(entry.label)}."
        )
    summary_ui(analysed)
    results_ui(list(analysed.results), method, alpha, analysed.model_label)
    return True
