"""How much server memory does one very large upload cost on the Diagnose page?

Makes a 7000 x 7000 (49-megapixel) RGB JPEG, then, each in a fresh process with the model
loaded and warmed up, runs the page's analysis of it and samples the process's resident memory
every 2 ms:

1. **before**: the path this project used until the upload limits (full decode,
   ``Predictor.explain`` on the full image, then shrinking pixels and heatmap for display);
2. **after**: ``app_support.analyse_bytes`` (JPEG decoded reduced by libjpeg's DCT scaling,
   everything at most ``DISPLAY_SIDE`` pixels on a side).

Reports the peak resident memory above the level before the call, in MB. Target: after
<= 150 MB. Uses the bundled model (``assets/models/*.keras``), else an untrained 224 px
efficientnet_lite0. Prints figures; asserts nothing.

    python benchmarks/upload_memory.py

Last line: ``before_mb=<number> after_mb=<number>``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDE = 7000


def make_jpeg(path: Path) -> None:
    """A 49-megapixel RGB JPEG with smooth X-ray-like content and some grain."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(40, 200, (350, 350), dtype=np.uint8)
    grey = Image.fromarray(small).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((SIDE, SIDE), 12)
    grey = Image.blend(grey, grain, 0.1)
    buffer = io.BytesIO()
    Image.merge("RGB", (grey, grey, grey)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())


def rss_mb() -> float:
    """Resident memory of this process, in MB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_above_baseline(call) -> float:
    """Run ``call()`` and return its peak resident memory above the level before it, in MB."""
    baseline, peak, done = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], rss_mb()) - baseline


def predictor():
    """The bundled model's Predictor, or an untrained 224 px efficientnet_lite0."""
    from cxr_core.gradcam import Predictor

    bundled = sorted((ROOT / "assets" / "models").glob("*.keras"))
    if bundled:
        return Predictor.from_path(bundled[0])
    from cxr_core.config import ModelConfig
    from cxr_core.model import build_model

    model = build_model(ModelConfig("efficientnet_lite0", "none", 224))
    return Predictor(model, {"threshold": 0.5, "image_size": 224, "backbone": "x"})


def measure(mode: str, jpeg: Path) -> float:
    """One measurement in this process: ``before`` or ``after``."""
    import numpy as np

    import app_support
    from cxr_core.imaging import read_image
    from cxr_core.scoring import shrink

    model = predictor()
    content = jpeg.read_bytes()
    warm = np.random.default_rng(1).integers(0, 255, (1200, 1000), dtype=np.uint8)
    model.explain(warm)  # trace the compiled step once, as the app's first upload does

    def before() -> None:
        decoded = read_image(content, filename="big.jpg")
        result = model.explain(decoded.pixels)
        shrink(decoded.pixels)
        shrink(result.heatmap)

    def after() -> None:
        app_support.analyse_bytes(model, content, "big.jpg")

    return peak_above_baseline(before if mode == "before" else after)


def main() -> None:
    """Measure both paths, each in a fresh process, and print the figures."""
    if len(sys.argv) == 3:  # child: mode, path
        print(json.dumps({"mb": measure(sys.argv[1], Path(sys.argv[2]))}))
        return
    with tempfile.TemporaryDirectory() as folder:
        jpeg = Path(folder) / "big.jpg"
        make_jpeg(jpeg)
        print(f"upload: {SIDE} x {SIDE} RGB JPEG, {jpeg.stat().st_size / 2**20:.1f} MB")
        figures = {}
        for mode in ("before", "after"):
            done = subprocess.run(
                [sys.executable, __file__, mode, str(jpeg)],
                capture_output=True,
                text=True,
                check=True,
            )
            figures[mode] = json.loads(done.stdout.strip().splitlines()[-1])["mb"]
            print(f"{mode:>6}: peak {figures[mode]:.0f} MB above the warmed-up process")
    print(f"before_mb={figures['before']:.0f} after_mb={figures['after']:.0f}")


if __name__ == "__main__":
    main()
