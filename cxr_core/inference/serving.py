"""Serving several visitors on few cores: one inference worker per model, micro-batching.

When every browser session ran its own forward pass, eight uploads at once meant eight
TensorFlow calls with full-size thread pools fighting over two cores: all eight finished
together at the end (p50 5.4 s against 0.37 s alone). An :class:`InferenceWorker` owns one
:class:`~cxr_core.inference.predictor.Predictor` and one thread. Requests queue; the thread takes
the first,
then whatever else has arrived (waiting at most ``max_wait_s`` when it found only one), up to
``max_batch``, and explains them in one batch (:meth:`Predictor.explain_batch`), as serving
systems do (dynamic batching). Each answer is what the image alone would get: images of a
batch are independent at inference. Other model work - the Evaluate page's scoring - takes its
turn through :meth:`InferenceWorker.turn`, batch by batch, so it queues rather than competes.

:class:`ModelPool` keeps one loaded model, predictor and worker per model file version for the
whole process, loads them in the background on request (:meth:`ModelPool.warm`: the app's
warm-up) and tells whether one is ready. :func:`size_thread_pools` sizes TensorFlow's thread
pools to the cores this process may use. Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cxr_core.inference.predictor import Prediction, Predictor

__all__ = [
    "InferenceWorker",
    "ModelPool",
    "Served",
    "WarmState",
    "size_thread_pools",
    "warm_up_image",
]

_STOP = object()


def size_thread_pools() -> bool:
    """Size TensorFlow's pools to this process's cores: all for one op, two ops at once.

    With one worker thread per model there is one stream of ops; the defaults (every core for
    each of as many concurrent ops) oversubscribe a small machine. Must run before TensorFlow
    executes its first op.

    Returns:
        True when set, False when TensorFlow had already started (the pools stay as they are).
    """
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores or 1))
        tf.config.threading.set_inter_op_parallelism_threads(min(2, max(1, cores or 1)))
    except RuntimeError:  # the runtime is already initialised
        return False
    return True


def warm_up_image(side: int = 1024) -> np.ndarray:
    """A ``(side, side)`` uint8 image shaped like an upload, to trace and warm the steps."""
    ramp = np.linspace(30, 220, side, dtype=np.float32)
    return np.rint(np.add.outer(ramp, ramp) / 2).astype(np.uint8)


@dataclass(eq=False)
class _Request:
    pixels: np.ndarray
    colour: float
    future: Future


class InferenceWorker:
    """One thread that explains every request for one model, in micro-batches.

    Args:
        predictor: The model's predictor; only this worker's thread calls it.
        max_batch: Most images per batch.
        max_wait_s: How long a lone request waits for company before it runs alone.
    """

    def __init__(self, predictor: Predictor, max_batch: int = 8, max_wait_s: float = 0.01):
        self._predictor = predictor
        self._max_batch = max(1, int(max_batch))
        self._max_wait_s = max(0.0, float(max_wait_s))
        self._queue: queue.Queue = queue.Queue()
        self._device = threading.Lock()  # held while the model runs: batches or a turn
        self._batch_sizes: list[int] = []
        self._thread = threading.Thread(target=self._serve, name="cxr-inference", daemon=True)
        self._thread.start()

    @property
    def predictor(self) -> Predictor:
        """The wrapped predictor (call it only through this worker while it serves)."""
        return self._predictor

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch run so far, in order."""
        return list(self._batch_sizes)

    def submit(self, pixels: np.ndarray, colour: float = 0.0) -> Future:
        """Queue one image; the future resolves to :meth:`Predictor.explain_all`'s result."""
        future: Future = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("The inference worker has stopped."))
            return future
        self._queue.put(_Request(pixels, float(colour), future))
        return future

    def explain_all(self, pixels: np.ndarray, colour: float = 0.0) -> Prediction:
        """Score and explain one image by every method, as :meth:`Predictor.explain_all`
        would, queued with other requests; blocks until its batch has run."""
        return self.submit(pixels, colour).result()

    @contextmanager
    def turn(self) -> Iterator[Callable[[], None]]:
        """Hold the model for other work (Evaluate's scoring) between batches.

        Yields:
            A function to call between steps of that work: it lets queued batches run, then
            takes the model back.
        """

        def let_others_run() -> None:
            self._device.release()
            time.sleep(0.001)  # let the worker thread, if it waits, take the lock
            self._device.acquire()

        with self._device:
            yield let_others_run

    def close(self) -> None:
        """Stop the thread after the requests already queued."""
        self._queue.put(_STOP)

    def _serve(self) -> None:
        pending = None
        while True:
            item = pending if pending is not None else self._queue.get()
            pending = None
            if item is _STOP:
                return
            batch = [item]
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch:
                # Take what has queued already; wait briefly only while alone.
                wait = deadline - time.monotonic() if len(batch) == 1 else 0.0
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    pending = item
                    break
                batch.append(item)
            self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not batch:
            return
        with self._device:
            self._batch_sizes.append(len(batch))
            try:
                results = self._predictor.explain_batch(
                    [r.pixels for r in batch], [r.colour for r in batch]
                )
            except Exception:  # one bad image must not fail the others: alone, each its own
                results = None
            if results is None:
                for request in batch:
                    try:
                        request.future.set_result(
                            self._predictor.explain_all(request.pixels, request.colour)
                        )
                    except Exception as error:
                        request.future.set_exception(error)
                return
        for request, result in zip(batch, results, strict=True):
            request.future.set_result(result)


class WarmState(Enum):
    """Where a model stands in the :class:`ModelPool`."""

    ABSENT = "absent"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, eq=False)
class Served:
    """A loaded model ready to serve: the Keras model, its metadata, predictor and worker."""

    model: Any
    metadata: Any
    predictor: Predictor
    worker: InferenceWorker


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.served: Served | None = None
        self.error: BaseException | None = None
        self.seconds: float | None = None


class ModelPool:
    """One :class:`Served` per model file version for the whole process (at most
    ``max_models``; the least recently used is dropped), loaded once, in the background.

    Args:
        loader: ``loader(path) -> Served``; by default :func:`serve_model`.
        max_models: Models kept at once.
    """

    def __init__(self, loader: Callable[[str], Served] | None = None, max_models: int = 4):
        self._loader = loader or serve_model
        self._max_models = max(1, max_models)
        self._slots: OrderedDict[tuple[str, float], _Slot] = OrderedDict()
        self._lock = threading.Lock()

    def warm(
        self, path: str, mtime: float, before_load: Callable[[], None] | None = None
    ) -> WarmState:
        """Start loading the model in a background thread unless it is loading or loaded.

        Args:
            path: The model file.
            mtime: Its modification time (a changed file is another model).
            before_load: Called on that thread before the load starts (a new load only): the
                app lets the page that asked finish drawing first.
        """
        slot, new = self._slot(path, mtime)
        if new:
            threading.Thread(
                target=self._load, args=(slot, path, before_load), name="cxr-warm-up", daemon=True
            ).start()
        return self._state(slot)

    def state(self, path: str, mtime: float) -> WarmState:
        """Where the model stands, without starting anything."""
        with self._lock:
            slot = self._slots.get((path, mtime))
        return WarmState.ABSENT if slot is None else self._state(slot)

    def get(self, path: str, mtime: float, timeout: float | None = None) -> Served:
        """The served model, loading it (in the background, waited for) if needed.

        Raises:
            CXRError: Loading failed (raised again on every call, until the file changes).
            TimeoutError: Not ready within ``timeout`` seconds.
        """
        self.warm(path, mtime)
        with self._lock:
            slot = self._slots[(path, mtime)]
        if not slot.done.wait(timeout):
            raise TimeoutError(f"The model {path} is still loading.")
        if slot.error is not None:
            raise slot.error
        assert slot.served is not None  # set whenever no error was
        return slot.served

    def _slot(self, path: str, mtime: float) -> tuple[_Slot, bool]:
        key = (path, mtime)
        with self._lock:
            if key in self._slots:
                self._slots.move_to_end(key)
                return self._slots[key], False
            slot = self._slots[key] = _Slot()
            while len(self._slots) > self._max_models:
                _, old = self._slots.popitem(last=False)
                if old.served is not None:
                    old.served.worker.close()
            return slot, True

    def _load(self, slot: _Slot, path: str, before_load: Callable[[], None] | None = None) -> None:
        if before_load is not None:
            before_load()
        start = time.perf_counter()
        try:
            slot.served = self._loader(path)
        except BaseException as error:  # kept and raised to every caller of get()
            slot.error = error
        slot.seconds = time.perf_counter() - start
        slot.done.set()

    @staticmethod
    def _state(slot: _Slot) -> WarmState:
        if not slot.done.is_set():
            return WarmState.LOADING
        return WarmState.FAILED if slot.error is not None else WarmState.READY


def serve_model(path: str) -> Served:
    """Load a model, wrap it, start its worker and trace its steps on an upload-sized image
    (single and batched), so the first real upload pays no tracing.

    Raises:
        ModelLoadError: The model or its sidecar is unusable.
    """
    size_thread_pools()
    from cxr_core.inference.predictor import Predictor
    from cxr_core.model.build import load_model

    model, metadata = load_model(path)
    predictor = Predictor.with_stored_gate(model, metadata, path)
    predictor.warm_up(warm_up_image())
    return Served(model, metadata, predictor, InferenceWorker(predictor))
