"""Training on several machines with ``tf.distribute.MultiWorkerMirroredStrategy``.

Every worker runs the same ``train`` command; the cluster comes from the ``TF_CONFIG``
environment variable in TensorFlow's own format::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

Worker 0 (or the task of type ``chief``, if the cluster names one) is the chief: it alone writes
the run folder. The others run exactly the same steps - collective operations must be called
in the same order everywhere - but write into a temporary folder of their own that is removed
at the end (TensorFlow's documented pattern for non-chief workers). This module forms the
cluster and talks across it: reading ``TF_CONFIG``, connecting within a time limit, running
one worker's part, sending the chief's files to the others when a run resumes, and agreeing
on a stop request. :mod:`cxr_core.distributed.multiworker` shares out the images and fits the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf

from cxr_core.distributed.devices import configure_devices
from cxr_core.errors import ClusterError, ConfigError

__all__ = [
    "AgreedStop",
    "ClusterMember",
    "WorkerInfo",
    "any_worker",
    "broadcast_files",
    "connect",
    "read_tf_config",
    "run_as_worker",
]

#: Files of a run folder that a resumed run reads; the chief sends them to the other workers.
RESUME_FILES = ("config.json", "status.json", "history.jsonl", "*.weights.h5", "backup/**/*")


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster described by ``TF_CONFIG``.

    Attributes:
        task_type: ``"worker"`` or ``"chief"``.
        index: Task index within its type.
        workers: Number of machines that train (chief included).
        is_chief: Whether this process writes the run folder.
        addresses: ``host:port`` of every task, the chief's first.
    """

    task_type: str
    index: int
    workers: int
    is_chief: bool
    addresses: tuple[str, ...]

    @property
    def name(self) -> str:
        """E.g. ``"worker 1 of 2"``."""
        return f"{self.task_type} {self.index} of {self.workers}"


def read_tf_config(environ: Mapping[str, str] | None = None) -> WorkerInfo:
    """Read and check ``TF_CONFIG``.

    Args:
        environ: Environment to read (default ``os.environ``).

    Returns:
        This task's :class:`WorkerInfo`.

    Raises:
        ConfigError: ``TF_CONFIG`` is missing, not JSON, or does not describe a cluster of
            ``worker`` (and optionally one ``chief``) tasks that includes this task.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        raise ConfigError(
            "--distribute multiworker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        values = json.loads(text)
        cluster, task = dict(values["cluster"]), dict(values["task"])
        task_type, index = str(task["type"]), task["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG is not a cluster description: {error}") from None
    jobs = {job: _addresses(job, cluster[job]) for job in ("chief", "worker") if job in cluster}
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown or "worker" not in jobs or len(jobs.get("chief", [])) > 1:
        raise ConfigError(
            "TF_CONFIG's cluster must list 'worker' tasks (and at most one 'chief'). "
            f"Received: cluster={cluster!r}"
        )
    if task_type not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise ConfigError(f"TF_CONFIG's task is not in its cluster. Received: task={task!r}")
    addresses = tuple(jobs.get("chief", [])) + tuple(jobs["worker"])
    is_chief = task_type == "chief" or ("chief" not in jobs and index == 0)
    return WorkerInfo(task_type, index, len(addresses), is_chief, addresses)


def _addresses(job: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"TF_CONFIG's {job} tasks must be a list. Received: {job}={value!r}")
    for address in value:
        if not isinstance(address, str) or ":" not in address:
            raise ConfigError(f"a TF_CONFIG address must be 'host:port'. Received: {address!r}")
    return value


def connect(worker: WorkerInfo, timeout: float) -> tf.distribute.Strategy:
    """Start this worker's part of the cluster and wait for the others, at most ``timeout`` s.

    Call it before any other TensorFlow work in the process (TensorFlow configures its
    collective operations at start-up). Left to itself, TensorFlow waits for missing peers
    for an hour, holding the interpreter and ignoring SIGTERM; here every task registers
    behind a barrier that gives up after ``timeout`` seconds, on the chief as on the others.
    TensorFlow's own log lines during the attempt are kept off stderr.

    Raises:
        ClusterError: The cluster did not form within ``timeout`` seconds, or failed to start.
    """
    _configure_coordination(timeout)
    try:
        with _native_stderr_silenced():
            return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.DeadlineExceededError:
        raise ClusterError(
            f"the cluster in TF_CONFIG did not form within {timeout:g} s ({worker.name}; "
            f"tasks {', '.join(worker.addresses)}): start every worker with the same TF_CONFIG "
            "cluster and its own task index, and check that their ports are reachable"
        ) from None
    except (tf.errors.OpError, RuntimeError, ValueError) as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ClusterError(f"could not start {worker.name}: {lines[0][:300]}") from None


def _configure_coordination(timeout: float) -> None:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would, plus
    a registration barrier with a deadline (the strategy keeps a configuration it finds).

    These are TensorFlow's internal modules (2.21); without them the strategy configures
    itself, without the deadline.
    """
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context
    except ImportError:
        return

    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in spec.jobs
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=max(1, round(timeout * 1000)),
    )
    # Without the barrier only tasks that cannot reach the chief time out; the chief itself
    # would wait for absent workers without a limit.
    context.context().coordination_service.cluster_register_with_barrier = True


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _replica_reduce(
    strategy: tf.distribute.Strategy, value: np.ndarray, first_only: bool, op: str
) -> np.ndarray:
    """All-reduce ``value`` over every replica of every worker; return the result here.

    With ``first_only`` only replica 0 (on the chief) contributes: a broadcast.
    """
    key = (strategy, first_only, op)
    if key not in _REDUCERS:  # one traced function each, not one per call

        def step(tensor: tf.Tensor) -> tf.Tensor:
            context = tf.distribute.get_replica_context()
            tensor = tf.identity(tensor)  # placed on this replica's device, which all_reduce needs
            if first_only:
                first = tf.equal(context.replica_id_in_sync_group, 0)
                tensor = tf.where(first, tensor, tf.zeros_like(tensor))
            return context.all_reduce(op, tensor)

        _REDUCERS[key] = tf.function(
            lambda tensor: strategy.run(step, args=(tensor,)), reduce_retracing=True
        )
    result = _REDUCERS[key](tf.constant(value))
    return strategy.experimental_local_results(result)[0].numpy()


_REDUCERS: dict[tuple[tf.distribute.Strategy, bool, str], Callable] = {}


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether ``flag`` is true on at least one worker; every worker must call it together."""
    total = _replica_reduce(strategy, np.array([int(flag)], np.int32), False, "SUM")
    return bool(total[0] > 0)


def broadcast_bytes(strategy: tf.distribute.Strategy, payload: bytes) -> bytes:
    """Return the chief's ``payload`` on every worker (the others' payloads are ignored)."""
    length = int(_replica_reduce(strategy, np.array([len(payload)], np.int64), True, "SUM")[0])
    size = max(4, -(-length // 4) * 4)  # whole int32 words, at least one
    words = np.frombuffer(payload[:length].ljust(size, b"\0"), dtype="<i4").astype(np.int32)
    received = _replica_reduce(strategy, words, True, "SUM")
    return received.astype("<i4").tobytes()[:length]


def broadcast_files(strategy: tf.distribute.Strategy, root: Path, is_chief: bool) -> list[str]:
    """Copy the chief's resume files (:data:`RESUME_FILES`) into ``root`` on every other worker.

    Args:
        strategy: The cluster's strategy; every worker must call this together.
        root: The chief's run folder on the chief, the worker's own folder elsewhere.
        is_chief: Whether this worker sends (True) or receives.

    Returns:
        The relative paths sent or received.
    """
    payload = _pack_files(root) if is_chief else b""
    header, _, body = broadcast_bytes(strategy, payload).partition(b"\n")
    files = json.loads(header or b"[]")
    if not is_chief:
        offset = 0
        for name, size in files:
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body[offset : offset + size])
            offset += size
    return [name for name, _ in files]


def _pack_files(root: Path) -> bytes:
    found = sorted({path for pattern in RESUME_FILES for path in root.glob(pattern)})
    files = [path for path in found if path.is_file() and not path.name.startswith(".")]
    contents = [path.read_bytes() for path in files]
    header = [
        [path.relative_to(root).as_posix(), len(data)]
        for path, data in zip(files, contents, strict=True)
    ]
    return json.dumps(header).encode() + b"\n" + b"".join(contents)


@dataclass(frozen=True)
class ClusterMember:
    """This worker and the strategy that connects it to the others."""

    worker: WorkerInfo
    strategy: tf.distribute.Strategy


T = TypeVar("T")


def run_as_worker(
    run_dir: Path,
    resume: bool,
    timeout: float,
    check: Callable[[], object],
    train: Callable[[Path, ClusterMember], T],
) -> T:
    """Join the ``TF_CONFIG`` cluster and train; only the chief writes ``run_dir``.

    Args:
        run_dir: The run folder (the same ``--out`` on every worker).
        resume: Whether the run continues; the chief then sends its resume files to the others.
        timeout: Seconds to wait for the cluster to form.
        check: Called on the chief before connecting, to fail fast (e.g. on a used folder).
        train: ``train(folder, member)``: the chief trains in ``run_dir``, every other worker
            in a temporary folder of its own, removed at the end whatever happens.

    Returns:
        ``train``'s result, once every worker has finished (a worker that outlives the chief
        may still log the chief's absence to stderr while it exits).

    Raises:
        ClusterError: The cluster did not form in time, or a worker was lost while training.
    """
    worker = read_tf_config()
    if worker.is_chief:
        check()
    configure_devices()  # GPU memory growth can only be set before TensorFlow starts
    strategy = connect(worker, timeout)
    member = ClusterMember(worker, strategy)
    folder = run_dir
    if not worker.is_chief:
        folder = Path(tempfile.mkdtemp(prefix=f"cxr-{worker.task_type}{worker.index}-"))
    try:
        if resume:
            broadcast_files(strategy, folder, worker.is_chief)
        result = train(folder, member)
        any_worker(strategy, False)  # a barrier: all workers are done
    except _LOST_PEER_ERRORS as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ClusterError(f"{worker.name} lost the cluster: {lines[0][:300]}") from None
    finally:
        if not worker.is_chief:
            shutil.rmtree(folder, ignore_errors=True)
    return result


# What collective operations raise when a peer is gone or stops answering.
_LOST_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


class AgreedStop:
    """A stop request that all workers agree on: any worker's request stops every worker.

    Workers must stop at the same step, so the local request (SIGTERM, or the chief's STOP
    file) is shared at the first check and then every ``every`` checks; every worker checks
    at the same points, so the answer between two agreements is the same everywhere.
    """

    def __init__(self, local: Any, strategy: tf.distribute.Strategy, every: int = 20) -> None:
        self.local, self.strategy, self.every = local, strategy, every
        self.checks, self.agreed = 0, False

    @property
    def requested(self) -> bool:
        """Whether any worker has asked to stop, as of the last agreement."""
        if self.checks % self.every == 0 and not self.agreed:
            self.agreed = any_worker(self.strategy, self.local.requested)
        self.checks += 1
        return self.agreed

    def check(self) -> None:
        """Raise :class:`cxr_core.runs.guard.StopRequested` once the workers agreed to stop."""
        from cxr_core.runs.guard import StopRequested

        if self.requested:
            raise StopRequested

    def __getattr__(self, name: str) -> Any:
        # disarm, install, clear_stale, start_watchdog: the local request's own.
        return getattr(self.local, name)
