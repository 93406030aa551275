"""How much server memory does one very large upload cost on the Diagnose page?

Makes 7000 x 7000 (49-megapixel) files, then, each in a fresh process with the model loaded
and warmed up, runs the page's analysis of it and samples the process's resident memory every
2 ms. Cases:

1. **jpeg_before**: an RGB JPEG on the path this project used until the upload limits (full
   decode, ``Predictor.explain`` on the full image, then shrinking pixels and heatmap);
2. **jpeg**: the same JPEG through ``cxr_core.inference.upload.analyse_upload`` (decoded
   reduced by libjpeg's DCT scaling, everything at most ``DISPLAY_SIDE`` pixels on a side);
3. **rgba_png**: an 8-bit RGBA PNG (a few hundred KB: a decompression bomb in all but name);
4. **png16_rgba**: a 16-bit RGBA PNG (Pillow cannot hold it; OpenCV decodes it as uint16);
5. **rle_dicom**: an RLE Lossless DICOM, 16 bits allocated, 12 stored;
6. **three_rgba_png**: three RGBA PNG analyses at once, in three threads of one process (three
   visitors on one server);
7. **many_files**: one upload of ``MANY_FILES`` different ~``MANY_MIB`` MiB PNGs (4000 x 4000
   RGB noise) to the Diagnose page itself, run by Streamlit's AppTest in this process (the
   script runner, session state and upload store of a server, without its HTTP side). Only
   the first 12 are analysed; the page then drops every file's bytes and keeps the results.
   Besides the peak it reports ``held``: the resident memory still above the level before the
   files were made once the page has shown the results and the benchmark dropped its own
   copy of the files (what one such upload leaves in a server until the session ends).
   AppTest copies the staged files into its upload store, as a server holds an upload's
   body, so the peak includes the whole upload once;
8. **server_store**: a real ``streamlit run`` server (``benchmarks/browser.py``) and Chromium
   uploading ``MANY_FILES`` 1200 x 1200 noise PNGs (~4 MiB each) to Diagnose; once the
   results are shown, the bytes the server's upload store still holds (its
   ``UploadedFileManager`` figure in ``/_stcore/metrics``). Needs Chromium and Playwright;
   run only when named.

Reports the peak resident memory above the level before the call, in MiB. Targets: each
single case under 400 MB, three at once under 1.5 GB. Uses the bundled model
(``assets/models/*.keras``), else an untrained 224 px efficientnet_lite0. Prints figures;
asserts nothing.

    python benchmarks/upload_memory.py [case ...]
    CXR_BENCH_FILES=20 CXR_BENCH_MIB=48 python benchmarks/upload_memory.py many_files

Last line: ``<case>_mb=<number>`` (MiB) for each case (and ``many_files_held_mb``).
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

SIDE = 7000
#: The many_files case: files in the one upload and the size of each, in MiB (about).
MANY_FILES = int(os.environ.get("CXR_BENCH_FILES", "20"))
MANY_MIB = float(os.environ.get("CXR_BENCH_MIB", "48"))


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
    from cxr_core.inference.predictor import Predictor

    bundled = sorted((ROOT / "assets" / "models").glob("*.keras"))
    if bundled:
        return Predictor.from_path(bundled[0])
    from cxr_core.config import ModelConfig
    from cxr_core.model.build import build_model

    model = build_model(ModelConfig("efficientnet_lite0", "none", 224))
    return Predictor(model, {"threshold": 0.5, "image_size": 224, "backbone": "x"})


def make_rgba_png(path: Path) -> None:
    """A 49-megapixel 8-bit RGBA PNG of smooth content: small file, huge image."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(30, 220, SIDE, dtype=np.float32).astype(np.uint8)
    grey = Image.fromarray(np.broadcast_to(ramp, (SIDE, SIDE)).copy())
    alpha = Image.new("L", (SIDE, SIDE), 255)
    Image.merge("RGBA", (grey, grey, grey, alpha)).save(path, "PNG", optimize=True)


def make_png16_rgba(path: Path) -> None:
    """A 49-megapixel 16-bit RGBA PNG (written by OpenCV, which keeps 16 bits per channel)."""
    import cv2
    import numpy as np

    ramp = np.linspace(400, 3800, SIDE, dtype=np.float32).astype(np.uint16)
    image = np.empty((SIDE, SIDE, 4), np.uint16)
    image[..., :3] = ramp[None, :, None]
    image[..., 3] = 65535
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def make_rle_dicom(path: Path) -> None:
    """A 49-megapixel RLE Lossless DICOM, MONOCHROME2, 12 bits stored."""
    import numpy as np
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    from cxr_core.imaging.dicom import pydicom

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "DX", SIDE, SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ramp = np.linspace(200, 3900, SIDE, dtype=np.float32).astype(np.uint16)
    # Constant along each row, so RLE keeps the file small (a bomb in all but name).
    ds.PixelData = np.broadcast_to(ramp[:, None], (SIDE, SIDE)).copy().tobytes()
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)


def make_noise_png(path: Path) -> None:
    """An RGB PNG of noise (incompressible) of about ``MANY_MIB`` MiB."""
    import numpy as np
    from PIL import Image

    side = int((MANY_MIB * 2**20 / 3) ** 0.5)
    pixels = np.random.default_rng(2).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "PNG", compress_level=1)


def png_variant(content: bytes, index: int) -> bytes:
    """``content`` (a PNG) with a text chunk after its header: other bytes, the same image."""
    import struct
    import zlib

    body = b"tEXt" + b"Comment\x00" + f"copy {index}".encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return content[:33] + chunk + content[33:]  # 8-byte signature + 25-byte IHDR chunk


def measure_many(path: Path) -> dict[str, float]:
    """The many_files case (see the module docstring): peak and held MiB."""
    import gc

    from streamlit.testing.v1 import AppTest

    folder = tempfile.mkdtemp(prefix="cxr-bench-runs-")
    os.environ["CXR_RUNS_DIR"] = folder
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=1800).run()
    at.switch_page("pages/diagnose.py").run()
    warm = ("warm.png", png_variant(path.read_bytes(), -1), "image/png")
    at.file_uploader[0].set_value(warm).run()  # model loaded and traced, as on a warm server
    del warm
    gc.collect()
    baseline = rss_mb()
    base = path.read_bytes()
    files = [(f"x{i:02d}.png", png_variant(base, i), "image/png") for i in range(MANY_FILES)]
    del base

    def upload() -> None:
        at.file_uploader[0].set_value(files).run()

    peak = peak_above_baseline(upload)
    if at.exception:
        raise RuntimeError(str(at.exception))
    shown = len(at.dataframe[0].value) if at.dataframe else 0
    files.clear()
    gc.collect()
    time.sleep(1)
    held = rss_mb() - baseline
    return {"mb": peak, "held_mb": held, "analysed": shown}


def server_store(folder: Path) -> dict[str, float]:
    """The server_store case (see the module docstring): bytes uploaded and bytes held."""
    import asyncio
    import urllib.request

    import browser  # benchmarks/, on the path when this file runs as a script
    import numpy as np
    from PIL import Image

    paths = []
    for index in range(MANY_FILES):
        path = folder / f"n{index:02d}.png"
        pixels = np.random.default_rng(index).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, "PNG", compress_level=1)
        paths.append(path)
    shown = f"Results for {min(MANY_FILES, 12)} files"

    def held(url: str) -> float:
        with urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=30) as response:
            lines = response.read().decode().splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if "UploadedFileManager" in line)

    async def upload(url: str) -> float:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            chromium = await playwright.chromium.launch(
                executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS
            )
            page = await (await chromium.new_context()).new_page()
            await page.goto(f"{url}/diagnose", timeout=600_000)
            await page.get_by_text(browser.READY_TEXT).wait_for(timeout=600_000)
            files = page.locator('input[type="file"]')
            await files.set_input_files([str(path) for path in paths], timeout=600_000)
            await page.get_by_text(shown).wait_for(timeout=600_000)
            await asyncio.sleep(5)  # any late request from the browser
            figure = held(url)
            await chromium.close()
            return figure

    with browser.serve_app(browser.DEFAULT_DATA) as url:
        kept = asyncio.run(upload(url))
    return {"uploaded": sum(path.stat().st_size for path in paths) / 2**20, "held": kept / 2**20}


FILES = {
    "jpeg_before": ("big.jpg", make_jpeg),
    "jpeg": ("big.jpg", make_jpeg),
    "rgba_png": ("rgba.png", make_rgba_png),
    "png16_rgba": ("rgba16.png", make_png16_rgba),
    "rle_dicom": ("rle.dcm", make_rle_dicom),
    "three_rgba_png": ("rgba.png", make_rgba_png),
    "many_files": ("noise.png", make_noise_png),
}


def measure(case: str, path: Path) -> float:
    """One measurement in this process (see the module docstring for the cases)."""
    import numpy as np

    from cxr_core.imaging.decode import read_image
    from cxr_core.imaging.scoring import shrink
    from cxr_core.inference.upload import analyse_upload

    model = predictor()
    content = path.read_bytes()
    warm = np.random.default_rng(1).integers(0, 255, (1200, 1000), dtype=np.uint8)
    model.explain_all(warm)  # trace the compiled steps once, as the app's first upload does

    def before() -> None:
        decoded = read_image(content, filename=path.name)
        result = model.explain(decoded.pixels)
        shrink(decoded.pixels)
        shrink(result.heatmap)

    def after() -> None:
        analyse_upload(model, content, path.name)

    def three() -> None:
        threads = [threading.Thread(target=after) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    calls = {"jpeg_before": before, "three_rgba_png": three}
    return peak_above_baseline(calls.get(case, after))


def main() -> None:
    """Measure each case, each in a fresh process, and print the figures."""
    if len(sys.argv) == 3 and sys.argv[1] in FILES and Path(sys.argv[2]).is_file():
        if sys.argv[1] == "many_files":
            print(json.dumps(measure_many(Path(sys.argv[2]))))
        else:
            print(json.dumps({"mb": measure(sys.argv[1], Path(sys.argv[2]))}))
        return
    cases = sys.argv[1:] or list(FILES)
    unknown = [c for c in cases if c not in FILES and c != "server_store"]
    if unknown:
        names = ", ".join([*FILES, "server_store"])
        sys.exit(f"usage: python benchmarks/upload_memory.py [CASE ...]; cases: {names}")
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            if case == "server_store":
                store = server_store(Path(folder))
                figures["server_store_held"] = store["held"]
                print(
                    f"{case:>15}: {MANY_FILES} files, {store['uploaded']:.1f} MiB uploaded; the "
                    f"server's upload store holds {store['held']:.1f} MiB once results show"
                )
                continue
            name, make = FILES[case]
            path = Path(folder) / name
            if not path.exists():
                make(path)
            done = subprocess.run(
                [sys.executable, __file__, case, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            figures[case] = measured["mb"]
            size = path.stat().st_size / 2**20
            if case == "many_files":
                figures["many_files_held"] = measured["held_mb"]
                print(
                    f"{case:>15}: {MANY_FILES} x {name} ({size:.2f} MiB each) in one upload, "
                    f"{measured['analysed']} analysed: peak {measured['mb']:.0f} MiB, held "
                    f"after {measured['held_mb']:.0f} MiB above the level before the files"
                )
                continue
            print(
                f"{case:>15}: {name} ({size:.2f} MiB file), peak {figures[case]:.0f} MiB above idle"
            )
    print(" ".join(f"{case}_mb={mb:.0f}" for case, mb in figures.items()))


if __name__ == "__main__":
    main()
