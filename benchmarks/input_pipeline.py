"""Does the tf.data pipeline keep the model fed? Training images/s from files vs from memory.

Trains one model for a fixed number of steps twice: fed by ``data.make_dataset`` from the shared
JPEG files (decode, resize, augmentation; cache off, so every step pays for decoding - the worst
case) and fed by the same images already decoded in memory. A ratio near 1 means the input
pipeline never starves the model. Prints figures; asserts nothing.

    python benchmarks/input_pipeline.py [--data ../shared/data/chest_xray] [--steps 15]

Last line: ``pipeline_vs_memory_ratio=<number>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cxr_core import data  # noqa: E402
from cxr_core.config import DataConfig, ModelConfig  # noqa: E402
from cxr_core.model import build_model  # noqa: E402

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
    args = parser.parse_args()

    table = data.scan(args.data)
    train = table[table["split"] == "train"]
    n_images = args.batch_size * (args.steps + 3)
    train = train.sample(n=min(n_images, len(train)), random_state=0)
    config = DataConfig(batch_size=args.batch_size, cache=False, augment=1.0)
    model = build_model(ModelConfig(args.backbone, "none", args.image_size))
    model.compile(optimizer="adam", loss="binary_crossentropy")

    from_files = data.make_dataset(train, args.image_size, config, training=True)
    decoded = np.concatenate([images for images, _ in data.make_dataset(
        train, args.image_size, config, training=False)])  # fmt: skip
    labels = train["label_index"].to_numpy(np.float32)
    in_memory = (
        tf.data.Dataset.from_tensor_slices((decoded, labels))
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

    print(
        f"model: {args.backbone} (random weights) at {args.image_size} px, batch {args.batch_size}"
    )
    print(
        f"images: {len(train)} shared train JPEGs; {args.steps} timed steps after 3 warm-up steps"
    )
    print(f"cores: {os.cpu_count()}  devices: {[d.name for d in tf.config.list_logical_devices()]}")
    memory_rate = images_per_second(model, in_memory, args.steps, args.batch_size)
    print(f"in-memory tensors:          {memory_rate:8.1f} images/s")
    pipeline_rate = images_per_second(model, from_files, args.steps, args.batch_size)
    print(f"tf.data from JPEG files:    {pipeline_rate:8.1f} images/s "
          "(decode + resize + augmentation every step, cache off)")  # fmt: skip
    print(f"pipeline_vs_memory_ratio={pipeline_rate / memory_rate:.3f}")


if __name__ == "__main__":
    main()
