"""Does the tf.data pipeline keep the model fed? Training images/s from files vs from memory.

Trains one model for a fixed number of steps on three feeds: the same images already decoded
in memory; ``data.make_dataset`` from the shared JPEG files as training uses it (decoded images
cached after the first epoch, augmentation every step); and the same with the cache off, so
every step also pays for decoding (a first epoch). A ratio near 1 means the input pipeline
never starves the model. Prints figures; asserts nothing.

    python benchmarks/input_pipeline.py [--data ../shared/data/chest_xray] [--steps 15]

Last line: ``pipeline_vs_memory_ratio=<number>`` (the cached, training-default feed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from cxr_core import data
from cxr_core.config import DataConfig, ModelConfig
from cxr_core.model.build import build_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


class _StepClock(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())


def images_per_second(
    model: keras.Model, dataset: tf.data.Dataset, steps: int, batch: int
) -> float:
    """Train ``steps`` steps after 3 warm-up steps; return steady-state images per second."""
    clock = _StepClock()
    model.fit(
        dataset.repeat(), steps_per_epoch=steps + 3, epochs=1, verbose=0, callbacks=[clock],
        shuffle=False,
    )  # fmt: skip
    seconds = clock.times[-1] - clock.times[2]
    return steps * batch / seconds


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    args = parser.parse_args()

    table = data.scan(args.data)
    train = table[table["split"] == "train"]
    n_images = args.batch_size * (args.steps + 3)
    train = train.sample(n=min(n_images, len(train)), random_state=0)
    config = DataConfig(batch_size=args.batch_size, cache=False, augment=1.0)
    model = build_model(ModelConfig(args.backbone, "none", args.image_size))
    model.compile(optimizer="adam", loss="binary_crossentropy")

    plain = data.make_dataset(train, args.image_size, config, training=False)
    decoded = np.concatenate([images for images, _ in plain])
    labels = train["label_index"].to_numpy(np.float32)
    feeds = {
        "in-memory tensors (no decoding, no augmentation)": tf.data.Dataset.from_tensor_slices(
            (decoded, labels)
        )
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE),
        "tf.data, cache on: augmentation every step (every epoch after the first)": (
            data.make_dataset(
                train, args.image_size, dataclasses.replace(config, cache=True), training=True
            )
        ),
        "tf.data, cache off: decode + resize + augmentation every step (a first epoch)": (
            data.make_dataset(train, args.image_size, config, training=True)
        ),
    }
    for _ in list(feeds.values())[1]:  # one full pass fills the cache, as the first epoch does
        pass

    print(f"model: {args.backbone} (random weights), {args.image_size} px, batch {args.batch_size}")
    print(f"images: {len(train)} shared train JPEGs; {args.steps} timed steps after 3 warm-up")
    print(f"cores: {os.cpu_count()}; {args.rounds} interleaved rounds, mean reported")
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    for _ in range(args.rounds):
        for name, feed in feeds.items():
            rates[name].append(images_per_second(model, feed, args.steps, args.batch_size))
    memory, cached, cold = (float(np.mean(values)) for values in rates.values())
    for name, values in rates.items():
        print(f"{np.mean(values):7.1f} images/s  {name}")
    print(f"first_epoch_vs_memory_ratio={cold / memory:.3f}")
    print(f"pipeline_vs_memory_ratio={cached / memory:.3f}")


if __name__ == "__main__":
    main()
