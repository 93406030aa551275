"""One process-wide budget for uploaded bytes held in memory while they are analysed.

Streamlit runs every session in one server process, so uploads from all visitors share its
memory. The Diagnose page reserves the size of an upload's files here before it analyses them
and gives the reservation back when it is done, on error too; an upload that does not fit in
what is left is refused at once with :data:`BUSY` (its bytes are dropped, nothing waits), so the
uploaded bytes held at any moment never exceed the budget.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from cxr_core.errors import JobError
from cxr_core.runs.policy import UPLOAD_BUDGET_MIB

__all__ = ["BUSY", "UPLOAD_BUDGET", "UploadBudget"]

#: What a visitor reads when the budget is full.
BUSY = "The server is busy with other uploads; try again shortly."


class UploadBudget:
    """A thread-safe count of the uploaded bytes held, against a fixed capacity in bytes."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes reserved now."""
        with self._lock:
            return self._held

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Reserve ``size`` bytes for the block; they are given back when it ends, however.

        Raises:
            JobError: :data:`BUSY`, when ``size`` does not fit in what is left (nothing is
                reserved then).
        """
        size = max(0, int(size))
        with self._lock:
            if self._held + size > self.capacity:
                raise JobError(BUSY)
            self._held += size
        try:
            yield
        finally:
            with self._lock:
                self._held -= size


#: The server process's one budget (:data:`cxr_core.runs.policy.UPLOAD_BUDGET_MIB`).
UPLOAD_BUDGET = UploadBudget(UPLOAD_BUDGET_MIB * 2**20)
