"""The argument parser of ``python -m cxr_core`` and the run settings of its ``train`` options.

:mod:`cxr_core.cli` runs the commands; this module only describes their options and turns
``train``'s into a :class:`cxr_core.config.RunConfig`.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from cxr_core.backbones import BACKBONES
from cxr_core.cli_calibrate import add_calibrate
from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import ConfigError
from cxr_core.training.run_settings import run_config

__all__ = ["build_parser", "run_config_from_args", "train_settings"]

_AUTO_ON_OFF = ("auto", "on", "off")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _add_scan(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser("scan", help="count images per split and class")
    scan.add_argument("data", help="dataset root with train/val/test folders")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.add_argument("--duplicates", action="store_true", help="also hash files for duplicates")


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model in a run folder")
    d, m, t = DataConfig(), ModelConfig(), TrainConfig()
    train.add_argument("--data", help="dataset root (required unless --resume or --config)")
    train.add_argument("--out", required=True, help="run folder, e.g. runs/my-run")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--config", help="RunConfig JSON file (as written to config.json)")
    train.add_argument("--backbone", default=m.backbone, choices=sorted(BACKBONES))
    train.add_argument("--weights", default=m.weights, help="imagenet, none or a weights file")
    train.add_argument("--image-size", type=int, default=m.image_size)
    train.add_argument("--dropout", type=float, default=m.dropout)
    train.add_argument("--contrast", default=m.contrast, choices=("clahe", "none"))
    train.add_argument("--clahe-clip-limit", type=float, default=m.clahe_clip_limit)
    train.add_argument("--epochs", type=int, default=t.head_epochs, help="head (phase 1) epochs")
    train.add_argument(
        "--finetune-epochs",
        type=int,
        help=f"phase 2 epochs (default {t.finetune_epochs}; 0 with --weights none, which "
        "trains one phase of --epochs + --finetune-epochs epochs)",
    )
    train.add_argument("--lr", type=float, default=t.head_learning_rate)
    train.add_argument("--finetune-lr", type=float, default=t.finetune_learning_rate)
    train.add_argument("--finetune-layers", type=int, default=t.finetune_layers)
    train.add_argument("--no-class-weights", action="store_true")
    train.add_argument("--label-smoothing", type=float, default=t.label_smoothing)
    train.add_argument("--patience", type=int, default=t.early_stopping_patience)
    train.add_argument("--threshold-rule", default=t.threshold_rule)
    train.add_argument("--target-sensitivity", type=float, default=t.target_sensitivity)
    train.add_argument(
        "--threshold-scores", default=t.threshold_scores, choices=("stressed", "clean")
    )
    train.add_argument(
        "--stress-images",
        type=int,
        default=t.stress_images,
        help="validation images scored under every stress-suite key while finishing "
        f"(default {t.stress_images}; fewer finish a CPU run sooner)",
    )
    train.add_argument("--calibration", default=t.calibration, choices=("platt", "none"))
    train.add_argument("--no-input-gate", action="store_true", help="do not fit the input check")
    train.add_argument(
        "--distribute",
        choices=("auto", "none", "mirrored", "multiworker"),
        help="devices and machines to train on (default auto; with --resume, overrides the "
        "run's setting); multiworker reads the cluster from TF_CONFIG",
    )
    train.add_argument("--mixed-precision", default=t.mixed_precision, choices=_AUTO_ON_OFF)
    train.add_argument("--xla", default=t.xla, choices=_AUTO_ON_OFF, help="XLA-compile steps")
    train.add_argument(
        "--lr-reference-batch",
        type=int,
        help="batch size the learning rates are for; they are scaled by batch-size / this",
    )
    train.add_argument(
        "--cluster-timeout",
        type=float,
        default=120.0,
        help="seconds a multiworker run waits for the other workers (default 120)",
    )
    train.add_argument("--batch-size", type=int, default=d.batch_size)
    train.add_argument("--augment", type=float, default=d.augment, help="0 off .. 2 strong")
    train.add_argument(
        "--acquisition-augment",
        type=float,
        default=d.acquisition_augment,
        help="blur/sharpen, resampling, JPEG, noise: 0 off .. 2 strong",
    )
    train.add_argument(
        "--framing-augment",
        type=float,
        default=d.framing_augment,
        help="random-resized-crop: 0 off .. 1 (crops down to half the area)",
    )
    train.add_argument(
        "--corruption-augment",
        type=float,
        default=d.corruption_augment,
        help="share of images given one stress-suite corruption (choice families only)",
    )
    train.add_argument("--horizontal-flip", action="store_true")
    train.add_argument("--val-fraction", type=float, default=d.val_fraction)
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--limit-per-class", type=int, help="use at most N train images a class")
    train.add_argument("--no-cache", action="store_true", help="do not keep images in memory")


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of a model on a dataset split")
    evaluate.add_argument("--model", required=True, help="a .keras model with its .json sidecar")
    evaluate.add_argument("--data", required=True, help="dataset root")
    evaluate.add_argument("--split", default="test", help="train, val or test (default test)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="resamples for the CIs")
    evaluate.add_argument("--curves", action="store_true", help="include curve points in JSON")
    evaluate.add_argument(
        "--per-image",
        action="store_true",
        help="list each file's probability, label and decision (JSON: per_image)",
    )


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="verdict (and heatmap) for image files")
    predict.add_argument("--model", required=True, help="a .keras model with its .json sidecar")
    predict.add_argument("files", nargs="+", help="JPEG, PNG or DICOM files")
    predict.add_argument("--json", action="store_true", help="one JSON line per file")
    predict.add_argument("--heatmap-dir", help="write a Grad-CAM overlay PNG per file here")
    predict.add_argument("--method", default="gradcam", choices=("gradcam", "gradcam++"))
    predict.add_argument(
        "--score-anyway",
        action="store_true",
        help="research use: also score images the input check refuses (marked as refused)",
    )


def _add_stress(commands: argparse._SubParsersAction) -> None:
    stress = commands.add_parser(
        "stress", help="re-score the validation split under blur, exposure, zoom, noise, ..."
    )
    stress.add_argument("--model", required=True, help="a .keras model with its .json sidecar")
    stress.add_argument("--data", required=True, help="dataset root")
    stress.add_argument(
        "--split",
        default="validation",
        help="validation (the model's own, rebuilt from its sidecar), train, val or test",
    )
    stress.add_argument("--json", action="store_true", help="print one JSON object")
    stress.add_argument("--batch-size", type=int, default=32)
    stress.add_argument("--bootstrap", type=int, default=200, help="resamples for the CIs")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m cxr_core``."""
    parser = _Parser(
        prog="python -m cxr_core",
        description="CXR Pneumonia Lab - research demo, not a medical device.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_scan, _add_train, _add_evaluate, _add_predict, _add_stress, add_calibrate):
        add(commands)
    return parser


def run_config_from_args(args: argparse.Namespace) -> RunConfig | None:
    """The run settings of parsed ``train`` options: None with ``--resume``, the checked
    ``--config`` file, else the options themselves.

    Raises:
        ConfigError: ``--config`` is missing or invalid, ``--data`` is absent, or a setting is
            out of range.
    """
    if args.resume:
        return None
    if args.config:
        from cxr_core.io import read_json

        try:
            values = read_json(args.config, ConfigError)
        except FileNotFoundError:
            raise ConfigError(f"cannot read --config {args.config}: it does not exist") from None
        return RunConfig.from_dict(values)
    if not args.data:
        raise ConfigError("--data is required unless --resume or --config is given")
    return run_config(train_settings(args))


#: ``train`` options whose names differ from the setting they give (see
#: cxr_core.training.run_settings).
_RENAMED = {
    "data": "data_root",
    "epochs": "head_epochs",
    "lr": "head_learning_rate",
    "finetune_lr": "finetune_learning_rate",
    "patience": "early_stopping_patience",
}
#: ``--no-x`` switches and the setting each one turns off.
_NEGATED = {
    "no_class_weights": "class_weighting",
    "no_input_gate": "input_gate",
    "no_cache": "cache",
}
#: ``train`` options that are not run settings.
_NOT_SETTINGS = {"command", "out", "resume", "config", "cluster_timeout", "stop"}


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The plain run settings (:func:`cxr_core.training.run_settings.run_config`) of parsed
    ``train`` options; ``--distribute`` left out means the default."""
    settings: dict[str, Any] = {}
    for option, value in vars(args).items():
        if option in _NOT_SETTINGS or (option == "distribute" and value is None):
            continue
        if option in _NEGATED:
            settings[_NEGATED[option]] = not value
        else:
            settings[_RENAMED.get(option, option)] = value
    return settings
