"""Command line: ``python -m cxr_core {scan,train,evaluate,predict,stress,calibrate}``.

Exit status 0 on success; 2 with one ``error: ...`` line on stderr for bad input (a missing
folder, an empty class folder, an unreadable model, a bad option, a full or read-only disk) -
never a traceback. SIGTERM ends every command but ``train`` after the current step with one
line and exit 143; ``train`` stops gracefully at the next batch and can be resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cxr_core.cli_calibrate import run_calibrate
from cxr_core.cli_parsers import build_parser, run_config_from_args, train_settings
from cxr_core.config import CLASS_NAMES, RunConfig
from cxr_core.errors import (
    ClusterError,
    CXRError,
    DataError,
    InvalidImageError,
    NotAChestXrayError,
    StorageError,
)
from cxr_core.sidecar_reports import StressReport

__all__ = ["build_parser", "main", "train_settings"]


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe GPUs with the C++ notices (oneDNN, CUDA) kept off stderr.

    They are printed before TensorFlow's log level applies, so no environment variable hides
    them; they would bury the one ``error:`` line a user needs to read.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow

            # The first device query probes CUDA and logs a failure on machines without it.
            tensorflow.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    After a multi-worker run (finished, cancelled or failed) the process's native stderr is
    closed: TensorFlow's cluster runtime logs its peers' departure, or its own failure again,
    while the interpreter shuts down, after the one line that matters.
    """
    # Before any command imports TensorFlow: its C++ start-up chatter is not for users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    handler = {
        "scan": _scan,
        "train": _train,
        "evaluate": _evaluate,
        "predict": _predict,
        "stress": _stress,
        "calibrate": run_calibrate,
    }
    previous = signal.getsignal(signal.SIGTERM)
    try:
        if args.command != "train":
            _end_on_sigterm()
        _check_data_before_tensorflow(args)
        # A multi-worker run is guarded by the cluster (an agreed stop; only the chief writes
        # --out), and a worker that is not the chief must not create or lock that folder.
        if args.command == "train" and args.distribute != "multiworker":
            args.stop = _guard_training(args)
        if args.command in _NEEDS_TENSORFLOW:
            _import_tensorflow_quietly()
        return handler[args.command](args)
    except CXRError as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, ClusterError) or getattr(args, "distribute", None) == "multiworker":
            _close_native_stderr()
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return 143
    finally:
        if args.command != "train" and _in_main_thread():
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)


#: Commands that run a model; ``scan`` reads folders only and answers without TensorFlow.
_NEEDS_TENSORFLOW = frozenset({"train", "evaluate", "predict", "stress", "calibrate"})


def _check_data_before_tensorflow(args: argparse.Namespace) -> None:
    """Check that ``--data`` is a folder before the seconds-long TensorFlow import, so a
    mistyped path gets its one line at once.

    Raises:
        DataError: As :func:`cxr_core.data.tables.dataset_folder`.
    """
    data = getattr(args, "data", None)
    if isinstance(data, str) and data:
        from cxr_core.data import tables

        tables.dataset_folder(data)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Terminated(BaseException):  # noqa: N818 - named for the signal, like KeyboardInterrupt
    """Raised in the main thread by SIGTERM in every command but ``train`` (which stops
    gracefully at a batch boundary instead). A ``BaseException``, like KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it."""


def _end_on_sigterm() -> None:
    """Make SIGTERM end the command after the current Python step (between files or
    batches): it prints one line and exits 143. A SIGTERM kept while importing counts."""

    def terminate(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process at once
        raise Terminated

    if not _in_main_thread():
        return  # signals reach only the main thread; a library caller handles its own
    early = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, terminate)
    if getattr(early, "received", False):
        raise Terminated


def _close_native_stderr() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=True))


def _scan(args: argparse.Namespace) -> int:
    from cxr_core.data import tables as data

    table = data.scan(args.data)
    counts = data.count_table(table)
    train = table[table["split"] == "train"]
    weights = data.class_weights(train["label_index"].to_numpy()) if len(train) else {}
    by_class = train["label"].value_counts()
    imbalance = float(by_class.max() / by_class.min()) if len(by_class) == 2 else None
    summary: dict[str, Any] = {
        "root": str(Path(args.data).resolve()),
        "images": len(table),
        "counts": {split: row.to_dict() for split, row in counts.iterrows()},
        "imbalance_ratio": imbalance,
        "class_weights": {CLASS_NAMES[k]: v for k, v in weights.items()},
    }
    if args.duplicates:
        summary["duplicate_files"] = len(data.duplicate_groups(data.add_content_hashes(table)))
    if args.json:
        _emit(summary)
        return 0
    print(counts.to_string())
    if imbalance is not None:
        print(f"\ntrain imbalance (majority / minority): {imbalance:.2f}")
    weights_shown = summary["class_weights"].items()
    weight_text = ", ".join(f"{name} {value:.3f}" for name, value in weights_shown)
    print(f"class weights: {weight_text or 'n/a (no train split)'}")
    if args.duplicates:
        print(f"exact duplicate files: {summary['duplicate_files']}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cxr_core.runs.files import RunState
    from cxr_core.training.train import plan_phases, train_run

    config = run_config_from_args(args)
    note = _scratch_note(config, plan_phases)
    if note:
        print(note)
    result = train_run(
        args.out,
        config,
        resume=args.resume,
        stop=getattr(args, "stop", None),
        distribute=args.distribute,
        cluster_timeout=args.cluster_timeout,
    )
    if result.chief is False:
        print(f"{result.state}: this worker's part is done; the chief wrote {args.out}")
    elif result.state == RunState.CANCELLED or result.summary is None:
        print(f"cancelled: {args.out} (continue with: {_resume_command(args.out)})")
    else:
        metrics = result.summary.metrics
        print(
            f"finished: {Path(args.out) / 'model.keras'}  validation AUC "
            f"{metrics.value('roc_auc'):.4f}, accuracy {metrics.value('accuracy'):.4f} at "
            f"threshold {result.summary.threshold:.3f}"
        )
    if result.chief is not None:  # a multi-worker run: see main
        _close_native_stderr()
    return 0


def _scratch_note(config: RunConfig | None, plan_phases: Any) -> str | None:
    """Say how many epochs a from-scratch run trains when fine-tuning epochs were added."""
    if config is None or config.model.pretrained or not config.train.finetune_epochs:
        return None
    return (
        f"note: --weights none trains the whole network in one phase of "
        f"{plan_phases(config)[0].epochs} epochs (--epochs {config.train.head_epochs} + "
        f"--finetune-epochs {config.train.finetune_epochs})"
    )


def _resume_command(out: str) -> str:
    return f"python -m cxr_core train --out {out} --resume"


def _guard_training(args: argparse.Namespace) -> Any:
    """Before TensorFlow is imported (seconds): lock the run folder, handle SIGTERM and
    watch for a STOP file, so that a cancel at any moment ends the run within seconds.

    Raises:
        RunInUseError: Another process is training in ``--out``.
        ConfigError: The settings are invalid (checked before any folder is made).
    """
    from cxr_core.runs.files import RunPaths, RunState, cancelled_message, update_status
    from cxr_core.runs.guard import StopRequest, lock_run, process_started_at

    out = Path(args.out)
    if args.resume and not (out / "config.json").is_file():
        raise DataError(f"cannot resume: {out / 'config.json'} not found")
    run_config_from_args(args)
    lock_run(out)
    stop = StopRequest(out / "STOP", since=process_started_at())
    if args.resume:
        # The STOP file of the cancel that ended the last attempt: left in place, the watchdog
        # below took it for a new request and cancelled the resumed run within seconds. One
        # written after this process started is a new request and stays.
        stop.clear_stale()
    early = signal.getsignal(signal.SIGTERM)  # python -m cxr_core's, if any
    stop.install()
    stop.signalled = bool(getattr(early, "received", False))

    def stopped_hard() -> None:
        # The run did not reach a batch boundary in time (starting, a long validation or
        # stress pass): record the cancel and end here; --resume continues from the last epoch.
        update_status(
            RunPaths(out), state=RunState.CANCELLED, message=cancelled_message(RunPaths(out))
        )
        print(f"cancelled: {out} (continue with: {_resume_command(str(out))})")

    stop.start_watchdog(stopped_hard)
    return stop


def _evaluate(args: argparse.Namespace) -> int:
    from cxr_core.data import tables as data
    from cxr_core.evaluation.eval_sets import per_image_rows, predict_table
    from cxr_core.model.build import load_model
    from cxr_core.stats import metrics as evaluate

    model, metadata = load_model(args.model)
    table = data.scan(args.data)
    subset = table[table["split"] == args.split]
    if subset.empty:
        found = ", ".join(sorted(table["split"].unique()))
        raise DataError(f"split '{args.split}' not found in {args.data} (found: {found})")
    labels = subset["label_index"].to_numpy()
    scores = predict_table(model, subset, metadata.image_size, args.batch_size)
    report = evaluate.evaluation_report(
        labels, scores, metadata.threshold, n_resamples=args.bootstrap
    )
    if not args.curves:
        report.pop("curves", None)
    report.update(model=str(args.model), split=args.split)
    if args.per_image:
        report["per_image"] = per_image_rows(subset, scores, metadata.threshold)
    if args.json:
        _emit(report)
    else:
        _print_report(report)
        for row in report.get("per_image", []):
            print(f"  {row['file']}  {row['probability']:.6f}  {row['label']} -> {row['decision']}")
    return 0


def _print_report(report: dict[str, Any]) -> None:
    intervals = report.get("ci", {})
    print(f"{report['split']}: {report['n']} images, threshold {report['threshold']:.3f}")
    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc", "pr_auc"):
        value = report.get(key)
        text = "n/a" if value is None else f"{value:.4f}"
        if key in intervals and intervals[key] is not None:
            low, high = intervals[key]
            text += f"  (95% CI {low:.4f}-{high:.4f})"
        print(f"  {key:<12} {text}")
    print(f"  {'brier':<12} {report['brier']:.4f}\n  {'ece':<12} {report['ece']:.4f}")
    print(f"  confusion    {report['confusion_matrix']}")


def _predict(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cxr_core.imaging.scoring import decode_for_model
    from cxr_core.inference.population import with_age_check
    from cxr_core.inference.predictor import Predictor
    from cxr_core.io import write_reason

    predictor = Predictor.from_path(args.model)
    heatmap_dir = Path(args.heatmap_dir) if args.heatmap_dir else None
    if heatmap_dir is not None:
        try:
            heatmap_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot write {heatmap_dir}: {write_reason(error)}") from None
    failures = 0
    for index, name in enumerate(args.files):
        try:
            image = decode_for_model(Path(name), filename=Path(name).name)
            colour = float(image.info.get("colour", 0.0))
            if heatmap_dir is None:
                result = predictor.predict(image.pixels, colour=colour)
            else:
                result = predictor.explain(image.pixels, method=args.method, colour=colour)
            result = replace(result, input_check=with_age_check(result.input_check, image.info))
            check = result.input_check
            if not check.accepted and not args.score_anyway:
                raise NotAChestXrayError(check.reason)
            if heatmap_dir is not None:
                _write_overlay(heatmap_dir, name, index, image.pixels, result.heatmap)
        except StorageError:
            raise  # a full or read-only --heatmap-dir fails every file alike: one line
        except CXRError as error:
            failures += 1
            _report_failure(args.json, name, error)
            continue
        _report_prediction(args.json, name, result)
    return 2 if failures else 0


def _report_failure(as_json: bool, name: str, error: CXRError) -> None:
    if as_json:
        _emit({"file": name, "error": str(error)})
    else:
        print(f"error: {name}: {error}", file=sys.stderr)


def _report_prediction(as_json: bool, name: str, result: Any) -> None:
    check = result.input_check
    payload = {
        "file": name,
        "probability": round(result.probability, 6),
        "label": result.label,
        "threshold": round(result.threshold, 6),
        "input_check": check.grade if check.accepted else f"refused: {check.reason}",
        "prediction_set": list(result.prediction_set),
        "decision": result.decision,
    }
    if check.distance is not None:
        payload["input_distance"] = round(check.distance, 3)
    if check.warning:
        payload["warning"] = check.warning
    if as_json:
        _emit(payload)
    else:
        refused = "" if check.accepted else " [REFUSED by the input check; scored anyway]"
        uncertain = " UNCERTAIN: both are plausible;" if result.decision == "UNCERTAIN" else ""
        print(
            f"{name}:{uncertain} {result.label} (P(pneumonia) = {result.probability:.3f}, "
            f"threshold {result.threshold:.3f}){refused} - research demo, not a diagnosis"
        )
        if check.warning:
            print(f"warning: {name}: {check.warning}", file=sys.stderr)


def _stress(args: argparse.Namespace) -> int:
    from cxr_core.data import tables as data
    from cxr_core.evaluation import eval_sets, stress
    from cxr_core.model.build import load_model

    model, metadata = load_model(args.model)
    table = data.scan(args.data)
    sets = {item.key: item for item in eval_sets.evaluation_sets(table, metadata)}
    if args.split not in sets:
        raise DataError(
            f"split '{args.split}' is not available for this model and dataset "
            f"(available: {', '.join(sets)})"
        )
    subset = sets[args.split].table
    logits = stress.stressed_logits(model, subset, metadata.image_size, args.batch_size)
    report = stress.stress_report(
        subset["label_index"].to_numpy(),
        logits,
        metadata.threshold,
        n_resamples=args.bootstrap,
    )
    suite = StressReport.from_dict(report, "stress report", DataError)
    if args.json:
        _emit({**suite.to_dict(), "model": str(args.model), "split": args.split, "n": len(subset)})
    else:
        _print_stress(suite, args.split, len(subset))
    return 0


def _print_stress(suite: StressReport, split: str, n: int) -> None:
    print(f"{split}: {n} images, threshold {suite.threshold:.3f}")
    print(f"  {'perturbation':<16} {'AUC':>6} {'sens':>6} {'spec':>6} {'ECE':>6} {'flips':>6}")
    rows = {"clean": {**suite.clean.values, "flip_rate": 0.0}}
    rows.update({name: metrics.values for name, metrics in suite.perturbations.items()})
    for name, m in rows.items():
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        print(
            f"  {name:<16} {auc:>6} {m['sensitivity']:>6.3f} {m['specificity']:>6.3f} "
            f"{m['ece']:>6.3f} {m['flip_rate']:>6.3f}"
        )
    worst, which = suite.summary.worst, suite.summary.worst_perturbation
    print("  worst: " + ", ".join(f"{k} {v:.3f} ({which[k]})" for k, v in worst.items()))


def _write_overlay(folder: Path, name: str, index: int, pixels: Any, heatmap: Any) -> None:
    import cv2

    from cxr_core.inference.predictor import overlay
    from cxr_core.io import write_bytes_atomic

    rgb = overlay(pixels, heatmap)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidImageError(f"could not encode the heatmap of {name}")
    target = folder / f"{Path(name).stem}_{index:03d}_gradcam.png"
    write_bytes_atomic(target, encoded.tobytes())
