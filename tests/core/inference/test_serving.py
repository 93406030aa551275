"""The shared inference worker and the model pool (cxr_core.inference.serving)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from cxr_core.config import ModelConfig
from cxr_core.errors import InvalidImageError, ModelLoadError
from cxr_core.inference.predictor import METHODS, Predictor
from cxr_core.inference.serving import InferenceWorker, ModelPool, Served, WarmState, serve_model
from cxr_core.model.build import build_model
from tests.conftest import synthetic_xray

SIZE = 64
METADATA = {"threshold": 0.5, "image_size": SIZE, "backbone": "small_cnn"}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(build_model(ModelConfig("small_cnn", "none", SIZE)), METADATA)


def images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [synthetic_xray(i % 2, rng, 64 + 8 * i) for i in range(count)]


def test_worker_batches_concurrent_requests_and_answers_as_lone_calls(predictor):
    worker = InferenceWorker(predictor, max_batch=8, max_wait_s=0.05)
    pictures = images(6)
    lone = [predictor.explain_all(p) for p in pictures]
    with worker.turn():  # the model is busy: requests queue up meanwhile
        futures = [worker.submit(p) for p in pictures]
    results = [f.result(timeout=60) for f in futures]
    worker.close()
    assert sum(worker.batch_sizes) == 6 and max(worker.batch_sizes) > 1
    for alone, batched in zip(lone, results, strict=True):
        assert batched.label == alone.label
        assert batched.probability == pytest.approx(alone.probability, abs=1e-5)
        assert batched.input_check.accepted == alone.input_check.accepted
        for method in METHODS:
            np.testing.assert_allclose(batched.heatmaps[method], alone.heatmaps[method], atol=1e-4)


def test_requests_from_many_threads_all_get_their_own_answer(predictor):
    worker = InferenceWorker(predictor, max_batch=4, max_wait_s=0.02)
    pictures = images(8)
    answers: dict[int, float] = {}

    def visit(index: int) -> None:
        answers[index] = worker.explain_all(pictures[index]).probability

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    worker.close()
    assert max(worker.batch_sizes) <= 4
    for index, picture in enumerate(pictures):
        assert answers[index] == pytest.approx(predictor.explain_all(picture).probability, abs=1e-5)


def test_a_bad_image_fails_alone_in_its_batch(predictor):
    worker = InferenceWorker(predictor, max_wait_s=0.05)
    with worker.turn():
        good = worker.submit(images(1)[0])
        bad = worker.submit(np.zeros((2, 3, 4, 5), np.uint8))
    assert good.result(timeout=60).label in ("NORMAL", "PNEUMONIA")
    with pytest.raises(InvalidImageError):
        bad.result(timeout=60)
    worker.close()


def test_pool_reports_loading_then_ready_and_loads_once():
    release, calls = threading.Event(), []

    def loader(path: str) -> Served:
        calls.append(path)
        release.wait(10)
        return Served(None, None, None, None)  # type: ignore[arg-type]

    pool = ModelPool(loader)
    assert pool.state("m.keras", 1.0) is WarmState.ABSENT
    assert pool.warm("m.keras", 1.0) is WarmState.LOADING
    assert pool.warm("m.keras", 1.0) is WarmState.LOADING
    with pytest.raises(TimeoutError):
        pool.get("m.keras", 1.0, timeout=0.05)
    release.set()
    assert pool.get("m.keras", 1.0, timeout=10).model is None
    assert pool.state("m.keras", 1.0) is WarmState.READY and calls == ["m.keras"]
    assert pool.state("m.keras", 2.0) is WarmState.ABSENT  # a new file version is another model


def test_a_warm_up_loads_only_after_its_before_load_returns():
    page_drawn, events = threading.Event(), []

    def loader(path: str) -> Served:
        events.append("load")
        return Served(None, None, None, None)  # type: ignore[arg-type]

    def after_the_page() -> None:
        page_drawn.wait(10)
        events.append("page drawn")

    pool = ModelPool(loader)
    assert pool.warm("m.keras", 1.0, before_load=after_the_page) is WarmState.LOADING
    with pytest.raises(TimeoutError):
        pool.get("m.keras", 1.0, timeout=0.1)  # still waiting for the page
    assert events == []
    page_drawn.set()
    pool.get("m.keras", 1.0, timeout=10)
    assert events == ["page drawn", "load"]
    assert pool.warm("m.keras", 1.0, before_load=after_the_page) is WarmState.READY
    assert events == ["page drawn", "load"]  # loaded once; no second wait


def test_pool_keeps_a_failed_load_and_raises_it_to_every_caller():
    def loader(path: str) -> Served:
        raise ModelLoadError(f"{path} is truncated")

    pool = ModelPool(loader)
    pool.warm("bad.keras", 1.0)
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="truncated"):
            pool.get("bad.keras", 1.0, timeout=10)
    assert pool.state("bad.keras", 1.0) is WarmState.FAILED


def test_served_model_is_traced_before_the_first_upload(tiny_model_dir: Path):
    served = serve_model(str(tiny_model_dir / "tiny.keras"))
    traced = served.predictor.trace_counts
    assert traced["input"] == 1 and traced["explain"] == 1
    result = served.worker.explain_all(synthetic_xray(1, np.random.default_rng(3), 300))
    assert set(result.heatmaps) == set(METHODS)
    assert served.predictor.trace_counts == traced  # the upload traced nothing
    served.worker.close()
