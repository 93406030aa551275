"""The inputs and the phases of one run: preparing the data, then one ``fit`` per phase.

Phase ``head`` trains the new classification head on a frozen pretrained backbone; phase
``finetune`` unfreezes the backbone's top layers at a lower learning rate while every
BatchNormalization layer stays frozen (unfrozen, their statistics drift on small batches of a
new domain and undo the pretrained features). A backbone without pretrained weights trains
whole in one ``scratch`` phase. Early stopping and the best checkpoint follow validation AUC.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import keras
import tensorflow as tf

from cxr_core import data
from cxr_core.config import RunConfig
from cxr_core.distributed import multiworker
from cxr_core.distributed.devices import cache_where_it_fits, mixed_precision_policy
from cxr_core.distributed.prepared import PreparedData
from cxr_core.errors import DataError
from cxr_core.model.build import backbone_layers, build_model
from cxr_core.runs.files import RunPaths, RunState, read_history, read_status, update_status
from cxr_core.runs.plan import Phase, plan_phases
from cxr_core.runs.progress import Stage
from cxr_core.training.monitor import (
    GuardedBackup,
    RunMonitor,
    TrainingContext,
    estimate,
    save_weights_atomic,
)

__all__ = ["best_auc_so_far", "prepare_data", "set_trainable_for_phase", "train_phases"]


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


def prepare_data(config: RunConfig) -> PreparedData:
    """Scan ``config``'s dataset, split it by patient and build the train and validation
    pipelines (cached in memory where they fit), with the class weights when asked for."""
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


def train_phases(
    config: RunConfig, prepared: PreparedData, context: TrainingContext
) -> keras.Model:
    """Build the model and fit each planned phase in turn (skipping phases a resumed run has
    done, loading their saved weights instead); return the trained model."""
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
        save_weights_atomic(model, _phase_weights(paths, phase))
        done.add(phase.name)
        update_status(paths, phases_done=sorted(done))
    return model


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
        **estimate(context, phase.first_epoch + 1, 0),
    )
    set_trainable_for_phase(model, phase.name, config.train.finetune_layers)
    with context.strategy.scope():
        _compile(model, phase.learning_rate, config.train.label_smoothing, context.xla)
    callbacks = _cluster_callbacks(context) + [
        RunMonitor(paths, phase, context),  # first: it records the epoch before the backup
        GuardedBackup(str(paths.backup / phase.name), save_freq="epoch", delete_checkpoint=False),
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


def _phase_weights(paths: RunPaths, phase: Phase) -> Path:
    return paths.root / f"after_{phase.name}.weights.h5"


def best_auc_so_far(paths: RunPaths) -> float:
    """The best finite validation AUC in the run's history (minus infinity before any)."""
    aucs = [row.value("val_auc") for row in read_history(paths)]
    finite = [auc for auc in aucs if isinstance(auc, float) and math.isfinite(auc)]
    return max(finite, default=-math.inf)


def _cluster_callbacks(context: TrainingContext) -> list[keras.callbacks.Callback]:
    if context.cluster is None:
        return []
    return [multiworker.AverageBatchNormStatistics(context.strategy)]


def _fit_scope(context: TrainingContext) -> contextlib.AbstractContextManager:
    if context.cluster is None:
        return contextlib.nullcontext()
    return multiworker.fitting(context.strategy)
