"""Tests for cxr_core.evaluation.eval_sets: which images a saved model is evaluated on, and its
scores."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_core import data
from cxr_core.config import DataConfig, ModelConfig, RunConfig
from cxr_core.errors import DataError
from cxr_core.evaluation.eval_sets import VALIDATION, evaluation_sets, predict_table
from cxr_core.sidecar import ModelMetadata


def metadata_for(root, **data_settings) -> ModelMetadata:
    config = RunConfig(data_root=str(root), data=DataConfig(**data_settings))
    values = {"run_config": config.to_dict(), "threshold": 0.5}
    return ModelMetadata.from_dict({"backbone": "small_cnn", "image_size": 64, **values})


def test_validation_set_is_the_split_the_run_was_selected_on(tiny_dataset):
    table = data.scan(tiny_dataset)
    sets = evaluation_sets(table, metadata_for(tiny_dataset, seed=7))
    assert [s.key for s in sets] == [VALIDATION, "train", "val"]
    _, expected_val, _ = data.resolve_splits(table, DataConfig(seed=7))
    assert list(sets[0].table["path"]) == list(expected_val["path"])
    assert sets[0].optimistic and "patient-grouped split" in sets[0].label
    assert "somewhat optimistic" in sets[0].note


def test_train_split_is_flagged_as_seen_and_unused_val_split_is_not(tiny_dataset):
    sets = {s.key: s for s in evaluation_sets(data.scan(tiny_dataset), metadata_for(tiny_dataset))}
    assert sets["train"].optimistic and "seen in training" in sets["train"].label
    assert "optimistic" in sets["train"].note
    assert not sets["val"].optimistic and sets["val"].label == "val (8 images)"


def test_dataset_val_split_used_for_selection_is_named_so(tiny_dataset):
    metadata = metadata_for(tiny_dataset, min_val_images=4)
    sets = evaluation_sets(data.scan(tiny_dataset), metadata)
    assert sets[0].label.startswith("validation (the dataset's val split")
    assert len(sets[0].table) == 8


def test_without_run_settings_only_the_train_split_is_assumed_seen(tiny_dataset):
    bare = ModelMetadata(backbone="small_cnn", image_size=64, threshold=0.5)
    sets = evaluation_sets(data.scan(tiny_dataset), bare)
    assert [(s.key, s.optimistic) for s in sets] == [("train", True), ("val", False)]
    assert "probably trained on" in sets[0].note


def test_another_dataset_than_the_models_is_said_so(tiny_dataset):
    metadata = ModelMetadata.from_dict(
        {**metadata_for(tiny_dataset).raw, "data_fingerprint": "0000000000000000"}
    )
    validation = evaluation_sets(data.scan(tiny_dataset), metadata)[0]
    assert "differs from the one the model was trained on" in validation.note


def test_predict_table_scores_every_image_in_order(tiny_dataset):
    from cxr_core.model.build import build_model

    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=32))
    table = data.scan(tiny_dataset).iloc[::4]
    scores = predict_table(model, table, 32, batch_size=3)
    assert scores.shape == (len(table),) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    single = predict_table(model, table.iloc[[2]], 32)
    assert single[0] == pytest.approx(scores[2], abs=1e-5)


def test_predict_table_refuses_an_empty_table(tiny_dataset):
    with pytest.raises(DataError, match="no images to evaluate"):
        predict_table(None, data.scan(tiny_dataset).iloc[0:0], 32)
