"""How fast does the app answer a person? In Chromium on a fresh server, and in AppTest.

**Chromium** (the default): a fresh ``streamlit run`` server on 127.0.0.1 (bundled model,
background warm-up on, empty runs folder) and headless Chromium (Playwright), timing what a
visitor waits for:

1. ``cold_diagnose_s``: ``/diagnose`` as the server's very first request, until the uploader is
   on screen; ``model_ready_s``: until its "loading the model" state has given way;
2. ``first_verdict_s``: the first upload on that model (a val X-ray), drop to verdict;
   ``later_verdict_s``: the median of 3 further uploads (other files);
3. ``opacity_s``: one step of the opacity slider (arrow key) until the overlay image changes,
   median of 5; ``method_s``: Grad-CAM / Grad-CAM++ switch until the overlay changes, median of 2;
4. ``evaluate_cold_s``: the Evaluate page opened, until its metrics show (the model's whole
   validation split scored cold); ``threshold_s``: one step of its threshold slider until the
   page is drawn at the new threshold (metric cards and the gallery caption that names it),
   median of 3.

Targets (2 cores): cold Diagnose <= 6 s to the uploader, first verdict <= 2 s, later <= 0.6 s,
opacity <= 0.4 s. Bounded at about 3 minutes (most of it Evaluate's cold scoring).

**AppTest** (``--apptest``): the earlier in-process figures - cold Home against a bare
``import tensorflow``, page switches, opacity and method changes, and the Evaluate scoring path
against a bare ``model.predict``.

Prints figures; asserts nothing. Last line (Chromium): ``cold_diagnose_s=<x> model_ready_s=<x>
first_verdict_s=<x> later_verdict_s=<x> opacity_s=<x> method_s=<x> evaluate_cold_s=<x>
threshold_s=<x>``; with ``--apptest``: ``cold_home_vs_import_tf=<x> page_switch_s=<x>
opacity_change_s=<x> scoring_vs_bare_predict=<x>``.

    python benchmarks/app_latency.py [--data ../shared/data/chest_xray]
    python benchmarks/app_latency.py --apptest [--images 300] [--repeats 4]
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

#: The Diagnose overlay image's address (changes whenever it is drawn again).
from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_DATA,
    OVERLAY_IMG,
    READY_TEXT,
    check_prerequisites,
    serve_app,
    val_images,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 600
TIMEOUT_MS = 120_000
EVALUATE_TIMEOUT_MS = 240_000
CHANGE_MS = 30_000
OVERLAY_SRC = (
    "[...document.querySelectorAll('[data-testid=\"stImage\"]')]"
    ".find(e => e.innerText.includes('overlay'))?.querySelector('img')?.src || ''"
)

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

    from cxr_app import evaluate as app_evaluate

    # A miss every time: no scores on disk, no cache object holding any.
    shutil.rmtree(app_evaluate.score_cache_dir(), ignore_errors=True)
    app_evaluate._score_cache.clear()
    return app_evaluate.predictions(entry, table)


def scoring(root: Path, n_images: int, repeats: int) -> tuple[float, float, float]:
    """Images/s of the app's scoring and of a bare ``model.predict`` (medians), and the median
    of their ratio within each of ``repeats`` pairs (run in alternating order, so that a
    neighbour's load on a shared machine hits both sides of a pair alike)."""
    from cxr_app import catalog
    from cxr_core import data
    from cxr_core.model.build import load_model

    entry = next(e for e in catalog.discover_models() if e.problem is None)
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


def wait_changed(page, script: str, before: str) -> None:
    """Wait until ``script`` (a JS expression) evaluates to something other than ``before``."""
    page.wait_for_function(f"(before) => ({script}) !== before", arg=before, timeout=CHANGE_MS)


def timed_change(page, script: str, act) -> float:
    """Seconds from ``act()`` until ``script``'s value changes."""
    before = page.evaluate(script)
    start = time.perf_counter()
    act()
    wait_changed(page, script, before)
    return time.perf_counter() - start


def slider_step(page, label: str):
    """A function that moves the slider labelled ``label`` one step right (or back left),
    as a person does with the keyboard after clicking its handle."""
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")
    steps = iter(["ArrowRight", "ArrowLeft"] * 10)

    def step() -> None:
        thumb.focus()
        page.keyboard.press(next(steps))

    return step


def median_or_nan(label: str, measure, repeats: int) -> float:
    """The median of ``repeats`` calls of ``measure``, printed; NaN (said why) if one fails."""
    try:
        value = statistics.median(measure() for _ in range(repeats))
    except Exception as error:  # a figure that cannot be taken must not lose the others
        print(f"{label}: not measured ({type(error).__name__}: {str(error)[:120]})", flush=True)
        return float("nan")
    print(f"{label}: {value:.2f} s", flush=True)
    return value


def upload_seconds(page, path: Path) -> float:
    """Seconds from dropping ``path`` on the page's uploader to its verdict and overlay."""
    begin = time.perf_counter()
    page.locator('input[type="file"]').set_input_files(str(path), timeout=TIMEOUT_MS)
    page.get_by_text(f"{path.name}: model output").wait_for(timeout=TIMEOUT_MS)
    page.locator(OVERLAY_IMG).wait_for(timeout=TIMEOUT_MS)
    return time.perf_counter() - begin


def chromium_figures(url: str, files: list[Path]) -> dict[str, float]:
    """The Chromium measurements (see the module docstring) on a server no page has run on."""
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        start = time.perf_counter()
        page.goto(f"{url}/diagnose", timeout=TIMEOUT_MS)
        page.locator('input[type="file"]').wait_for(state="attached", timeout=TIMEOUT_MS)
        figures["cold_diagnose_s"] = time.perf_counter() - start
        page.get_by_text(READY_TEXT).wait_for(timeout=TIMEOUT_MS)
        figures["model_ready_s"] = time.perf_counter() - start
        figures["first_verdict_s"] = upload_seconds(page, files[0])
        print(", ".join(f"{k} {v:.2f} s" for k, v in figures.items()), flush=True)
        source = OVERLAY_SRC
        step = slider_step(page, "Heatmap opacity")
        figures["opacity_s"] = median_or_nan("opacity", lambda: timed_change(page, source, step), 5)
        sidebar = page.locator('[data-testid="stSidebar"]')
        methods = iter(["Grad-CAM++", "Grad-CAM"])

        def switch() -> None:
            sidebar.get_by_text(next(methods), exact=True).click()

        figures["method_s"] = median_or_nan("method", lambda: timed_change(page, source, switch), 2)
        later = []
        for path in files[1:4]:  # each in a new session: one file, one verdict on screen
            visitor = browser.new_page(viewport={"width": 1400, "height": 1600})
            visitor.goto(f"{url}/diagnose", timeout=TIMEOUT_MS)
            visitor.get_by_text(READY_TEXT).wait_for(timeout=TIMEOUT_MS)
            later.append(upload_seconds(visitor, path))
            visitor.close()
        figures["later_verdict_s"] = statistics.median(later)
        start = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Evaluate").click()
        page.get_by_text("Sensitivity").first.wait_for(timeout=EVALUATE_TIMEOUT_MS)
        figures["evaluate_cold_s"] = time.perf_counter() - start
        cards = "[...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
        cards += ".map(e => e.innerText).join('|')"
        # A 0.01 step can leave every card as it was; the gallery's caption names the threshold.
        cards += " + ((document.body.innerText.match(/at threshold [0-9.]+/) || [''])[0])"
        step = slider_step(page, "Decision threshold")
        figures["threshold_s"] = median_or_nan(
            "threshold", lambda: timed_change(page, cards, step), 3
        )
        browser.close()
    return figures


def run_chromium(data: Path) -> None:
    """Serve the app fresh, measure in Chromium, print the figures on one line."""
    check_prerequisites(data)
    with serve_app(data) as url:
        figures = chromium_figures(url, val_images(data))
    print(f"{os.cpu_count()} CPUs; headless Chromium against a fresh server (warm-up on)")
    print(" ".join(f"{name}={value:.2f}" for name, value in figures.items()))


def main() -> None:
    """Run the Chromium measurements, or with ``--apptest`` the four AppTest ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--apptest", action="store_true", help="the AppTest figures instead")
    parser.add_argument("--images", type=int, default=300, help="images scored (default 300)")
    parser.add_argument("--repeats", type=int, default=4, help="even: balanced order")
    args = parser.parse_args()
    if not args.apptest:
        run_chromium(args.data.resolve())
        return
    root = args.data.resolve()
    os.chdir(ROOT)  # the app's .streamlit/config.toml applies, as under `streamlit run`
    env = {**os.environ, "CXR_DATA": str(root), "TF_CPP_MIN_LOG_LEVEL": "2", "CXR_WARM_UP": "0"}
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
