"""Training one run from start to finish, with live status on disk.

:func:`train_run` locks the run folder, prepares the data and trains the phases
(:mod:`cxr_core.training.phases`, reporting through :mod:`cxr_core.training.monitor`); then
:func:`cxr_core.training.finalize.finalize_model` calibrates the model, chooses the decision
threshold on the validation split pooled over the stress suite, and fits the input check. A
cancel or a failure is recorded in ``status.json`` whatever stage the run is in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from cxr_core.backbones import backbone_spec
from cxr_core.config import RunConfig
from cxr_core.distributed import cluster, multiworker
from cxr_core.distributed.cluster import ClusterMember
from cxr_core.distributed.devices import (
    configure_devices,
    describe_devices,
    resolve_mixed_precision,
    resolve_xla,
    single_device_copy,
)
from cxr_core.distributed.prepared import PreparedData
from cxr_core.errors import CXRError, DataError, StorageError
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    RunSummary,
    cancelled_message,
    now_iso,
    read_config,
    read_json,
    read_status,
    status_lock,
    update_status,
    write_json_atomic,
)
from cxr_core.runs.guard import StopRequest, StopRequested, lock_run, process_start, unlock_run
from cxr_core.runs.plan import Phase, gate_images, learning_rate_scale, plan_phases, run_workload
from cxr_core.runs.progress import FORWARD_SPEEDUP, Stage
from cxr_core.training.finalize import Finalized, finalize_model, save_finalized
from cxr_core.training.monitor import TrainingContext
from cxr_core.training.phases import (
    best_auc_so_far,
    prepare_data,
    set_trainable_for_phase,
    train_phases,
)

__all__ = [
    "Phase",
    "TrainResult",
    "TrainingContext",
    "learning_rate_scale",
    "plan_phases",
    "prepare_data",
    "run_workload",
    "set_trainable_for_phase",
    "train_run",
]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_run` returns.

    Attributes:
        state: ``RunState.FINISHED`` or ``RunState.CANCELLED``.
        summary: A finished run's validation metrics and decision threshold, else None.
        chief: Under ``"multiworker"``, whether this worker wrote the run folder; else None.
    """

    state: RunState
    summary: RunSummary | None = None
    chief: bool | None = None


def train_run(
    run_dir: str | Path,
    config: RunConfig | None = None,
    resume: bool = False,
    status_interval: float = 2.0,
    stop: StopRequest | None = None,
    distribute: str | None = None,
    cluster_timeout: float = 120.0,
) -> TrainResult:
    """Train one model in ``run_dir`` and return its validation summary.

    Args:
        run_dir: Run folder (created if needed); see :mod:`cxr_core.runs.files` for its files. It is
            locked for this process while training (:func:`cxr_core.runs.guard.lock_run`).
        config: The run's settings; ignored when resuming (``config.json`` is read instead).
        resume: Continue an interrupted or cancelled run from its last completed epoch (a
            part-done epoch runs again). A STOP file already present in a new run (a cancel
            that arrived while the process was starting) cancels it at the first batch.
        status_interval: Seconds between ``status.json`` updates during an epoch.
        stop: The stop request to honour (the command line makes one before importing
            TensorFlow, so that no early SIGTERM is lost); by default one for the run's STOP
            file, handling SIGTERM when called from the main thread.
        distribute: Overrides ``config.train.distribute`` (and the recorded setting when
            resuming). With ``"multiworker"`` every worker of the ``TF_CONFIG`` cluster calls
            this with the same ``run_dir``; only the chief writes there (see
            :mod:`cxr_core.distributed.cluster`), and a resumed run's state reaches the others from
            it.
        cluster_timeout: Seconds a multi-worker run waits for the other workers to answer.

    Returns:
        The state (finished or cancelled) and a finished run's validation summary; for
        ``"multiworker"`` also whether this worker (the chief) wrote ``run_dir``.

    Raises:
        RunInUseError: Another process is training in ``run_dir``.
        CXRError: Bad data or settings; the run's status is ``failed`` with the message.
        ClusterError: A multi-worker run's cluster did not form in time, or lost a worker.
    """
    paths = RunPaths(Path(run_dir))
    if _distribute_setting(paths, config, resume, distribute) != "multiworker":
        lock_run(paths.root)
        try:
            return _guarded_train(paths, config, resume, status_interval, stop, distribute)
        finally:
            unlock_run(paths.root)

    def train_here(root: Path, member: ClusterMember) -> TrainResult:
        result = _guarded_train(
            RunPaths(root), config, resume, status_interval, stop, "multiworker", member
        )
        return dataclasses.replace(result, chief=member.worker.is_chief)

    # The chief checks its --out before the others start waiting for it.
    return cluster.run_as_worker(
        paths.root, resume, cluster_timeout, lambda: _load_config(paths, config, resume), train_here
    )


def _guarded_train(
    paths: RunPaths,
    config: RunConfig | None,
    resume: bool,
    status_interval: float,
    stop: StopRequest | None,
    distribute: str | None = None,
    cluster_member: ClusterMember | None = None,
) -> TrainResult:
    config = _with_distribute(_load_config(paths, config, resume), distribute)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.config, config.to_dict())
    if stop is None:
        stop = StopRequest(paths.stop_file)
        stop.install()
    if resume:
        stop.clear_stale()  # the request that stopped the last attempt
    started = time.monotonic()
    pid = os.getpid()
    identity = {"pid": pid, "process_start": process_start(pid)}
    first_start = {} if resume and read_status(paths).started_at else {"started_at": now_iso()}
    update_status(
        paths,
        state=RunState.PREPARING,
        stage=Stage.READING,
        **first_start,  # a resumed run keeps its first start time
        error=None,
        message=None,
        **identity,
    )
    try:
        result = _train(config, paths, stop, resume, status_interval, started, cluster_member)
    except StopRequested:
        with status_lock:
            stop.disarm()
            update_status(paths, state=RunState.CANCELLED, message=cancelled_message(paths))
        return TrainResult(RunState.CANCELLED)
    except CXRError as error:
        _record_failure(paths, stop, str(error))
        raise
    except Exception as error:
        with contextlib.suppress(OSError):  # a full disk must not hide the real error
            (paths.root / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
        _record_failure(paths, stop, f"{type(error).__name__}: {error}")
        raise
    return result


def _record_failure(paths: RunPaths, stop: StopRequest, reason: str) -> None:
    """Mark the run failed with ``reason``; if even that cannot be written (the disk is
    still full), say so on stderr rather than replace the error being raised."""
    with status_lock:
        stop.disarm()
        try:
            update_status(paths, state=RunState.FAILED, error=reason)
        except StorageError as error:
            print(f"warning: the run's status could not be updated: {error}", file=sys.stderr)


def _train(
    config: RunConfig,
    paths: RunPaths,
    stop: StopRequest,
    resume: bool,
    status_interval: float,
    started: float,
    cluster_member: ClusterMember | None = None,
) -> TrainResult:
    keras.utils.set_random_seed(config.data.seed)
    configure_devices()
    if cluster_member is not None:
        # Every check from here on is agreed by all workers, so that they stop together.
        stop = cluster.AgreedStop(stop, cluster_member.strategy)
    stop.check()
    prepared = prepare_data(config)
    if cluster_member is not None:
        replicas = cluster_member.strategy.num_replicas_in_sync
        prepared = multiworker.shard_inputs(prepared, config, cluster_member.worker, replicas)
    stop.check()
    n_train, n_val = len(prepared.train_table), len(prepared.val_table)
    strategy = (
        cluster_member.strategy
        if cluster_member
        else multiworker.select_strategy(config.train.distribute)
    )
    context = TrainingContext(
        paths=paths,
        stop=stop,
        resume=resume,
        started=started,
        status_interval=status_interval,
        strategy=strategy,
        cluster=cluster_member,
        batch_size=config.data.batch_size,
        workload=run_workload(config, n_train, n_val),
        phase_starts=[phase.first_epoch for phase in plan_phases(config)],
        best_auc=best_auc_so_far(paths) if resume else -math.inf,
        mixed_precision=resolve_mixed_precision(config.train.mixed_precision),
        xla=resolve_xla(config.train.xla, strategy.num_replicas_in_sync),
    )
    update_status(
        paths,
        state=RunState.RUNNING,
        stage=Stage.BUILDING,
        batch=0,
        batches_per_epoch=context.workload.steps_per_epoch,
        device=describe_devices().summary,
        workers=context.cluster.worker.workers if context.cluster else 1,
        replicas=context.strategy.num_replicas_in_sync,
        mixed_precision=context.mixed_precision,
        xla=context.xla,
        train_images=n_train,
        val_images=n_val,
        validation=prepared.description,
        class_weight=prepared.class_weight,
        total_epochs=context.workload.total_epochs,
    )
    model = train_phases(config, prepared, context)
    summary = _finish(_model_to_finish(model, context), config, prepared, context)
    with status_lock:
        stop.disarm()
        update_status(
            paths,
            state=RunState.FINISHED,
            finished_at=now_iso(),
            summary=summary,
            eta_seconds=0,
            message=None,  # not the last stage's "fitting the input check..."
        )
    return TrainResult(RunState.FINISHED, RunSummary.from_dict(summary))


def _load_config(paths: RunPaths, config: RunConfig | None, resume: bool) -> RunConfig:
    if resume:
        if not paths.config.is_file():
            raise DataError(f"cannot resume: {paths.config} not found")
        return read_config(paths)
    if config is None:
        raise DataError("a run configuration is needed unless resuming")
    if paths.model.exists() or paths.history.exists():
        raise DataError(
            f"run folder {paths.root} already holds a run; pass --resume or another --out"
        )
    return config


def _finish(
    model: keras.Model, config: RunConfig, prepared: PreparedData, context: TrainingContext
) -> dict[str, Any]:
    paths = context.paths
    if paths.best_weights.exists():
        model.load_weights(paths.best_weights)

    work = context.workload

    def say(message: str) -> None:
        context.stop.check()
        # The input check's features are the last forward pass; the stress suite comes first.
        images = gate_images(config, work) if "input check" in message else work.finish_images
        forward = context.forward_rate or FORWARD_SPEEDUP * (context.train_rate or 0)
        left = {"eta_seconds": round(images / forward), "eta_at": now_iso()} if forward else {}
        update_status(
            paths,
            state=RunState.RUNNING,
            stage=Stage.FINISHING,
            phase="finishing",
            message=message,
            **left,
        )

    finalized = finalize_model(
        model, config, prepared.train_table, prepared.val_table, progress=say
    )
    report = {**finalized.report, "validation": prepared.description}
    write_json_atomic(paths.metrics, {**report, "stress": finalized.stress})
    summary = {key: value for key, value in report.items() if key not in ("curves",)}
    seconds = round(time.monotonic() - context.started)
    context.stop.check()
    with status_lock:  # a stop watchdog waits until the model and sidecar are both written
        distribution = _distribution_record(config, context)
        _save_finalized(model, config, prepared, finalized, paths, seconds, distribution)
    return {**summary, "threshold": finalized.threshold}


def _save_finalized(
    model: keras.Model,
    config: RunConfig,
    prepared: PreparedData,
    finalized: Finalized,
    paths: RunPaths,
    seconds: int,
    distribution: dict[str, Any],
) -> None:
    save_finalized(
        model,
        paths.model,
        finalized,
        {
            "backbone": config.model.backbone,
            "image_size": config.model.image_size,
            "threshold_rule": config.train.threshold_rule,
            "threshold_scores": config.train.threshold_scores,
            "last_conv_layer": backbone_spec(config.model.backbone).last_conv_layer,
            "run_config": config.to_dict(),
            "data_fingerprint": prepared.fingerprint,
            "validation": prepared.description,
            "training_seconds": seconds,
            "devices": describe_devices().summary,
            "distribution": distribution,
        },
    )


def _distribution_record(config: RunConfig, context: TrainingContext) -> dict[str, Any]:
    """How the run was spread and computed, as resolved (the settings may say "auto")."""
    member = context.cluster
    return {
        "strategy": "multiworker" if member else config.train.distribute,
        "workers": member.worker.workers if member else 1,
        "replicas": context.strategy.num_replicas_in_sync,
        "mixed_precision": context.mixed_precision,
        "xla": context.xla,
        "learning_rate_scale": learning_rate_scale(config),
    }


def _model_to_finish(model: keras.Model, context: TrainingContext) -> keras.Model:
    # Mixed precision or several workers: a float32 copy outside the strategy, so that every
    # worker scores all of the validation images itself, as on one device, and the saved
    # model runs anywhere.
    if not context.mixed_precision and context.cluster is None:
        return model
    return single_device_copy(model)


def _distribute_setting(
    paths: RunPaths, config: RunConfig | None, resume: bool, distribute: str | None
) -> str:
    if distribute is not None:
        return distribute
    if config is not None and not resume:
        return config.train.distribute
    recorded = read_json(paths.config).get("train", {})
    return recorded.get("distribute", "auto") if isinstance(recorded, dict) else "auto"


def _with_distribute(config: RunConfig, distribute: str | None) -> RunConfig:
    if distribute is None or distribute == config.train.distribute:
        return config
    return dataclasses.replace(
        config, train=dataclasses.replace(config.train, distribute=distribute)
    )
