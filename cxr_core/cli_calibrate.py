"""``python -m cxr_core calibrate``: fit a model to a site's labelled images (a new file)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxr_core.errors import DataError

__all__ = ["add_calibrate", "run_calibrate"]


def add_calibrate(commands: argparse._SubParsersAction) -> None:
    """Register the ``calibrate`` command."""
    calibrate = commands.add_parser(
        "calibrate", help="fit a model's calibration, threshold and conformal sets to a site"
    )
    calibrate.add_argument("--model", required=True, help="a .keras model with its .json sidecar")
    calibrate.add_argument(
        "--data", required=True, help="the site's labelled images (Kaggle layout)"
    )
    calibrate.add_argument("--split", help="use only this split of --data (default: all images)")
    calibrate.add_argument("--out", required=True, help="the fitted model to write (.keras)")
    calibrate.add_argument("--site-name", help="the site's name (default: the --data folder)")
    calibrate.add_argument("--method", default="platt", choices=("platt", "temperature"))
    calibrate.add_argument("--coverage", type=float, default=0.95, help="of the conformal sets")
    calibrate.add_argument("--folds", type=int, default=5, help="folds of the cross-fitting")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--json", action="store_true", help="print the section as JSON")


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``calibrate``; returns the exit status (errors are raised as ``CXRError``)."""
    from cxr_core.data import tables as data
    from cxr_core.evaluation.site_calibrate import calibrate_model

    table = data.scan(args.data)
    if args.split:
        if args.split not in set(table["split"]):
            found = ", ".join(sorted(table["split"].unique()))
            raise DataError(f"split '{args.split}' not found in {args.data} (found: {found})")
        table = table[table["split"] == args.split].reset_index(drop=True)
    site = args.site_name or Path(args.data).resolve().name
    path, section = calibrate_model(
        args.model, table, args.out, site, method=args.method, coverage=args.coverage,
        folds=args.folds, seed=args.seed,
    )  # fmt: skip
    if args.json:
        print(json.dumps(section.to_dict(), sort_keys=True))
        return 0
    print(f"fitted to {site}: {path} (threshold {section.threshold:.3f}, {args.method})")
    print(f"  cross-fitted over {section.folds} folds by patient; before -> after:")
    for name, after in section.after.items():
        before = section.before.get(name)
        was = "n/a" if before is None else f"{before.value:.3f}"
        span = "" if after.low is None else f"  (95% CI {after.low:.3f}-{after.high:.3f})"
        print(f"  {name:<18} {was} -> {after.value:.3f}{span}")
    return 0
