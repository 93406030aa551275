"""Fitting one Keras model over several workers: each worker's share of the images, and Keras.

A multi-worker run (see :mod:`cxr_core.distributed.cluster`) gives every worker every n-th train and
validation image, in shares of one size, so that each decodes and caches only its share and
all take the same number of steps; tf.distribute splits each step's global batch over the
replicas of all workers. Keras 3 needs two work-arounds to ``fit`` under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), and BatchNormalization statistics,
which each replica updates from its own images, are averaged before every validation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from cxr_core import data
from cxr_core.config import RunConfig
from cxr_core.distributed import cluster
from cxr_core.distributed.cluster import WorkerInfo
from cxr_core.distributed.devices import cache_where_it_fits
from cxr_core.distributed.prepared import PreparedData
from cxr_core.errors import ConfigError, DataError

__all__ = [
    "AverageBatchNormStatistics",
    "fitting",
    "for_this_worker",
    "prepare_model",
    "select_strategy",
    "shard_inputs",
    "shard_table",
    "share_size",
]


def shard_table(
    table: pd.DataFrame, workers: int, index: int, size: int | None = None
) -> pd.DataFrame:
    """Return the rows that worker ``index`` of ``workers`` reads: every ``workers``-th row.

    Every row goes to exactly one worker, and each worker gets the classes in about the same
    proportion as the table (whose rows are grouped by class), so each decodes and caches
    only its share of the images.

    Args:
        table: Rows to share out.
        workers: Number of workers.
        index: This worker's index, from 0.
        size: Pad the share to this many rows by repeating its rows from the start (see
            :func:`share_size`).
    """
    if not 0 <= index < workers:
        raise ConfigError(f"index must be in [0, {workers}). Received: index={index!r}")
    share = table.iloc[index::workers]
    if size is not None and 0 < len(share) < size:
        share = share.iloc[np.arange(size) % len(share)]
    return share.reset_index(drop=True)


def share_size(rows: int, workers: int, batch_size: int) -> int:
    """The size every worker's share is padded to: ``ceil(rows / workers)`` rounded up to a
    multiple of ``batch_size / workers``, the images one step takes from each worker.

    tf.distribute cuts each worker's batches into pieces of ``batch_size / replicas`` images
    for its replicas in turn. With shares of one such size every step gives every replica a
    full piece, or none anywhere (the end of the data): never an empty piece beside full
    ones, which Keras layers cannot take (BatchNormalization fails on it).
    """
    per_step = max(1, batch_size // workers)
    share = math.ceil(rows / workers)
    return math.ceil(share / per_step) * per_step


def for_this_worker(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prepare this worker's own share of a dataset for ``fit`` under several workers.

    tf.distribute must not shard it again, and its length is made unknown: Keras would take
    its count of global batches for the number of steps, but each step takes only a
    ``1 / workers`` share of a batch from each worker. Keras then runs until the data ends,
    which the strategy agrees on over all workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.filter(lambda *_: True).with_options(options)


@contextlib.contextmanager
def fitting(strategy: tf.distribute.Strategy) -> Iterator[None]:
    """The context for ``fit`` on a model prepared by :func:`prepare_model`.

    Keras finds the strategy in its scope; its warning that the data "ran out" at the end of
    the first epoch is expected, as :func:`for_this_worker` hides the length on purpose.
    """
    with strategy.scope(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def prepare_model(model: keras.Model) -> None:
    """Let Keras 3's ``fit`` and ``evaluate`` run ``model`` under MultiWorkerMirroredStrategy.

    Keras 3 fails there in two places (keras-team/keras#20585): its pre-fit "symbolic build"
    reduces a batch structure that the strategy cannot reduce, and it averages each step's
    scalar metrics with ``axis=0``. So the model forgets the strategy it was built under (call
    ``fit`` and ``evaluate`` inside ``strategy.scope()``: Keras then reads the strategy from
    there and builds lazily) and its steps return metrics as shape ``(1,)`` vectors. Epoch
    metrics are unaffected: Keras reads them from metric variables summed over all workers.
    """
    model._distribute_strategy = None  # the work-around itself: a private attribute
    step_class = type(model)
    model.train_step = _vector_outputs(lambda data: step_class.train_step(model, data))
    model.test_step = _vector_outputs(lambda data: step_class.test_step(model, data))


def _vector_outputs(step: Callable[[Any], dict]) -> Callable[[Any], dict]:
    def wrapped(data: Any) -> dict:
        logs = step(data)
        return {
            key: tf.reshape(value, [1]) if tf.is_tensor(value) and value.shape.rank == 0 else value
            for key, value in logs.items()
        }

    return wrapped


class AverageBatchNormStatistics(keras.callbacks.Callback):
    """Averages BatchNormalization moving statistics over all replicas before validation.

    Each replica updates its copy of these statistics from its own images only, so the workers'
    copies drift apart. Averaged before every validation, every worker validates, checkpoints
    and finally saves the same model, with statistics from all of the images as on one device.
    """

    def __init__(self, strategy: tf.distribute.Strategy) -> None:
        super().__init__()
        self.strategy = strategy
        self.statistics: list[keras.Variable] = []
        self.average: Callable[[], Any] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.statistics = [
            variable
            for layer in _all_layers(self.model)
            if isinstance(layer, keras.layers.BatchNormalization)
            for variable in (layer.moving_mean, layer.moving_variance)
        ]
        values = [variable.value for variable in self.statistics]

        def mean() -> list[tf.Tensor]:
            local = [tf.identity(value) for value in values]  # this replica's copies
            return tf.distribute.get_replica_context().all_reduce("MEAN", local)

        self.average = tf.function(lambda: self.strategy.run(mean))

    def on_test_begin(self, logs: dict | None = None) -> None:
        if not self.statistics or self.average is None:
            return
        averaged = self.strategy.experimental_local_results(self.average())[0]
        for variable, value in zip(self.statistics, averaged, strict=True):
            variable.assign(value)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, those of nested models included."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
    return found


def shard_inputs(
    prepared: PreparedData, config: RunConfig, worker: WorkerInfo, replicas: int
) -> PreparedData:
    """Return a prepared run whose fitting datasets read this worker's share of the images.

    The copy has its own ``train``, a ``fit_val`` (the validation share that ``fit`` reports
    on; metrics are summed over all workers) and its own ``cache``. Shares are padded to one
    size (:func:`share_size`) by repeating images: in training a few images are seen twice an
    epoch; in validation the repeats weigh 0, so validation metrics count every image once.
    The whole validation set (``val``, which chooses the threshold), the class weights (from
    all of train) and the augmentation settings stay as on one device. The global batch stays
    ``config.data.batch_size``: each step takes ``batch_size / workers`` images from each
    worker, split over its replicas.

    Raises:
        ConfigError: The batch size is not a multiple of the number of replicas.
        DataError: A split has fewer images than there are workers.
    """
    batch = config.data.batch_size
    if batch % replicas:
        raise ConfigError(
            f"batch_size must be a multiple of the {replicas} replicas of the cluster. "
            f"Received: batch_size={batch}"
        )
    shares, real = {}, {}
    tables = {"train": prepared.train_table, "val": prepared.val_table}
    for name, table in tables.items():
        if len(table) < worker.workers:
            raise DataError(
                f"{name} has {len(table)} images, fewer than the {worker.workers} workers"
            )
        size = share_size(len(table), worker.workers, batch)
        shares[name] = shard_table(table, worker.workers, worker.index, size)
        real[name] = len(shard_table(table, worker.workers, worker.index))
    image_size = config.model.image_size
    n_images = real["train"] + real["val"]
    data_config, cache = cache_where_it_fits(config.data, n_images, image_size)
    train = data.make_dataset(shares["train"], image_size, data_config, training=True)
    val = data.make_dataset(shares["val"], image_size, data_config, training=False)
    fit_val = _repeats_weigh_zero(val, real["val"], len(shares["val"]), batch)
    return dataclasses.replace(
        prepared, train=for_this_worker(train), fit_val=for_this_worker(fit_val), cache=cache
    )


def _repeats_weigh_zero(
    dataset: tf.data.Dataset, real: int, size: int, batch_size: int
) -> tf.data.Dataset:
    """Add sample weights to an unshuffled dataset whose rows after ``real`` are repeats."""
    weights = np.where(np.arange(size) < real, 1.0, 0.0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices(weights).batch(batch_size)
    zipped = tf.data.Dataset.zip((dataset, batches))
    return zipped.map(lambda batch, weight: (batch[0], batch[1], weight))


def select_strategy(distribute: str, cluster_timeout: float = 120.0) -> tf.distribute.Strategy:
    """Choose how training is spread over devices.

    Args:
        distribute: ``"auto"``: MirroredStrategy when several GPUs are visible, else the default
            single-device strategy; ``"none"``: the default strategy; ``"mirrored"``:
            MirroredStrategy over every GPU, or over every logical CPU when there is no GPU
            (useful to test multi-device code on one machine); ``"multiworker"``:
            MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (see
            :func:`cxr_core.distributed.cluster.connect`; call it before any other TensorFlow work).
        cluster_timeout: Seconds to wait for the other workers (``"multiworker"`` only).

    Returns:
        A ``tf.distribute.Strategy``; build and compile the model inside its ``scope()``.

    Raises:
        ConfigError: ``"multiworker"`` without a usable ``TF_CONFIG``.
        ClusterError: The other workers did not answer within ``cluster_timeout`` seconds.
    """
    if distribute == "multiworker":
        return cluster.connect(cluster.read_tf_config(), cluster_timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if distribute == "none" or (distribute == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])
