"""The device summary is a typed record, on a machine without a GPU as on one with them."""

from __future__ import annotations

import dataclasses

import pytest
import tensorflow as tf

from cxr_core.distributed import devices
from cxr_core.distributed.devices import DeviceSummary, GpuEntry, describe_devices


def test_describe_devices_on_cpu_only_is_an_empty_frozen_summary(monkeypatch) -> None:
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    summary = describe_devices()
    assert summary == DeviceSummary() and summary.gpus == ()
    assert summary.summary == "CPU only"
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.gpus = (GpuEntry("NVIDIA A100"),)


def test_a_summary_names_each_kind_of_gpu_once() -> None:
    gpus = (GpuEntry("NVIDIA H100", 80.0), GpuEntry("NVIDIA H100", 80.0), GpuEntry("NVIDIA A100"))
    assert DeviceSummary(gpus).summary == "3 GPUs: NVIDIA A100, NVIDIA H100"
    assert DeviceSummary(gpus[:1]).summary == "1 GPU: NVIDIA H100"


def test_the_driver_listing_is_a_device_summary(monkeypatch) -> None:
    listed = [{"index": "0", "uuid": "GPU-1", "name": "NVIDIA A100", "memory_gb": 40.0}]
    monkeypatch.setattr(devices, "_nvidia_smi_gpus", lambda: listed)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = devices.describe_driver_gpus()
    assert found == DeviceSummary((GpuEntry("NVIDIA A100", 40.0),))
    assert found.summary == "1 GPU: NVIDIA A100"
