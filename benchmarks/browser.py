"""What the browser benchmarks share: a fresh ``streamlit run`` server and Chromium settings.

Used by ``app_latency.py`` and ``concurrent_diagnose.py``. The server serves this checkout's
app on 127.0.0.1 (a free port) with the bundled models, an empty runs folder (no score cache:
Evaluate scores cold) and the shared dataset, and the background warm-up on, as deployed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
#: Text the Diagnose page shows once its model is ready and nothing is uploaded.
READY_TEXT = "Upload one or more frontal chest X-rays"
OVERLAY_IMG = '[data-testid="stImage"]:has-text("overlay") img'


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"streamlit did not answer at {url} within {seconds} s")


@contextlib.contextmanager
def serve_app(data: Path, warm_up: bool = True) -> Iterator[str]:
    """Start ``streamlit run streamlit_app.py``; yield its URL once it answers its health
    check (no page has run yet: the first request is the caller's); stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as folder:
        port = free_port()
        env = {
            **os.environ,
            "CXR_RUNS_DIR": str(Path(folder) / "runs"),
            "CXR_DATA": str(data),
            "CXR_WARM_UP": "1" if warm_up else "0",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
        command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
        command += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
        with open(Path(folder) / "server.log", "wb") as log:
            server = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def val_images(data: Path) -> list[Path]:
    """The shared val X-rays, NORMAL and PNEUMONIA interleaved (16 on the Kaggle data)."""
    normal = sorted((data / "val" / "NORMAL").glob("*.jpeg"))
    pneumonia = sorted((data / "val" / "PNEUMONIA").glob("*.jpeg"))
    mixed = [p for pair in zip(normal, pneumonia, strict=False) for p in pair]
    return mixed + normal[len(pneumonia) :] + pneumonia[len(normal) :]


def check_prerequisites(data: Path) -> None:
    """Exit with one line when Chromium, Playwright or the val images are missing."""
    if not CHROMIUM.exists():
        sys.exit(f"error: Chromium is not installed at {CHROMIUM}")
    try:
        import playwright  # noqa: F401
    except ImportError:
        sys.exit("error: Playwright is not installed (pip install playwright)")
    if not val_images(data):
        sys.exit(f"error: no val images under {data}")
