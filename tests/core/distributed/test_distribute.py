"""Several machines: TF_CONFIG, worker shards, precision settings and two real worker processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.distributed import cluster, devices, multiworker
from cxr_core.errors import ConfigError
from cxr_core.model.build import build_model, load_model
from cxr_core.runs.files import RunPaths, read_history, read_json
from cxr_core.training.phases import prepare_data
from cxr_core.training.train import plan_phases, train_run

REPO = Path(__file__).resolve().parents[3]
ON_GPU = bool(tf.config.list_physical_devices("GPU"))


def free_ports(count: int) -> list[int]:
    """Ports that nothing listens on now (all bound at once, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start_worker(args: list[str], ports: list[int], index: int, tmp: Path) -> subprocess.Popen:
    """``python -m cxr_core train ARGS`` as worker ``index``, with its own temporary folder."""
    env = {**os.environ, "TF_CONFIG": tf_config(ports, index), "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [sys.executable, "-m", "cxr_core", "train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_two_workers(args: list[str], tmp_dirs: list[Path]) -> list[tuple[int, str, str, int]]:
    """Run both workers to the end; return ``(status, stdout, stderr, pid)`` of each."""
    ports = free_ports(2)
    workers = [start_worker(args, ports, index, tmp_dirs[index]) for index in (0, 1)]
    results = []
    for worker in workers:
        try:
            stdout, stderr = worker.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
        results.append((worker.returncode, stdout, stderr, worker.pid))
    return results


def unbalanced_copy(tiny_dataset: Path, root: Path) -> Path:
    """The tiny dataset without 4 NORMAL train images, so that class weights are not 1."""
    shutil.copytree(tiny_dataset, root)
    for image in sorted((root / "train" / "NORMAL").iterdir())[:4]:
        image.unlink()
    return root


def tiny_run_config(root: Path, augment: float = 1.0) -> RunConfig:
    return RunConfig(
        data_root=str(root),
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=32),
        data=DataConfig(
            batch_size=8, min_val_images=0, seed=3, augment=augment, acquisition_augment=0.0
        ),
        train=TrainConfig(head_epochs=2, finetune_epochs=0),
    )


def test_tf_config_names_the_chief_and_counts_the_workers() -> None:
    workers = {"worker": ["a:1", "b:2"]}
    first = cluster.read_tf_config({"TF_CONFIG": tf_config([1, 2], 0)})
    second = cluster.read_tf_config({"TF_CONFIG": tf_config([1, 2], 1)})
    assert first.is_chief and not second.is_chief
    assert (first.workers, second.name) == (2, "worker 1 of 2")
    with_chief = {"cluster": {**workers, "chief": ["c:3"]}, "task": {"type": "worker", "index": 0}}
    worker_zero = cluster.read_tf_config({"TF_CONFIG": json.dumps(with_chief)})
    assert not worker_zero.is_chief and worker_zero.workers == 3
    assert worker_zero.addresses[0] == "c:3"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "needs the TF_CONFIG environment variable"),
        ("{not json", "not a cluster description"),
        (tf_config([1, 2], 2), "task is not in its cluster"),
        ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
         "must list 'worker' tasks"),
        ('{"cluster": {"worker": ["hostonly"]}, "task": {"type": "worker", "index": 0}}',
         "must be 'host:port'"),
    ],
)  # fmt: skip
def test_a_missing_or_malformed_tf_config_is_a_config_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cluster.read_tf_config({"TF_CONFIG": value})


def test_shards_split_rows_once_and_pad_to_whole_steps() -> None:
    table = pd.DataFrame({"row": range(7)})
    shares = [multiworker.shard_table(table, 2, index)["row"].tolist() for index in (0, 1)]
    assert shares == [[0, 2, 4, 6], [1, 3, 5]]
    assert multiworker.shard_table(table, 2, 1, size=6)["row"].tolist() == [1, 3, 5, 1, 3, 5]
    # A step takes batch / workers images from each worker: shares are whole steps.
    assert multiworker.share_size(7, 2, batch_size=8) == 4
    assert multiworker.share_size(9, 2, batch_size=8) == 8
    assert multiworker.share_size(5216, 2, batch_size=32) == 2608
    with pytest.raises(ConfigError, match="index"):
        multiworker.shard_table(table, 2, 2)


def test_learning_rates_scale_linearly_with_the_global_batch() -> None:
    def rates(batch: int, reference: int | None) -> list[float]:
        config = RunConfig(
            data_root="/d",
            data=DataConfig(batch_size=batch),
            train=TrainConfig(lr_reference_batch=reference, finetune_learning_rate=1e-4),
        )
        return [phase.learning_rate for phase in plan_phases(config)]

    assert rates(128, 32) == pytest.approx([4e-3, 4e-4])
    assert rates(128, None) == pytest.approx([1e-3, 1e-4])  # unset: used as given


@pytest.mark.parametrize(
    ("field", "value"),
    [("distribute", "horovod"), ("mixed_precision", "fp16"), ("xla", True),
     ("lr_reference_batch", 0)],
)  # fmt: skip
def test_bad_distribution_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"Received: {field}="):
        TrainConfig(**{field: value})


@pytest.mark.skipif(ON_GPU, reason="checks what auto resolves to on a machine without a GPU")
def test_auto_mixed_precision_and_xla_are_off_on_cpu_and_can_be_forced() -> None:
    assert devices.resolve_mixed_precision("auto") is False
    assert devices.resolve_xla("auto") is False
    assert devices.resolve_mixed_precision("on") and devices.resolve_xla("on")
    assert not devices.resolve_mixed_precision("off") and not devices.resolve_xla("off")


def test_xla_auto_stays_off_over_several_replicas() -> None:
    assert devices.resolve_xla("auto", replicas=2) is False


def test_the_cache_is_turned_off_when_decoded_images_would_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "_free_memory_bytes", lambda: 2**30)
    config = DataConfig()
    fits, note = devices.cache_where_it_fits(config, 1000, 224)  # 0.19 GiB of 1 GiB free
    assert fits.cache and note == "memory"
    too_big, note = devices.cache_where_it_fits(config, 5216, 224)  # 0.98 GiB
    assert not too_big.cache and note == "off: 1.0 GiB of decoded images, 1.0 GiB free"
    unchanged, note = devices.cache_where_it_fits(DataConfig(cache=False), 10, 32)
    assert not unchanged.cache and note == "off"


def test_a_mixed_precision_model_is_finished_and_saved_in_float32() -> None:
    with devices.mixed_precision_policy(True):
        model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=32))
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert model.get_layer("logit").dtype_policy.name == "mixed_float16"
    assert model.get_layer("probability").dtype_policy.name == "float32"
    copy = devices.single_device_copy(model)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = model(images, training=False).numpy()
    assert copy(images, training=False).numpy() == pytest.approx(expected, abs=2e-3)


def _decoded_sums(dataset: tf.data.Dataset) -> list[float]:
    sums = [round(float(image.sum()), 1) for images, *_ in dataset for image in images.numpy()]
    return sorted(sums)


def test_worker_shards_keep_class_weights_validation_and_augmentation_of_one_device(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_run_config(unbalanced_copy(tiny_dataset, tmp_path / "data"), augment=0.0)
    single = prepare_data(config)
    shards = []
    for index in (0, 1):
        prepared = prepare_data(config)
        worker = cluster.WorkerInfo("worker", index, 2, not index, ())
        prepared = multiworker.shard_inputs(prepared, config, worker, replicas=2)
        # Class weights come from all of train, and the threshold is chosen on all of val.
        assert prepared.class_weight == single.class_weight != {0: 1.0, 1: 1.0}
        assert _decoded_sums(prepared.val) == _decoded_sums(single.val)
        shards.append(prepared)
    # Without augmentation the shares decode exactly the single-device images, padded to
    # whole steps with repeats; validation repeats weigh 0, so each image counts once.
    for name, split in (("train", "train"), ("fit_val", "val")):
        parts = [_decoded_sums(getattr(shard, name)) for shard in shards]
        size = multiworker.share_size(len(getattr(single, f"{split}_table")), 2, 8)
        assert len(parts[0]) == len(parts[1]) == size
        assert set(parts[0]) | set(parts[1]) == set(_decoded_sums(getattr(single, split)))
    weights = [w for shard in shards for _, _, batch in shard.fit_val for w in batch.numpy()]
    assert sum(weights) == len(single.val_table)

    # With it, each worker augments its training images as one device does (and never val).
    augmented = tiny_run_config(Path(config.data_root), augment=1.0)
    prepared = prepare_data(augmented)
    worker = cluster.WorkerInfo("worker", 0, 2, True, ())
    prepared = multiworker.shard_inputs(prepared, augmented, worker, 2)
    assert _decoded_sums(prepared.train) != _decoded_sums(shards[0].train)
    assert _decoded_sums(prepared.fit_val) == _decoded_sums(shards[0].fit_val)


def test_multiworker_without_tf_config_is_a_config_error_before_any_folder_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the TF_CONFIG environment variable"):
        train_run(tmp_path / "run", tiny_run_config(tmp_path), distribute="multiworker")
    assert not (tmp_path / "run").exists()


def test_a_worker_whose_cluster_never_answers_exits_2_within_its_timeout(tmp_path: Path) -> None:
    ports = free_ports(2)  # worker 0 never starts: nothing listens on its port
    args = ["--data", str(tmp_path), "--out", str(tmp_path / "run"),
            "--distribute", "multiworker", "--cluster-timeout", "3"]  # fmt: skip
    started = time.monotonic()
    worker = start_worker(args, ports, 1, tmp_path)
    stdout, stderr = worker.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert worker.returncode == 2, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "did not form within 3 s (worker 1 of 2" in lines[0], stderr
    assert elapsed < 60  # importing TensorFlow, then 3 s; without a deadline it waits an hour
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("cxr-*"))


def test_two_workers_train_cancel_and_resume_with_only_the_chief_writing(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    root = unbalanced_copy(tiny_dataset, tmp_path / "data")
    run, temps = tmp_path / "run", [tmp_path / "tmp0", tmp_path / "tmp1"]
    for folder in (run, *temps):
        folder.mkdir()
    paths = RunPaths(run)
    paths.stop_file.touch()  # a cancel before the start: every worker stops before training
    args = ["--data", str(root), "--backbone", "small_cnn", "--weights", "none",
            "--image-size", "32", "--epochs", "2", "--finetune-epochs", "0",
            "--batch-size", "8", "--out", str(run), "--distribute", "multiworker",
            "--cluster-timeout", "60"]  # fmt: skip
    first = run_two_workers(args, temps)
    assert [status for status, *_ in first] == [0, 0], first[0][2][-2000:] + first[1][2][-2000:]
    assert "cancelled" in first[0][1] and "the chief wrote" in first[1][1]
    assert read_json(paths.status)["state"] == "cancelled"
    assert read_history(paths) == []

    # The worker gets the chief's state over the network: its --out holds nothing of its own.
    second = run_two_workers(["--out", str(run), "--resume", "--distribute", "multiworker"], temps)
    assert [status for status, *_ in second] == [0, 0], second[0][2][-2000:] + second[1][2][-2000:]
    assert second[0][1].startswith("finished:") and "the chief wrote" in second[1][1]
    assert all(stderr == "" for _, _, stderr, _ in second)
    status = read_json(paths.status)
    assert status["state"] == "finished" and status["pid"] == second[0][3]  # the chief's
    assert (status["workers"], status["replicas"]) == (2, 2)
    assert (status["mixed_precision"], status["xla"]) == (ON_GPU, False)
    assert [row.epoch for row in read_history(paths)] == [1, 2]
    single = prepare_data(RunConfig.from_dict(read_json(paths.config)))  # as on one device
    assert status["class_weight"] == {str(k): v for k, v in single.class_weight.items()}
    # The threshold was chosen on every validation image, not on the chief's share.
    assert read_json(paths.metrics)["n"] == len(single.val_table) == status["val_images"]
    model, metadata = load_model(paths.model)
    assert metadata.raw["distribution"]["replicas"] == 2 and model.get_layer("probability")
    assert not [path.name for path in run.rglob(".*")]  # no temporary files left behind
    assert not [path for folder in temps for path in folder.iterdir()]  # worker folders gone
