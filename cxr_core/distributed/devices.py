"""Which accelerators TensorFlow sees, and the distribution strategy that uses them.

TensorFlow and Keras are imported by the functions that use them, so that
:func:`describe_driver_gpus` (the app's Home page) answers without the seconds of that import.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxr_core.config import DataConfig

if TYPE_CHECKING:
    import keras

__all__ = [
    "DeviceSummary",
    "GpuEntry",
    "cache_where_it_fits",
    "configure_devices",
    "describe_devices",
    "describe_driver_gpus",
    "gpu_compute_capabilities",
    "mixed_precision_policy",
    "resolve_mixed_precision",
    "resolve_xla",
    "single_device_copy",
]

#: Mixed precision pays off from Volta (compute capability 7.0) on, which has tensor cores.
MIN_MIXED_PRECISION_CAPABILITY = (7, 0)
#: Where the NVIDIA kernel driver lists its GPUs (one folder per GPU, an ``information`` file).
PROC_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class GpuEntry:
    """One GPU: its name and total memory in GiB (None when unknown)."""

    name: str
    memory_gb: float | None = None


@dataclass(frozen=True)
class DeviceSummary:
    """The GPUs found, in order; none means the CPU only."""

    gpus: tuple[GpuEntry, ...] = ()

    @property
    def summary(self) -> str:
        """E.g. ``"CPU only"`` or ``"1 GPU: NVIDIA H100 80GB HBM3"`` (distinct names, sorted)."""
        if not self.gpus:
            return "CPU only"
        names = ", ".join(sorted({gpu.name for gpu in self.gpus}))
        plural = "s" if len(self.gpus) > 1 else ""
        return f"{len(self.gpus)} GPU{plural}: {names}"


def configure_devices() -> None:
    """Let TensorFlow grow GPU memory as needed instead of taking all of it at start-up."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        # Growth can only be set before first use; a second call would raise.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def describe_devices() -> DeviceSummary:
    """Return the GPUs TensorFlow sees, with their memory as the driver lists it (imports
    TensorFlow)."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    driver = _visible(_nvidia_smi_gpus())
    memory = [listed["memory_gb"] for listed in driver] + [None] * len(names)
    return DeviceSummary(tuple(map(GpuEntry, names, memory)))


def describe_driver_gpus() -> DeviceSummary:
    """Return the NVIDIA GPUs the driver lists, without importing TensorFlow (milliseconds).

    Asks ``nvidia-smi`` when it is installed, else reads ``/proc/driver/nvidia/gpus``; keeps the
    GPUs that ``CUDA_VISIBLE_DEVICES`` leaves visible, as CUDA does. TensorFlow uses them when it
    was built with CUDA and finds its libraries; :func:`describe_devices` asks TensorFlow itself.
    No GPU (or no NVIDIA driver) gives an empty summary, ``"CPU only"``.
    """
    gpus = _visible(_nvidia_smi_gpus() or _proc_gpus())
    return DeviceSummary(tuple(GpuEntry(g["name"], g["memory_gb"]) for g in gpus))


def _nvidia_smi_gpus() -> list[dict[str, Any]]:
    """Index, UUID, name and total memory (GiB) of each NVIDIA GPU; empty without nvidia-smi."""
    query = "--query-gpu=index,uuid,name,memory.total"
    try:
        output = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        rows = [row for row in csv.reader(output.splitlines(), skipinitialspace=True) if row]
        return [
            {"index": index, "uuid": uuid, "name": name, "memory_gb": _gib(memory)}
            for index, uuid, name, memory in rows
        ]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def _gib(mebibytes: str) -> float | None:
    try:
        return round(float(mebibytes) / 1024, 1)
    except ValueError:  # "[N/A]"
        return None


def _proc_gpus() -> list[dict[str, Any]]:
    """The GPUs of the NVIDIA kernel driver's ``information`` files (no memory size there)."""
    gpus = []
    for info in sorted(PROC_NVIDIA_GPUS.glob("*/information")):
        try:
            lines = info.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        pairs = (line.split(":", 1) for line in lines if ":" in line)
        fields = {key.strip(): value.strip() for key, value in pairs}
        gpu = {
            "index": fields.get("Device Minor", str(len(gpus))),
            "uuid": fields.get("GPU UUID", ""),
            "name": fields.get("Model") or "NVIDIA GPU",
            "memory_gb": None,
        }
        gpus.append(gpu)
    return gpus


def _visible(gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) leaves visible, in its order."""
    setting = os.environ.get("CUDA_VISIBLE_DEVICES")
    if setting is None:
        return gpus
    visible = []
    for item in (part.strip() for part in setting.split(",")):
        match = [g for g in gpus if item and (g["index"] == item or g["uuid"].startswith(item))]
        if not match:
            break  # CUDA ignores everything from the first entry it cannot match
        visible.append(match[0])
    return visible


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Return the CUDA compute capability ``(major, minor)`` of each visible GPU.

    A GPU whose capability TensorFlow does not report (not an NVIDIA GPU) counts as ``(0, 0)``.
    """
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability") or (0, 0)
        capabilities.append((int(capability[0]), int(capability[1])))
    return capabilities


def resolve_mixed_precision(setting: str) -> bool:
    """Whether to train in ``mixed_float16`` for ``setting`` ``"auto"``, ``"on"`` or ``"off"``.

    ``"auto"`` is on only when at least one GPU is visible and every visible GPU has compute
    capability 7.0 or more (older GPUs and CPUs compute float16 no faster, or slower).
    """
    if setting in ("on", "off"):
        return setting == "on"
    capabilities = gpu_compute_capabilities()
    return bool(capabilities) and min(capabilities) >= MIN_MIXED_PRECISION_CAPABILITY


def resolve_xla(setting: str, replicas: int = 1) -> bool:
    """Whether to compile the training step with XLA for ``"auto"``, ``"on"`` or ``"off"``.

    ``"auto"`` follows Keras's own rule: on when a GPU is visible and training is not spread
    over several replicas (Keras turns XLA off under ``tf.distribute``); always off on CPU.
    """
    import tensorflow as tf

    if setting in ("on", "off"):
        return setting == "on"
    return bool(tf.config.list_physical_devices("GPU")) and replicas == 1


@contextlib.contextmanager
def mixed_precision_policy(enabled: bool) -> Iterator[None]:
    """Build layers in ``mixed_float16`` (float32 variables, float16 compute) inside this block.

    The model's final ``probability`` layer is float32 whatever the policy; Keras wraps the
    optimizer of a mixed-precision model in a ``LossScaleOptimizer`` when it is compiled.
    """
    if not enabled:
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def single_device_copy(model: keras.Model) -> keras.Model:
    """Return an uncompiled float32 copy of ``model`` that belongs to no distribution strategy.

    It predicts on one device whatever strategy ``model`` was trained under, and a model saved
    from it runs in float32 on any machine.
    """
    import keras

    copy = keras.Model.from_config(_float32_policies(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _float32_policies(value: Any) -> Any:
    if isinstance(value, dict):
        policy = value.get("config") if value.get("class_name") == "DTypePolicy" else None
        if isinstance(policy, dict) and policy.get("name") == "mixed_float16":
            return "float32"
        return {key: _float32_policies(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_policies(item) for item in value]
    return value


def cache_where_it_fits(
    data_config: DataConfig, n_images: int, image_size: int
) -> tuple[DataConfig, str]:
    """Keep the decoded-image cache on only if it takes at most half of the free memory.

    Args:
        data_config: The run's data settings; ``cache=False`` is kept as it is.
        n_images: Images this process will cache (train and validation).
        image_size: Side of the square model input.

    Returns:
        ``(data_config, note)``: the settings, with the cache turned off if it would not fit,
        and ``"memory"``, ``"off"`` or ``"off: X GiB of decoded images, Y GiB free"``.
    """
    if not data_config.cache:
        return data_config, "off"
    needed = n_images * image_size * image_size * 4  # one float32 grey channel per image
    free = _free_memory_bytes()
    if free is None or needed <= free / 2:
        return data_config, "memory"
    note = f"off: {needed / 2**30:.1f} GiB of decoded images, {free / 2**30:.1f} GiB free"
    return dataclasses.replace(data_config, cache=False), note


def _free_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None  # not a POSIX system: trust the setting
