"""Move cxr_core's flat modules into subpackages and the app_*.py files into cxr_app/.

Run from the repository root: `python /work/restructure/restructure.py [--dry-run]`.
Moves with `git mv` (history kept), then rewrites imports in every Python file of the tree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# old dotted module -> new dotted module
CORE = {
    # data
    "data": "data.tables",
    "audit": "data.audit",
    "augment": "data.augment",
    # imaging
    "imaging": "imaging.decode",
    "preprocess": "imaging.preprocess",
    "contrast": "imaging.contrast",
    # model
    "model": "model.build",
    "efficientnet_lite": "model.efficientnet_lite",
    "torch_legacy": "model.torch_legacy",
    "small_cnn": "model.small_cnn",
    "ensemble": "model.ensemble",
    "calibration": "model.calibration",
    # inference
    "gradcam": "inference.predictor",
    "gate": "inference.input_check",
    "conformal": "inference.conformal",
    "worker": "inference.worker",
    "upload": "inference.upload",
    # explain
    "heatmap": "explain.heatmap",
    "report": "explain.report",
    "faithfulness": "explain.faithfulness",
    # evaluation
    "evaluate": "evaluation.metrics",
    "operating_point": "evaluation.operating_point",
    "eval_sets": "evaluation.eval_sets",
    "score_cache": "evaluation.score_cache",
    "stress": "evaluation.stress",
    "corruptions": "evaluation.corruptions",
    "model_card": "evaluation.model_card",
    "site_fit": "evaluation.site_fit",
    # training
    "train": "training.train",
    "finalize": "training.finalize",
    "plan": "training.plan",
    "progress": "training.progress",
    "run_settings": "training.run_settings",
    # runs
    "runs": "runs.files",
    "run_guard": "runs.guard",
    "jobs": "runs.jobs",
    "app_settings": "runs.app_settings",
    "policy": "runs.policy",
    "feedback": "runs.feedback",
    # distributed
    "devices": "distributed.devices",
    "cluster": "distributed.cluster",
    "multiworker": "distributed.multiworker",
}
APP = {
    "app_access": "access",
    "app_charts": "charts",
    "app_diagnose": "diagnose",
    "app_evaluate": "evaluate",
    "app_nav": "navigation",
    "app_support": "support",
    "app_train": "train",
}
TOP = {"errors", "config", "fields", "sidecar", "io", "cli", "markdown", "__main__", "__init__"}


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True)


def move_files(root: Path, extra: dict[str, str]) -> dict[str, str]:
    moved: dict[str, str] = {}
    core = root / "cxr_core"
    for path in sorted(core.glob("*.py")):
        name = path.stem
        if name in TOP:
            continue
        target = extra.get(name) or CORE.get(name)
        if target is None:
            sys.exit(f"no place for cxr_core/{name}.py: add it to CORE")
        dest = core / (target.replace(".", "/") + ".py")
        dest.parent.mkdir(parents=True, exist_ok=True)
        init = dest.parent / "__init__.py"
        if not init.exists():
            init.write_text(f'"""{dest.parent.name}: TODO."""\n')
            git("add", str(init))
        git("mv", str(path), str(dest))
        moved[f"cxr_core.{name}"] = f"cxr_core.{target}"
    app_pkg = root / "cxr_app"
    app_pkg.mkdir(exist_ok=True)
    if not (app_pkg / "__init__.py").exists():
        (app_pkg / "__init__.py").write_text('"""cxr_app: TODO."""\n')
        git("add", str(app_pkg / "__init__.py"))
    for old, new in APP.items():
        src = root / f"{old}.py"
        if src.exists():
            git("mv", str(src), str(app_pkg / f"{new}.py"))
            moved[old] = f"cxr_app.{new}"
    return moved


_FROM_REL = re.compile(r"^(\s*)from \.([A-Za-z_][\w.]*)? import ", re.M)


def absolutize(text: str) -> str:
    """Relative imports inside (old, flat) cxr_core -> absolute cxr_core imports."""

    def repl(match: re.Match[str]) -> str:
        indent, mod = match.group(1), match.group(2)
        return f"{indent}from cxr_core{'.' + mod if mod else ''} import "

    return _FROM_REL.sub(repl, text)


def _split_names(names: str) -> list[tuple[str, str | None]]:
    out = []
    for part in names.split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.split(" as ")
        out.append((bits[0].strip(), bits[1].strip() if len(bits) > 1 else None))
    return out


_FROM_PKG = re.compile(
    r"^(?P<indent>[ \t]*)from (?P<pkg>cxr_core|cxr_app) import (?P<paren>\()?(?P<names>[^)\n#]*?)(?(paren)\))(?P<comment>[ \t]*#[^\n]*)?$",
    re.M,
)


def rewrite_from_package(text: str, moved: dict[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """`from cxr_core import data, jobs` -> one import per moved module; returns renames."""
    renames: list[tuple[str, str]] = []

    def repl(match: re.Match[str]) -> str:
        indent, pkg = match.group("indent"), match.group("pkg")
        names = _split_names(match.group("names").replace("\n", " "))
        comment = match.group("comment") or ""
        kept, lines = [], []
        for name, alias in names:
            full = moved.get(f"{pkg}.{name}")
            if full is None:
                kept.append(name if alias is None else f"{name} as {alias}")
                continue
            parent, leaf = full.rsplit(".", 1)
            bound = alias or name
            if leaf == bound:
                lines.append(f"{indent}from {parent} import {leaf}{comment}")
            else:
                lines.append(f"{indent}from {parent} import {leaf} as {bound}{comment}")
        if kept:
            lines.insert(0, f"{indent}from {pkg} import {', '.join(kept)}{comment}")
        return "\n".join(lines)

    return _FROM_PKG.sub(repl, text), renames


def rewrite_app_imports(text: str) -> tuple[str, list[tuple[str, str]]]:
    renames: list[tuple[str, str]] = []

    def imp(match: re.Match[str]) -> str:
        indent, old, alias = match.group(1), match.group(2), match.group(3)
        new = APP[old]
        bound = alias or old
        if bound != new:
            return f"{indent}from cxr_app import {new} as {bound}"
        return f"{indent}from cxr_app import {new}"

    names = "|".join(APP)
    text = re.sub(rf"^([ \t]*)import ({names})(?: as (\w+))?[ \t]*$", imp, text, flags=re.M)
    text = re.sub(
        rf"^([ \t]*)from ({names}) import ",
        lambda m: f"{m.group(1)}from cxr_app.{APP[m.group(2)]} import ",
        text,
        flags=re.M,
    )
    return text, renames


def rewrite_dotted(text: str, moved: dict[str, str]) -> str:
    """One pass, so a rewritten name is never rewritten again."""
    core = {k: v for k, v in moved.items() if k.startswith("cxr_core.")}
    names = "|".join(sorted((re.escape(k) for k in core), key=len, reverse=True))
    text = re.sub(rf"(?<![\w.])({names})(?!\w)", lambda m: core[m.group(1)], text)
    for old, new in moved.items():
        if not old.startswith("cxr_core."):
            # "app_support.X" in strings (monkeypatch targets)
            text = re.sub(rf"(['\"]){re.escape(old)}(?=\.\w)", rf"\g<1>{new}", text)
    return text


def apply_renames(text: str, renames: list[tuple[str, str]]) -> str:
    for bound, leaf in renames:
        text = re.sub(rf"(?<![\w.]){re.escape(bound)}\.(?=\w)", f"{leaf}.", text)
    return text


def main() -> None:
    root = Path.cwd()
    ignore = root / ".gitignore"
    lines = ["/runs/" if l == "runs/" else "/data/" if l == "data/" else l
             for l in ignore.read_text().splitlines()]
    ignore.write_text("\n".join(lines) + "\n")
    moved = move_files(root, {})
    files = [
        p
        for p in root.rglob("*.py")
        if ".venv" not in p.parts and "venv" not in p.parts and ".git" not in p.parts
    ]
    for path in files:
        text = original = path.read_text()
        if "cxr_core" in path.parts:
            text = absolutize(text)
        text = rewrite_dotted(text, moved)
        text, renames_a = rewrite_app_imports(text)
        text, renames_b = rewrite_from_package(text, moved)
        text = apply_renames(text, renames_a + renames_b)
        if text != original:
            path.write_text(text)
    print(f"moved {len(moved)} modules")


if __name__ == "__main__":
    main()
