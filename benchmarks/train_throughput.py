"""Training images/s: the real input pipeline vs synthetic tensors, and 1 vs 2 workers.

1. The model's training step (compiled as ``train`` compiles it, with the mixed precision and
   XLA that ``auto`` resolves to here) fed by ``data.make_dataset`` from the shared JPEG files
   as training feeds it (cache filled, augmentation every step), and the same step fed one
   synthetic batch held in memory. A ratio near 1 means the pipeline keeps the device busy;
   the target is >= 0.9 on a CPU and >= 0.7 on a GPU.
2. The same step under ``MultiWorkerMirroredStrategy`` with 1 and with 2 worker processes on
   this machine (127.0.0.1), each fed synthetic batches, at the same global batch: the cost
   of the cluster machinery and of the all-reduce between processes.

Prints figures; asserts nothing.

    python benchmarks/train_throughput.py [--data ../shared/data/chest_xray] [--steps 15]
        [--backbone efficientnet_lite0] [--image-size 224] [--batch-size 32] [--no-workers]

Last line: ``pipeline_vs_synthetic_ratio=<number>``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "chest_xray"


def parse_args() -> argparse.Namespace:
    """Command-line settings (``--worker`` is internal: one process of part 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="timed steps, after 3 warm-up")
    parser.add_argument("--no-workers", action="store_true", help="skip the 1 vs 2 workers part")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    return parser.parse_args()


def build_compiled_model(args: argparse.Namespace, replicas: int = 1):  # noqa: ANN201
    """The model, compiled as training compiles it; returns ``(model, mixed, xla)``."""
    import keras

    from cxr_core.config import ModelConfig
    from cxr_core.distributed.devices import (
        mixed_precision_policy,
        resolve_mixed_precision,
        resolve_xla,
    )
    from cxr_core.model.build import build_model

    mixed, xla = resolve_mixed_precision("auto"), resolve_xla("auto", replicas)
    with mixed_precision_policy(mixed):
        model = build_model(ModelConfig(args.backbone, "none", args.image_size))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
        jit_compile=xla,
    )
    return model, mixed, xla


def images_per_second(model, dataset, steps: int, batch_size: int) -> float:  # noqa: ANN001
    """Train ``steps`` steps after 3 warm-up steps; return steady-state images per second."""
    import keras

    class Clock(keras.callbacks.Callback):
        times: list[float] = []

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter())

    clock = Clock()
    clock.times = []
    model.fit(
        dataset, steps_per_epoch=steps + 3, epochs=1, verbose=0, callbacks=[clock], shuffle=False
    )
    return steps * batch_size / (clock.times[-1] - clock.times[2])


def synthetic_feed(batch_size: int, image_size: int):  # noqa: ANN201
    """One batch of random 0-255 images and labels, in memory, repeated for ever."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = (np.arange(batch_size) % 2).astype("float32")
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def pipeline_vs_synthetic(args: argparse.Namespace) -> float:
    """Part 1: print both rates and return their ratio."""
    from cxr_core import data
    from cxr_core.config import DataConfig
    from cxr_core.distributed.devices import describe_devices

    table = data.scan(args.data)
    train = table[table["split"] == "train"]
    train = train.sample(n=min(args.batch_size * (args.steps + 3), len(train)), random_state=0)
    config = DataConfig(batch_size=args.batch_size, augment=1.0, cache=True)
    real = data.make_dataset(train, args.image_size, config, training=True)
    for _ in real:  # one pass fills the cache, as the first epoch does
        pass
    model, mixed, xla = build_compiled_model(args)
    print(f"device: {describe_devices().summary}; mixed precision {mixed}, XLA {xla}")
    print(f"model: {args.backbone} (random weights), {args.image_size} px, batch {args.batch_size}")
    print(f"images: {len(train)} shared train files; {args.steps} timed steps after 3 warm-up")
    rates = {"synthetic": [], "pipeline": []}
    for _ in range(2):  # interleaved rounds
        feeds = {"synthetic": synthetic_feed(args.batch_size, args.image_size), "pipeline": real}
        for name, feed in feeds.items():
            rates[name].append(images_per_second(model, feed.repeat(), args.steps, args.batch_size))
    synthetic, pipeline = (sum(values) / len(values) for values in rates.values())
    print(f"{synthetic:8.1f} images/s  synthetic tensors in memory (no input work)")
    print(f"{pipeline:8.1f} images/s  data.make_dataset: cached decode, augmentation, prefetch")
    return pipeline / synthetic


def run_worker(args: argparse.Namespace) -> None:
    """Part 2, inside one worker process: train and print this worker's global images/s."""
    ports = [int(port) for port in args.ports.split(",")]
    workers = [f"127.0.0.1:{port}" for port in ports]
    task = {"type": "worker", "index": args.worker}
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": task})
    from cxr_core.distributed import cluster, multiworker

    strategy = cluster.connect(cluster.read_tf_config(), 120)
    with strategy.scope():
        model, _, _ = build_compiled_model(args, strategy.num_replicas_in_sync)
    multiworker.prepare_model(model)
    feed = multiworker.for_this_worker(synthetic_feed(args.batch_size, args.image_size))
    with multiworker.fitting(strategy):
        rate = images_per_second(model, feed, args.steps, args.batch_size)
    print(json.dumps({"worker": args.worker, "images_per_second": rate}), flush=True)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def workers_rate(args: argparse.Namespace, count: int) -> float:
    """Part 2: start ``count`` worker processes; return the chief's global images/s."""
    ports = ",".join(str(port) for port in free_ports(count))
    common = ["--backbone", args.backbone, "--image-size", str(args.image_size)]
    common += ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--ports", ports]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, *common, "--worker", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for index in range(count)
    ]
    outputs = [process.communicate(timeout=1800)[0] for process in processes]
    lines = [line for line in outputs[0].splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"worker 0 of {count} printed no result")
    return float(json.loads(lines[-1])["images_per_second"])


def main() -> None:
    """Run the benchmark and print its figures."""
    args = parse_args()
    if args.worker is not None:
        run_worker(args)
        return
    ratio = pipeline_vs_synthetic(args)
    if not args.no_workers:
        for count in (1, 2):
            rate = workers_rate(args, count)
            print(f"{rate:8.1f} images/s  {count} worker{'s' if count > 1 else ''} on this machine")
    print(f"cores: {os.cpu_count()}")
    print(f"pipeline_vs_synthetic_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
