"""End to end in a real browser: the app served by `streamlit run`, driven by Chromium.

The server runs on a free port with a tiny untrained model; Playwright drops a shared Kaggle
X-ray on the Diagnose page's uploader and checks what a user sees. Screenshots go to the test's
temporary folder and, when ``CXR_SCREENSHOT_DIR`` is set, are copied there to be looked at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app_helpers import make_tiny_model
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
# Model loading and TensorFlow's start-up happen on the first page that needs them.
SLOW_MS = 120_000
TITLES = ("Home", "Diagnose", "Dataset", "Train", "Evaluate")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {seconds} s")


@contextlib.contextmanager
def serve_app(folder: Path) -> Iterator[str]:
    """Serve the app with a tiny model and the shared dataset; stop the server afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared dataset is not at {SHARED_DATA}")
    # Evaluate scores the model's validation split: sampled like 300 train images per class
    # (about 100 images), not all 783, which took most of each Evaluate test's time.
    make_tiny_model(folder / "models", SHARED_DATA, limit_per_class=300)
    port = free_port()
    env = {
        **os.environ,
        "CXR_MODELS_DIR": str(folder / "models"),
        "CXR_RUNS_DIR": str(folder / "runs"),
        "CXR_DATA": str(SHARED_DATA),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
    command += ["--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server shared by the module's tests."""
    with serve_app(tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(app_url: str) -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Any, path: Path) -> None:
    """Save a full-page screenshot, and copy it to ``$CXR_SCREENSHOT_DIR`` if that is set."""
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("CXR_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def open_app(browser: Any, app_url: str) -> Any:
    # Tall: Streamlit scrolls inside its main block, so a screenshot shows one viewport.
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    page.goto(app_url, timeout=SLOW_MS)
    page.get_by_role("heading", name="CXR Pneumonia Lab").wait_for(timeout=SLOW_MS)
    return page


def go_to(page: Any, title: str) -> None:
    """Follow the sidebar navigation link named ``title``."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=SLOW_MS)


def wait_idle(page: Any) -> None:
    """Wait until the script run has finished and lazy elements (charts, tables) are drawn."""
    busy = '[data-testid="stStatusWidget"], [data-testid="stSkeleton"]'
    page.wait_for_function(f"() => !document.querySelector('{busy}')", timeout=SLOW_MS)


def test_diagnose_page_in_chromium_shows_verdict_heatmap_and_disclaimer(browser, app_url, tmp_path):
    xray = sorted((SHARED_DATA / "val" / "PNEUMONIA").glob("*.jpeg"))[0]
    page = open_app(browser, app_url)
    go_to(page, "Diagnose")
    page.locator('input[type="file"]').set_input_files(str(xray), timeout=SLOW_MS)
    page.get_by_text(f"{xray.name}: model output").wait_for(timeout=SLOW_MS)
    overlay = page.locator('[data-testid="stImage"]').filter(has_text="overlay")
    overlay.locator("img").wait_for(timeout=SLOW_MS)
    page.get_by_text("Download report (PNG)").wait_for(timeout=SLOW_MS)
    wait_idle(page)
    body = page.locator("body").inner_text()
    screenshot(page, tmp_path / "diagnose.png")
    assert "model output" in body and ("PNEUMONIA" in body or "NORMAL" in body)
    assert "Probability of pneumonia 0." in body and "threshold 0.500" in body
    assert "Research demo - not a diagnostic device" in body
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_diagnose_shows_three_uploads_as_a_table_then_tabs_in_chromium(browser, app_url, tmp_path):
    val = SHARED_DATA / "val"
    xrays = [
        *sorted((val / "PNEUMONIA").glob("*.jpeg"))[:2],
        sorted((val / "NORMAL").glob("*.jpeg"))[0],
    ]
    page = open_app(browser, app_url)
    go_to(page, "Diagnose")
    page.locator('input[type="file"]').set_input_files([str(x) for x in xrays], timeout=SLOW_MS)
    page.get_by_text("Results for 3 files").wait_for(timeout=SLOW_MS)
    tabs = page.get_by_role("tab")
    tabs.nth(2).wait_for(timeout=SLOW_MS)
    assert [tabs.nth(i).inner_text() for i in range(3)] == [
        f"{i}. {x.name[:11] + '…' + x.name[-12:] if len(x.name) > 24 else x.name}"
        for i, x in enumerate(xrays, 1)
    ]
    wait_idle(page)
    screenshot(page, tmp_path / "diagnose_three_uploads.png")
    for index, xray in enumerate(xrays):
        tabs.nth(index).click()
        panel = page.get_by_role("tabpanel").filter(visible=True)
        panel.get_by_text(f"{xray.name}: model output").wait_for(timeout=SLOW_MS)
        images = panel.locator('[data-testid="stImage"]')
        images.nth(3).wait_for(timeout=SLOW_MS)  # drawn after the text on a loaded machine
        assert images.count() == 4  # score scale, X-ray, overlay, numbered legend
        assert "not where the disease is" in panel.inner_text()
        # Every picture is described for a screen reader.
        alts = panel.locator('[data-testid="stImage"] img').evaluate_all(
            "images => images.map(image => image.alt)"
        )
        assert len(alts) == 4 and all(alts), alts
    screenshot(page, tmp_path / "diagnose_third_tab.png")
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


@pytest.mark.parametrize(("path", "title"), [("diagnose", "Diagnose"), ("dataset", "Dataset")])
def test_deep_link_on_a_fresh_server_opens_the_page_under_the_apps_navigation(
    browser, tmp_path, path, title
):
    # A fresh server's first request runs pages/<path>.py in Streamlit's older multipage mode;
    # app_nav must hand it to the app's own navigation (titles, not file names; no dialog).
    with serve_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{url}/{path}", timeout=SLOW_MS)
        page.get_by_role("heading", name=title, exact=True).wait_for(timeout=SLOW_MS)
        wait_idle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        screenshot(page, tmp_path / f"deep_link_{path}.png")
        assert [line for line in nav.split("\n") if line in TITLES] == list(TITLES)
        assert "streamlit app" not in nav.lower()
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        page.close()


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Home", "Accelerators:"),
        ("Dataset", "Imbalance in train"),
        ("Train", "No runs yet"),
        ("Evaluate", "Specificity"),
    ],
)
def test_page_renders_in_chromium_without_error(browser, app_url, tmp_path, title, expected):
    page = open_app(browser, app_url)
    if title != "Home":
        go_to(page, title)
    page.get_by_text(expected).first.wait_for(timeout=SLOW_MS)
    wait_idle(page)
    screenshot(page, tmp_path / f"{title.lower()}.png")
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


@pytest.fixture
def request_counter() -> Iterator[tuple[str, list[str]]]:
    """A local web server that records every request (a hostile name's URL points at it)."""
    import http.server
    import threading

    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_hostile_upload_names_render_as_text_in_chromium(browser, app_url, request_counter):
    host, seen = request_counter
    xray = sorted((SHARED_DATA / "val" / "NORMAL").glob("*.jpeg"))[0].read_bytes()
    names = [f"![t]({host}/t.png).jpg", f"**bold**[link]({host}/x).png"]
    page = open_app(browser, app_url)
    go_to(page, "Diagnose")
    files = [{"name": name, "mimeType": "image/jpeg", "buffer": xray} for name in names]
    page.locator('input[type="file"]').set_input_files(files, timeout=SLOW_MS)
    page.get_by_text("Results for 2 files").wait_for(timeout=SLOW_MS)
    page.get_by_text("Download report (PNG)").first.wait_for(timeout=SLOW_MS)
    wait_idle(page)
    for index, name in enumerate(names):  # one tab per file; its label is a name too
        page.get_by_role("tab").nth(index).click()
        # Escaped names carry invisible word joiners (U+2060) that stop GFM's URL auto-linking.
        panel = page.get_by_role("tabpanel").filter(visible=True).inner_text()
        assert f"{name}: model output" in panel.replace("\u2060", ""), panel[:3000]
    links = page.locator(f'a[href^="{host}"]')
    assert links.count() == 0, [
        links.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(links.count())
    ]
    assert page.locator(f'img[src^="{host}"]').count() == 0, "a name became an image"
    assert page.locator("strong", has_text="bold").count() == 0, "a name became bold"
    page.wait_for_timeout(500)
    assert seen == [], f"the browser fetched {seen}"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_evaluate_small_split_warns_and_a_gallery_image_opens_its_grad_cam_in_chromium(
    browser, app_url, tmp_path
):
    page = open_app(browser, app_url)
    go_to(page, "Evaluate")
    page.get_by_text("Specificity").first.wait_for(timeout=SLOW_MS)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Images").click()
    page.get_by_role("option", name="val (16 images)").click()
    page.get_by_text("Only 16 images (8 PNEUMONIA): these figures are mostly noise.").wait_for(
        timeout=SLOW_MS
    )
    wait_idle(page)  # the gallery of the new split, not the old one's buttons
    page.get_by_role("button", name="Grad-CAM").first.click()
    page.get_by_text("Grad-CAM overlay").wait_for(timeout=SLOW_MS)
    wait_idle(page)
    screenshot(page, tmp_path / "evaluate_val_grad_cam.png")
    body = page.locator("body").inner_text()
    assert "(width " in body and "probability of pneumonia" in body
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
