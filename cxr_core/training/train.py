"""Two-phase transfer-learning training of one run, with live status on disk.

Phase ``head`` trains the new classification head on a frozen pretrained backbone; phase
``finetune`` unfreezes the backbone's top layers at a lower learning rate while every
BatchNormalization layer stays frozen (unfrozen, their statistics drift on small batches of a
new domain and undo the pretrained features). A backbone without pretrained weights trains
whole in one ``scratch`` phase. Early stopping and the best checkpoint follow validation AUC;
then :func:`cxr_core.training.finalize.finalize_model` calibrates the model, chooses the decision
threshold on the validation split pooled over the stress suite, and fits the input check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from cxr_core.config import RunConfig, backbone_spec
from cxr_core.data import tables as data
from cxr_core.distributed import cluster, multiworker
from cxr_core.distributed.cluster import ClusterMember
from cxr_core.distributed.devices import (
    cache_where_it_fits,
    configure_devices,
    describe_devices,
    mixed_precision_policy,
    resolve_mixed_precision,
    resolve_xla,
    single_device_copy,
)
from cxr_core.distributed.prepared import PreparedData
from cxr_core.errors import CXRError, DataError, StorageError
from cxr_core.io import atomic_write
from cxr_core.model.build import backbone_layers, build_model
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    RunSummary,
    append_history,
    cancelled_message,
    now_iso,
    read_config,
    read_history,
    read_json,
    read_status,
    status_lock,
    update_status,
    write_json_atomic,
)
from cxr_core.runs.guard import StopRequest, StopRequested, lock_run, process_start, unlock_run
from cxr_core.runs.plan import Phase, gate_images, learning_rate_scale, plan_phases, run_workload
from cxr_core.runs.progress import FORWARD_SPEEDUP, Stage, Workload, remaining_seconds
from cxr_core.training.finalize import Finalized, finalize_model, save_finalized

__all__ = [
    "Phase",
    "TrainResult",
    "TrainingContext",
    "learning_rate_scale",
    "plan_phases",
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


@dataclass(slots=True)
class TrainingContext:
    """What the phases and callbacks of one run share; the callbacks update the rates.

    Attributes:
        paths: The run folder's files.
        stop: The stop request every batch checks (agreed by all workers under several).
        resume: Whether this attempt continues an earlier one.
        started: ``time.monotonic()`` when this attempt started.
        status_interval: Seconds between ``status.json`` updates during an epoch.
        strategy: The ``tf.distribute`` strategy the model is built and fitted under.
        cluster: This worker of a multi-worker run, else None.
        batch_size: The global batch size.
        workload: Images and steps of the whole run, for the estimates.
        phase_starts: First epoch (0-based) of every planned phase.
        best_auc: Best validation AUC so far (``-inf`` before the first).
        mixed_precision: Whether layers compute in ``mixed_float16``.
        xla: Whether the training step is compiled with XLA.
        train_rate: Training images per second, once measured.
        forward_rate: Validation images per second, once measured.
        phase_start_seconds: What the first phase's start (compiling, tracing, first batch)
            cost, once measured.
    """

    paths: RunPaths
    stop: StopRequest
    resume: bool
    started: float
    status_interval: float
    strategy: tf.distribute.Strategy
    cluster: ClusterMember | None
    batch_size: int
    workload: Workload
    phase_starts: list[int] = field(default_factory=list)
    best_auc: float = -math.inf
    mixed_precision: bool = False
    xla: bool = False
    train_rate: float | None = None
    forward_rate: float | None = None
    phase_start_seconds: float | None = None


def set_trainable_for_phase(model: keras.Model, phase: str, finetune_layers: int) -> None:
    """Freeze and unfreeze backbone layers for ``phase`` ("head", "finetune" or "scratch")."""
    layers = backbone_layers(model)
    for layer in layers:
        layer.trainable = phase == "scratch"
    if phase == "finetune" and finetune_layers:
        for layer in layers[-finetune_layers:]:
            if not isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True


def _compile(
    model: keras.Model, learning_rate: float, label_smoothing: float, xla: bool = False
) -> None:
    # Under mixed_float16 Keras wraps Adam in a LossScaleOptimizer by itself.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
        jit_compile=xla,
    )


class _GuardedBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose epoch-end save a stop watchdog never cuts in half."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with status_lock:
            super().on_epoch_end(epoch, logs)


class _RunMonitor(keras.callbacks.Callback):
    """Writes status.json every few seconds, history.jsonl every epoch, keeps the best weights,
    and leaves ``fit`` at the next training or validation batch when a stop is asked for
    (raising StopRequested, so a part-done epoch is neither validated nor recorded).

    Throughput is measured between batch ends within an epoch (an epoch's first batch also waits
    for the input pipeline, and the first of a phase for tracing) and on validation; both rates
    are kept in ``context`` for the estimates of later phases and of finishing.
    """

    def __init__(self, paths: RunPaths, phase: Phase, context: TrainingContext) -> None:
        super().__init__()
        self.paths, self.phase, self.context = paths, phase, context
        self.stop = context.stop
        self.last_write = 0.0
        self.epoch = phase.first_epoch
        self.train_start = time.monotonic()
        self.epoch_start = self.validation_start = time.monotonic()
        self.last_batch_end: float | None = None
        self.timed_batches, self.timed_seconds = 0, 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.train_start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.epoch_start = epoch, time.monotonic()
        self.last_batch_end, self.timed_batches, self.timed_seconds = None, 0, 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.stop.check()
        now = time.monotonic()
        if self.last_batch_end is not None:
            self._measure(now - self.last_batch_end)
        elif self.epoch == self.phase.first_epoch and self.context.phase_start_seconds is None:
            self.context.phase_start_seconds = now - self.train_start
        self.last_batch_end = now
        if batch == 0 or now - self.last_write >= self.context.status_interval:
            self._write_progress(batch + 1, logs or {}, now)

    def _measure(self, seconds: float) -> None:
        self.timed_batches += 1
        self.timed_seconds += seconds
        steps = self.context.workload.steps_per_epoch
        # A few batches of this epoch, or the last epoch's rate, whichever is firmer.
        if self.timed_batches >= min(5, steps - 1) or self.context.train_rate is None:
            rate = self.timed_batches * self.context.batch_size / max(self.timed_seconds, 1e-6)
            self.context.train_rate = rate

    def _write_progress(self, batch: int, logs: dict, now: float) -> None:
        rate = self.context.train_rate
        update_status(
            self.paths,
            state=RunState.RUNNING,
            stage=Stage.TRAINING,
            phase=self.phase.name,
            epoch=self.epoch + 1,
            batch=batch,
            batches_per_epoch=self.context.workload.steps_per_epoch,
            images_per_second=None if rate is None else round(rate, 1),
            elapsed_seconds=round(now - self.context.started),
            **_estimate(self.context, self.epoch + 1, batch),
        )
        self.last_write = now

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.validation_start = time.monotonic()
        steps = self.context.workload.steps_per_epoch
        update_status(
            self.paths,
            stage=Stage.VALIDATING,
            epoch=self.epoch + 1,
            batch=steps,
            **_estimate(self.context, self.epoch + 1, steps),
        )

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.stop.check()

    def on_test_end(self, logs: dict | None = None) -> None:
        seconds = max(time.monotonic() - self.validation_start, 1e-6)
        self.context.forward_rate = self.context.workload.val_images / seconds

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {key: float(value) for key, value in (logs or {}).items()}
        row = {"epoch": epoch + 1, "phase": self.phase.name, **logs}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = round(time.monotonic() - self.epoch_start, 1)
        append_history(self.paths, row)
        auc = logs.get("val_auc", float("nan"))
        if math.isfinite(auc) and auc > self.context.best_auc:
            self.context.best_auc = auc
            _save_weights_atomic(self.model, self.paths.best_weights)
        # The next epoch of this phase has begun; after the last one, its end is shown.
        following = epoch + 1 < self.phase.last_epoch
        position = (
            (epoch + 2, 0) if following else (epoch + 1, self.context.workload.steps_per_epoch)
        )
        update_status(
            self.paths,
            state=RunState.RUNNING,
            stage=Stage.TRAINING,
            epoch=position[0],
            batch=position[1],
            **_estimate(
                self.context, position[0], position[1], validated=0.0 if following else 1.0
            ),
        )


def _estimate(
    context: TrainingContext, epoch: int, batch: int, validated: float = 0.0
) -> dict[str, Any]:
    """``eta_seconds`` and ``eta_at`` for status.json, from the rates measured so far."""
    # Each phase still to start costs what the first one's start (compiling, tracing, the
    # input pipeline's first batch) was measured to cost.
    starts = sum(
        1 for first in context.phase_starts if epoch < first + 1 or (epoch, batch) == (first + 1, 0)
    )
    seconds = remaining_seconds(
        context.workload,
        epoch,
        batch,
        context.train_rate,
        context.forward_rate,
        validated,
        starts * (context.phase_start_seconds or 0.0),
    )
    return {"eta_seconds": None if seconds is None else round(seconds), "eta_at": now_iso()}


def _save_weights_atomic(model: keras.Model, path: Path) -> None:
    atomic_write(path, lambda temporary: model.save_weights(temporary))


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


def _prepare_data(config: RunConfig) -> PreparedData:
    table = data.scan(config.data_root)
    train_table, val_table, description = data.resolve_splits(table, config.data)
    size = config.model.image_size
    data_config, cache = cache_where_it_fits(config.data, len(train_table) + len(val_table), size)
    labels = train_table["label_index"].to_numpy()
    return PreparedData(
        train_table=train_table,
        val_table=val_table,
        description=description,
        fingerprint=data.fingerprint(table),
        train=data.make_dataset(train_table, size, data_config, training=True),
        val=data.make_dataset(val_table, size, data_config, training=False),
        cache=cache,
        class_weight=data.class_weights(labels) if config.train.class_weighting else None,
    )


def _run_phase(
    model: keras.Model,
    phase: Phase,
    config: RunConfig,
    prepared: PreparedData,
    context: TrainingContext,
) -> None:
    paths = context.paths
    update_status(
        paths,
        state=RunState.RUNNING,
        stage=Stage.COMPILING,
        phase=phase.name,
        epoch=phase.first_epoch + 1,
        batch=0,
        batches_per_epoch=context.workload.steps_per_epoch,
        **_estimate(context, phase.first_epoch + 1, 0),
    )
    set_trainable_for_phase(model, phase.name, config.train.finetune_layers)
    with context.strategy.scope():
        _compile(model, phase.learning_rate, config.train.label_smoothing, context.xla)
    callbacks = _cluster_callbacks(context) + [
        _RunMonitor(paths, phase, context),  # first: it records the epoch before the backup
        _GuardedBackup(str(paths.backup / phase.name), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.EarlyStopping(
            monitor="val_auc",
            mode="max",
            patience=config.train.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_auc", mode="max", factor=0.5, patience=1, min_lr=1e-7
        ),
    ]
    try:
        with _fit_scope(context):
            _fit(model, phase, prepared, callbacks)
    except tf.errors.InvalidArgumentError as error:
        lines = str(error).strip().splitlines()
        # The decoder's own line ("ValueError: NAME: why") when there is one.
        named = [line.split("ValueError: ", 1)[1] for line in lines if "ValueError: " in line]
        message = (named or lines)[0][:300]
        raise DataError(f"an image could not be decoded during training: {message}") from None


def _fit(model: keras.Model, phase: Phase, prepared: PreparedData, callbacks: list) -> None:
    model.fit(
        prepared.train,
        validation_data=prepared.fit_validation,
        initial_epoch=phase.first_epoch,
        epochs=phase.last_epoch,
        class_weight=prepared.class_weight,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=0,
    )


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


def _phase_weights(paths: RunPaths, phase: Phase) -> Path:
    return paths.root / f"after_{phase.name}.weights.h5"


def _best_auc_so_far(paths: RunPaths) -> float:
    aucs = [row.value("val_auc") for row in read_history(paths)]
    finite = [auc for auc in aucs if isinstance(auc, float) and math.isfinite(auc)]
    return max(finite, default=-math.inf)


def _train_phases(
    config: RunConfig, prepared: PreparedData, context: TrainingContext
) -> keras.Model:
    paths = context.paths
    done = set(read_status(paths).phases_done) if context.resume else set()
    with context.strategy.scope(), mixed_precision_policy(context.mixed_precision):
        model = build_model(config.model)
    if context.cluster is not None:
        multiworker.prepare_model(model)
    for phase in plan_phases(config):
        if phase.name in done:
            model.load_weights(_phase_weights(paths, phase))
            continue
        _run_phase(model, phase, config, prepared, context)
        _save_weights_atomic(model, _phase_weights(paths, phase))
        done.add(phase.name)
        update_status(paths, phases_done=sorted(done))
    return model


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
    prepared = _prepare_data(config)
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
        best_auc=_best_auc_so_far(paths) if resume else -math.inf,
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
    model = _train_phases(config, prepared, context)
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


# --- precision and several machines -----------------------------------------------------------


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


def _cluster_callbacks(context: TrainingContext) -> list[keras.callbacks.Callback]:
    if context.cluster is None:
        return []
    return [multiworker.AverageBatchNormStatistics(context.strategy)]


def _fit_scope(context: TrainingContext) -> contextlib.AbstractContextManager:
    if context.cluster is None:
        return contextlib.nullcontext()
    return multiworker.fitting(context.strategy)
