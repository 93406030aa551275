"""What a training run will do, worked out without TensorFlow: its phases and its workload.

The Train page's estimate and monitor use these, so they stay importable by pages that must not
load TensorFlow (``tests/test_app_speed.py``); :mod:`cxr_core.training.phases` runs the phases.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cxr_core.config import RunConfig, TrainConfig
from cxr_core.runs.progress import Workload

__all__ = [
    "GATE_TRAIN_IMAGES",
    "STRESS_IMAGES",
    "STRESS_PASSES",
    "gate_images",
    "Phase",
    "learning_rate_scale",
    "plan_phases",
    "run_workload",
]

#: At most this many train images are used to fit the input check (features of 3,000 images
#: pin down a 1,280-dimensional shrunk covariance well and take about a minute on 2 cores).
GATE_TRAIN_IMAGES = 3000
#: Passes over the suite's validation images while finishing: clean plus each key of
#: ``cxr_core.evaluation.stress.PERTURBATIONS`` (a test keeps the two in step).
STRESS_PASSES = 86
#: Validation images the suite scores while finishing by default (85 keys on all 783 images of
#: the Kaggle validation split would take about 45 min on 2 cores): a fixed patient-grouped,
#: stratified subset of this many (``cxr_core.evaluation.stress.suite_subset``); the others are
#: scored clean only. A run sets its own with ``TrainConfig.stress_images``.
STRESS_IMAGES = TrainConfig.stress_images


@dataclass(frozen=True)
class Phase:
    """One call of ``model.fit``: its name, epoch range and learning rate."""

    name: str
    first_epoch: int
    epochs: int
    learning_rate: float

    @property
    def last_epoch(self) -> int:
        """Epoch number (exclusive) at which the phase ends."""
        return self.first_epoch + self.epochs


def learning_rate_scale(config: RunConfig) -> float:
    """Return ``batch_size / lr_reference_batch`` (the linear scaling rule), or 1 when unset.

    The batch size is the global one, which training splits over all replicas; a run that
    grows it with the number of replicas sets ``lr_reference_batch`` to the batch its learning
    rates were chosen for, and both learning rates grow in proportion.
    """
    reference = config.train.lr_reference_batch
    return 1.0 if reference is None else config.data.batch_size / reference


def plan_phases(config: RunConfig) -> list[Phase]:
    """Return the phases that ``config`` asks for, with global epoch numbering.

    Learning rates are scaled by :func:`learning_rate_scale`.
    """
    train, scale = config.train, learning_rate_scale(config)
    if not config.model.pretrained:
        total = train.head_epochs + train.finetune_epochs
        return [Phase("scratch", 0, total, train.head_learning_rate * scale)]
    phases = [Phase("head", 0, train.head_epochs, train.head_learning_rate * scale)]
    if train.finetune_epochs:
        phases.append(
            Phase(
                "finetune",
                train.head_epochs,
                train.finetune_epochs,
                train.finetune_learning_rate * scale,
            )
        )
    return phases


def gate_images(config: RunConfig, work: Workload) -> int:
    """Train images whose features fit the input check (0 when the check is off)."""
    return min(work.train_images, GATE_TRAIN_IMAGES) if config.train.input_gate else 0


def run_workload(config: RunConfig, n_train: int, n_val: int) -> Workload:
    """The images a run of ``config`` trains on, validates and scores while finishing (the
    stress suite on validation and the input check's train features)."""
    work = Workload(n_train, n_val, config.data.batch_size, plan_phases(config)[-1].last_epoch)
    suite_images = min(n_val, config.train.stress_images)
    finish = n_val + suite_images * (STRESS_PASSES - 1) + gate_images(config, work)
    return dataclasses.replace(work, finish_images=finish)
