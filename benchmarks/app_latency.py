"""How fast does the app answer? Cold Home, page switches, the heatmap slider and scoring.

Four figures, on the bundled model (``assets/models``, or ``$CXR_MODELS_DIR``) and a dataset
folder (``--data``; the shared Kaggle layout by default):

1. **cold Home**: a fresh Python process runs the app (``streamlit_app.py``, which opens Home)
   through ``AppTest``, timed from its first line to the rendered page, and says whether
   TensorFlow was imported; compared with a fresh process that only runs ``import
   tensorflow``. Medians of ``--repeats`` interleaved pairs. Target: Home at most half of the
   bare import (Home needs the JSON sidecars, not TensorFlow).
2. **page switch**: on a warm app (every page visited once), ``AppTest.switch_page`` between
   Home, Dataset, Diagnose and Train; the median over ``--repeats`` rounds.
3. **opacity change**: Diagnose with one val X-ray already analysed, the heatmap opacity slider
   set to a new value and the rerun timed (median of 5 values); the Grad-CAM / Grad-CAM++
   switch is timed too (median of 2 switches).
4. **scoring**: ``--images`` files of the dataset (a fixed sample) scored the way the Evaluate
   page scores them (:func:`app_scoring`, uncached) against a bare ``model.predict`` on the same
   ``tf.data`` pipeline; images/s of both, and their ratio, medians of ``--repeats`` pairs.

Prints figures; asserts nothing. Last line: ``cold_home_vs_import_tf=<x> page_switch_s=<x>
opacity_change_s=<x> scoring_vs_bare_predict=<x>``.

    python benchmarks/app_latency.py [--data ../shared/data/chest_xray] [--images 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "streamlit_app.py")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray"
TIMEOUT = 600
SWITCH_PAGES = ("pages/dataset.py", "pages/diagnose.py", "pages/train.py", "pages/home.py")

COLD_HOME = """
import json, sys, time
start = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout={timeout}).run()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "tensorflow": "tensorflow" in sys.modules,
                  "exception": [str(e.value) for e in at.exception]}}))
"""
BARE_IMPORT = """
import json, time
start = time.perf_counter()
import tensorflow
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def fresh_process(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` in a new interpreter (cwd: the repository) and parse its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_home(env: dict[str, str], repeats: int) -> tuple[float, float, bool]:
    """Median seconds of a cold Home and of a bare ``import tensorflow``, and whether Home
    imported TensorFlow, from ``repeats`` interleaved pairs of fresh processes."""
    home, bare, imported = [], [], False
    for _ in range(repeats):
        result = fresh_process(COLD_HOME.format(app=APP, timeout=TIMEOUT), env)
        if result["exception"]:
            raise SystemExit(f"Home failed: {result['exception']}")
        home.append(result["seconds"])
        imported |= result["tensorflow"]
        bare.append(fresh_process(BARE_IMPORT, env)["seconds"])
    return statistics.median(home), statistics.median(bare), imported


def timed_run(at, action=None, cpu: list[float] | None = None) -> float:
    """Seconds of one AppTest rerun (after ``action``, which sets a widget), checked; the
    process's CPU seconds of it are appended to ``cpu`` when given."""
    start, start_cpu = time.perf_counter(), time.process_time()
    (action() if action else at).run()
    seconds = time.perf_counter() - start
    if cpu is not None:
        cpu.append(time.process_time() - start_cpu)
    if at.exception:
        raise SystemExit(f"the app failed: {[e.value for e in at.exception]}")
    return seconds


def page_switches(repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of switching to each page of a warm app (each page visited
    once before). CPU seconds show the app's own cost on a machine shared with others."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    timed_run(at)
    for page in SWITCH_PAGES:  # warm-up: caches filled, models loaded
        timed_run(at, partial(at.switch_page, page))
    times: dict[str, list[float]] = {page: [] for page in SWITCH_PAGES}
    cpu: dict[str, list[float]] = {page: [] for page in SWITCH_PAGES}
    for _ in range(repeats):
        for page in SWITCH_PAGES:
            times[page].append(timed_run(at, partial(at.switch_page, page), cpu[page]))
    return {page: (statistics.median(times[page]), statistics.median(cpu[page])) for page in cpu}


def diagnose_changes(image: Path) -> tuple[float, float | None]:
    """Median seconds of an opacity change and of a method change on an analysed upload."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    timed_run(at)
    timed_run(at, lambda: at.switch_page("pages/diagnose.py"))
    upload = (image.name, image.read_bytes(), "image/jpeg")
    timed_run(at, lambda: at.file_uploader[0].set_value(upload))

    def slider():  # found again after every rerun: AppTest rebuilds its element tree
        return next(s for s in at.slider if "opacity" in s.label.lower())

    def radio():
        return next((r for r in at.radio if "Grad-CAM++" in r.options), None)

    opacity = [
        timed_run(at, lambda value=value: slider().set_value(value))
        for value in (0.6, 0.2, 0.8, 0.3, 0.5)
    ]
    method = None
    if radio() is not None:
        first = radio().value
        other = next(option for option in radio().options if option != first)
        method = statistics.median(
            timed_run(at, lambda value=value: radio().set_value(value)) for value in (other, first)
        )
    return statistics.median(opacity), method


def app_scoring(entry, table):
    """Score ``table`` the way the app does (``app_evaluate.predictions``), uncached."""
    import shutil

    import app_evaluate

    # A miss every time: no scores on disk, no cache object holding any.
    shutil.rmtree(app_evaluate.score_cache_dir(), ignore_errors=True)
    app_evaluate._score_cache.clear()
    return app_evaluate.predictions(entry, table)


def scoring(root: Path, n_images: int, repeats: int) -> tuple[float, float, float]:
    """Images/s of the app's scoring and of a bare ``model.predict`` (medians), and the median
    of their ratio within each of ``repeats`` pairs (run in alternating order, so that a
    neighbour's load on a shared machine hits both sides of a pair alike)."""
    import app_support
    from cxr_core import data
    from cxr_core.model import load_model

    entry = next(e for e in app_support.discover_models() if e.problem is None)
    model, metadata = load_model(entry.path)
    table = data.scan(root)
    picked = table.sample(min(n_images, len(table)), random_state=0)
    warm, sample = table.drop(picked.index).head(64), picked.reset_index(drop=True)

    def images_only(images, labels):
        return images

    def bare(rows):
        dataset = data.evaluation_dataset(rows, metadata.image_size, 32)
        return model.predict(dataset.map(images_only), verbose=0)

    def rate(score) -> float:
        start = time.perf_counter()
        scores = score(sample)
        if len(scores) != len(sample):
            raise SystemExit("scoring returned the wrong number of scores")
        return len(sample) / (time.perf_counter() - start)

    bare(warm), app_scoring(entry, warm)  # build both predict functions
    app_rates, bare_rates = [], []
    for index in range(repeats):
        if index % 2:
            app_rates.append(rate(lambda rows: app_scoring(entry, rows)))
            bare_rates.append(rate(bare))
        else:
            bare_rates.append(rate(bare))
            app_rates.append(rate(lambda rows: app_scoring(entry, rows)))
    ratio = statistics.median(a / b for a, b in zip(app_rates, bare_rates, strict=True))
    return statistics.median(app_rates), statistics.median(bare_rates), ratio


def main() -> None:
    """Run the four measurements and print them, ratios on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=300, help="images scored (default 300)")
    parser.add_argument("--repeats", type=int, default=4, help="even: balanced order")
    args = parser.parse_args()
    root = args.data.resolve()
    os.chdir(ROOT)  # the app's .streamlit/config.toml applies, as under `streamlit run`
    env = {**os.environ, "CXR_DATA": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.setdefault("CXR_RUNS_DIR", tempfile.mkdtemp(prefix="cxr_bench_runs_"))
    os.environ.update(env)
    print(f"data: {root}; repeats: {args.repeats}; {os.cpu_count()} CPU cores", flush=True)

    home, bare_import, imported = cold_home(env, args.repeats)
    print(
        f"cold Home (fresh process, AppTest): {home:.2f} s, TensorFlow imported: {imported}; "
        f"bare `import tensorflow`: {bare_import:.2f} s",
        flush=True,
    )
    switches = page_switches(args.repeats)
    for page, (seconds, cpu) in switches.items():
        print(f"switch to {page}: {seconds:.2f} s ({cpu:.2f} s CPU)", flush=True)
    switch = statistics.median(seconds for seconds, _ in switches.values())
    image = next((root / "val" / "PNEUMONIA").glob("*.jpeg"))
    opacity, method = diagnose_changes(image)
    method_text = f"{method:.2f} s" if method is not None else "not found"
    print(f"opacity change: {opacity:.2f} s; method change: {method_text}", flush=True)
    app_rate, bare_rate, ratio = scoring(root, args.images, args.repeats)
    print(
        f"scoring {args.images} images: app {app_rate:.1f} images/s, bare model.predict "
        f"{bare_rate:.1f} images/s (medians; app / bare within a pair: {ratio:.2f})",
        flush=True,
    )
    print(
        f"cold_home_vs_import_tf={home / bare_import:.2f} page_switch_s={switch:.2f} "
        f"opacity_change_s={opacity:.2f} scoring_vs_bare_predict={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
