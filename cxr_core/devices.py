"""Which accelerators TensorFlow sees, and the distribution strategy that uses them."""

from __future__ import annotations

import contextlib
import subprocess

import tensorflow as tf

__all__ = ["configure_devices", "describe_devices", "select_strategy"]


def configure_devices() -> None:
    """Let TensorFlow grow GPU memory as needed instead of taking all of it at start-up."""
    for gpu in tf.config.list_physical_devices("GPU"):
        # Growth can only be set before first use; a second call would raise.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def describe_devices() -> dict[str, object]:
    """Return the devices TensorFlow sees.

    Returns:
        ``{"gpus": [{"name": str, "memory_gb": float | None}], "summary": str}`` where summary
        reads e.g. ``"CPU only"`` or ``"1 GPU: NVIDIA H100 80GB HBM3"``.
    """
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append({"name": details.get("device_name", device.name), "memory_gb": None})
    for gpu, memory_gb in zip(gpus, _nvidia_memory_gb(), strict=False):
        gpu["memory_gb"] = memory_gb
    if not gpus:
        return {"gpus": [], "summary": "CPU only"}
    names = ", ".join(sorted({gpu["name"] for gpu in gpus}))
    return {"gpus": gpus, "summary": f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: {names}"}


def _nvidia_memory_gb() -> list[float]:
    """Total memory of each NVIDIA GPU in GiB, from nvidia-smi; empty when it is absent."""
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [round(float(line) / 1024, 1) for line in output.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def select_strategy(distribute: str) -> tf.distribute.Strategy:
    """Choose how training is spread over devices.

    Args:
        distribute: ``"auto"``: MirroredStrategy when several GPUs are visible, else the default
            single-device strategy; ``"none"``: the default strategy; ``"mirrored"``:
            MirroredStrategy over every GPU, or over every logical CPU when there is no GPU
            (useful to test multi-device code on one machine).

    Returns:
        A ``tf.distribute.Strategy``; build and compile the model inside its ``scope()``.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if distribute == "none" or (distribute == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])
