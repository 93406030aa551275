"""cxr_core.evaluation.score_cache: scores and splits kept on disk across restarts, misses on
change."""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from cxr_core import data
from cxr_core.config import DataConfig, ModelConfig
from cxr_core.evaluation import score_cache
from cxr_core.evaluation.eval_sets import predict_table
from cxr_core.evaluation.score_cache import ScoreCache, cached_splits, score_images

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def small_model():
    from cxr_core.model.build import build_model

    return build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=IMAGE_SIZE))


class Loader:
    """Hands out a model and counts how often it was asked for (a miss loads the model)."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return "model"


def fake_predict(model, table, image_size, batch_size, progress=None):
    """Stands in for predict_table (tested below and in test_eval_sets): one score per path."""
    assert model == "model"
    return np.array([zlib.crc32(p.encode()) % 1000 / 1000 for p in table["path"]], np.float32)


@pytest.fixture
def setup(tmp_path, tiny_dataset, monkeypatch):
    """A copy of the tiny dataset, a stand-in model file and a fresh loader."""
    monkeypatch.setattr(score_cache, "predict_table", fake_predict)
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"version 1")
    return data.scan(root), model_file, Loader(), tmp_path / "cache"


def score(table, model_file, loader, folder):
    """Scores through a new ScoreCache on ``folder``: nothing in memory, as after a restart."""
    return score_images(loader, model_file, table, IMAGE_SIZE, cache=ScoreCache(folder))


def test_a_restart_reads_the_scores_from_disk_without_calling_the_model(setup):
    table, model_file, loader, folder = setup
    first = score(table, model_file, loader, folder)
    assert loader.calls == 1 and len(list(folder.glob("scores-*.npz"))) == 1
    again = score(table, model_file, loader, folder)
    assert loader.calls == 1
    np.testing.assert_array_equal(again, first)
    assert first.shape == (len(table),) and first.dtype == np.float32


def test_a_changed_model_file_or_image_list_misses(setup):
    table, model_file, loader, folder = setup
    score(table, model_file, loader, folder)
    model_file.write_bytes(b"version 2, retrained")
    score(table, model_file, loader, folder)
    assert loader.calls == 2
    score(table.iloc[1:], model_file, loader, folder)  # one image fewer
    assert loader.calls == 3
    image = Path(table["path"].iloc[0])
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # an image rewritten
    score(table, model_file, loader, folder)
    assert loader.calls == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_a_corrupt_cache_file_is_ignored_and_recomputed(setup, damage):
    table, model_file, loader, folder = setup
    first = score(table, model_file, loader, folder)
    (entry,) = folder.glob("scores-*.npz")
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not a zip file at all")
    else:  # one byte of the stored scores changed: the zip's CRC no longer matches
        at = raw.index(b"\x93NUMPY", raw.index(b"scores.npy")) + 200
        entry.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    again = score(table, model_file, loader, folder)
    assert loader.calls == 2
    np.testing.assert_array_equal(again, first)
    score(table, model_file, loader, folder)  # the rewritten entry is whole again
    assert loader.calls == 2


def test_the_folder_keeps_at_most_max_files_entries_dropping_the_oldest(tmp_path):
    cache = ScoreCache(tmp_path, max_files=2)
    for index, key in enumerate(("a", "b", "c")):
        cache.store("scores", key, scores=np.zeros(3, np.float32))
        os.utime(cache.path_for("scores", key), (1000 + index, 1000 + index))
    cache.store("scores", "d", scores=np.zeros(3, np.float32))
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["scores-c.npz", "scores-d.npz"]


def test_cached_splits_rebuild_the_same_split_after_a_restart(tmp_path, tiny_dataset, monkeypatch):
    table = data.scan(tiny_dataset)
    config = DataConfig(val_fraction=0.25, seed=3, min_val_images=100)
    train, val, description = cached_splits(ScoreCache(tmp_path))(table, config)

    def refuse(*_):
        raise AssertionError("the split should have come from the cache")

    monkeypatch.setattr(data, "resolve_splits", refuse)
    train2, val2, description2 = cached_splits(ScoreCache(tmp_path))(table, config)
    assert list(val2["path"]) == list(val["path"]) and list(train2["path"]) == list(train["path"])
    assert description2 == description and "patient-grouped" in description
    with pytest.raises(AssertionError, match="from the cache"):  # other settings: a miss
        cached_splits(ScoreCache(tmp_path))(table, DataConfig(val_fraction=0.25, seed=4))


def test_predict_table_reports_progress_per_batch_up_to_every_image(tiny_dataset, small_model):
    table = data.scan(tiny_dataset).iloc[:10]
    seen = []
    scores = predict_table(small_model, table, IMAGE_SIZE, batch_size=4, progress=seen.append)
    assert [p.done for p in seen] == [0, 4, 8, 10] and {p.total for p in seen} == {10}
    assert seen[-1].fraction == 1.0 and seen[-1].seconds_left == 0
    assert seen[0].images_per_second is None and seen[-1].images_per_second > 0
    assert scores.shape == (10,)
