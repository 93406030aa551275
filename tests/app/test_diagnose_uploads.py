"""Diagnose keeps an upload's results, never its bytes: files over the cap are dropped with a
plain sentence, the analysed files' bytes leave Streamlit's upload store once the results are
in the session, and a full upload budget says the server is busy (no traceback)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFile

from cxr_app import diagnose as app_diagnose
from cxr_app import loaders
from cxr_core.errors import InvalidImageError
from cxr_core.inference.upload_budget import BUSY, UploadBudget
from tests.app.test_app_pages import all_text, app_env, open_page, png_bytes, shown
from tests.conftest import synthetic_xray

__all__ = ["app_env"]  # a fixture used here, defined in test_app_pages

PAGE = "pages/diagnose.py"
#: Sizes of the files put in an upload store since :func:`upload_stores` began.
ADDED: list[int] = []


def xray(seed: int) -> bytes:
    return png_bytes(synthetic_xray(seed % 2, np.random.default_rng(2000 + seed), 96))


@pytest.fixture
def upload_stores(monkeypatch) -> list[MemoryUploadedFileManager]:
    """Every upload store AppTest makes from now on (one per run), to look inside."""
    stores: list[MemoryUploadedFileManager] = []
    original = MemoryUploadedFileManager.__init__
    add = MemoryUploadedFileManager.add_file

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        stores.append(self)

    def added(self, session_id, file) -> None:
        ADDED.append(len(file.data))
        add(self, session_id, file)

    ADDED.clear()
    monkeypatch.setattr(MemoryUploadedFileManager, "__init__", init)
    monkeypatch.setattr(MemoryUploadedFileManager, "add_file", added)
    return stores


@pytest.fixture
def budget(monkeypatch) -> UploadBudget:
    """A budget of its own for the page (the process's is shared by the whole test run)."""
    own = UploadBudget(10 * 2**20)
    monkeypatch.setattr(app_diagnose, "UPLOAD_BUDGET", own)
    return own


def uploads_in_session(at) -> list[UploadedFile]:
    """Uploaded files the session still refers to (widget values or anything stored)."""
    state = at._session_state._state
    found = []
    for values in (state._old_state, state._new_session_state):
        for value in values.values():
            items = value if isinstance(value, list) else [value]
            found += [item for item in items if isinstance(item, UploadedFile)]
    return found


def bytes_held(stores: list[MemoryUploadedFileManager]) -> int:
    return sum(len(rec.data) for store in stores for files in store.file_storage.values()
               for rec in files.values())  # fmt: skip


def no_traceback(at) -> None:
    assert not at.exception, at.exception
    assert "Traceback" not in all_text(at)


def test_files_over_the_cap_are_refused_with_a_plain_sentence(app_env, budget, upload_stores):
    limit = app_diagnose.MAX_FILES_PER_UPLOAD
    files = [(f"x{i:02d}.png", xray(i), "image/png") for i in range(limit + 3)]
    at = open_page(PAGE)
    at.file_uploader[0].set_value(files).run()
    no_traceback(at)
    (warning,) = at.warning
    assert warning.value == (
        f"{limit + 3} files were uploaded; the first {limit} are analysed and the other 3 were "
        f"not kept. Upload them again, at most {limit} at a time."
    )
    assert not set("*_[]()<>`#~:$\\|!") & set(warning.value)  # nothing Markdown would change
    assert list(at.dataframe[0].value["File"]) == [name for name, _, _ in files[:limit]]
    assert bytes_held(upload_stores) == 0 and not uploads_in_session(at)
    assert budget.held == 0


def test_the_bytes_are_released_once_the_results_are_kept(app_env, budget, upload_stores):
    at = open_page(PAGE)
    at.file_uploader[0].set_value(
        [("a.png", xray(1), "image/png"), ("b.png", xray(2), "image/png")]
    )
    at.run()
    no_traceback(at)
    # The files reached the store, and left it: the uploader is new and empty.
    assert len(ADDED) == 2 and bytes_held(upload_stores) == 0
    assert at.file_uploader[0].value == [] and not uploads_in_session(at)
    assert budget.held == 0
    # The results stay on the page without the bytes, through later reruns.
    assert "Results for 2 files" in all_text(at)
    at.slider[0].set_value(0.9).run()
    no_traceback(at)
    assert "Results for 2 files" in all_text(at) and "a.png: model output" in all_text(at)
    assert "Upload one or more frontal chest X-rays" not in all_text(at)
    # A new upload replaces them.
    at.file_uploader[0].set_value(("c.png", xray(3), "image/png")).run()
    no_traceback(at)
    assert "c.png: model output" in all_text(at) and "a.png" not in all_text(at)
    assert bytes_held(upload_stores) == 0


def test_a_full_budget_says_the_server_is_busy_and_keeps_nothing(
    app_env, monkeypatch, upload_stores
):
    full = UploadBudget(1)
    monkeypatch.setattr(app_diagnose, "UPLOAD_BUDGET", full)
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("busy.png", xray(4), "image/png")).run()
    no_traceback(at)
    assert [w.value for w in at.warning] == [BUSY]
    assert "model output" not in all_text(at)
    assert bytes_held(upload_stores) == 0 and not uploads_in_session(at)
    assert full.held == 0
    at.run()  # the notice is shown once
    assert not at.warning and "Upload one or more frontal chest X-rays" in all_text(at)


def test_the_budget_is_given_back_after_a_failed_analysis(
    app_env, budget, monkeypatch, upload_stores
):
    def failing(entry, content, name):
        raise InvalidImageError("The file is not an image this page can read.")

    monkeypatch.setattr(loaders, "analyse_upload", failing)
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("bad.png", xray(5), "image/png")).run()
    no_traceback(at)
    (error,) = at.error
    assert "bad.png" in shown(error.value)
    assert "not an image this page can read" in shown(error.value)
    assert budget.held == 0 and bytes_held(upload_stores) == 0


def test_an_unexpected_error_gives_the_budget_and_the_bytes_back(
    app_env, budget, monkeypatch, upload_stores
):
    def broken(entry, content, name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(loaders, "analyse_upload", broken)
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("bug.png", xray(6), "image/png")).run()
    assert budget.held == 0 and bytes_held(upload_stores) == 0


def test_limits_are_stated_in_mib(app_env) -> None:
    at = open_page(PAGE)
    label = at.file_uploader[0].label
    assert f"each at most {app_diagnose.MAX_UPLOAD_MIB} MiB" in label
    assert f"up to {app_diagnose.MAX_FILES_PER_UPLOAD} at once" in label
    assert " MB" not in label
