"""cxr_core.inference.upload_budget and the upload limits: one budget for every session's
uploads, refused with one sentence when full, given back on error; limits stated in MiB."""

from __future__ import annotations

import threading

import pytest

from cxr_core.errors import JobError
from cxr_core.imaging.decoded import MAX_BYTES, TOO_MANY_BYTES
from cxr_core.inference.upload_budget import BUSY, UPLOAD_BUDGET, UploadBudget
from cxr_core.runs import policy


def test_the_budget_refuses_an_upload_that_does_not_fit_and_reserves_nothing() -> None:
    budget = UploadBudget(100)
    with budget.hold(60):
        assert budget.held == 60
        with pytest.raises(JobError) as refused, budget.hold(41):
            pass
        assert str(refused.value) == BUSY and "\n" not in BUSY
        assert budget.held == 60  # the refused upload took nothing
        with budget.hold(40):
            assert budget.held == 100
    assert budget.held == 0


def test_the_budget_is_given_back_after_an_error() -> None:
    budget = UploadBudget(10)
    with pytest.raises(ValueError, match="decoder failed"), budget.hold(10):
        raise ValueError("decoder failed")
    assert budget.held == 0
    with budget.hold(10):  # the whole budget is free again
        assert budget.held == 10


def test_the_budget_holds_across_threads() -> None:
    budget, refused, inside = UploadBudget(5), [], threading.Barrier(5)

    def one() -> None:
        try:
            with budget.hold(1):
                inside.wait(10)  # all five hold their byte at once
        except JobError:
            refused.append(1)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not refused and budget.held == 0
    with pytest.raises(ValueError):
        UploadBudget(0)


def test_upload_limits_are_stated_in_mib_and_match_what_is_enforced() -> None:
    assert policy.MAX_UPLOAD_MIB * 2**20 == MAX_BYTES
    assert f"{policy.MAX_UPLOAD_MIB} MiB" in TOO_MANY_BYTES
    # The uploader's "MB" is 10^6 bytes in most browsers: it lets every accepted file through.
    assert MAX_BYTES <= policy.UPLOADER_LIMIT_MB * 10**6 < MAX_BYTES + 10**6
    # One full upload always fits in the budget.
    assert UPLOAD_BUDGET.capacity >= policy.MAX_FILES_PER_UPLOAD * MAX_BYTES
    assert UPLOAD_BUDGET.capacity == policy.UPLOAD_BUDGET_MIB * 2**20
