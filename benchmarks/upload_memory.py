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
   visitors on one server).

Reports the peak resident memory above the level before the call, in MiB. Targets: each
single case under 400 MB, three at once under 1.5 GB. Uses the bundled model
(``assets/models/*.keras``), else an untrained 224 px efficientnet_lite0. Prints figures;
asserts nothing.

    python benchmarks/upload_memory.py [case ...]

Last line: ``<case>_mb=<number>`` (MiB) for each case.
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


FILES = {
    "jpeg_before": ("big.jpg", make_jpeg),
    "jpeg": ("big.jpg", make_jpeg),
    "rgba_png": ("rgba.png", make_rgba_png),
    "png16_rgba": ("rgba16.png", make_png16_rgba),
    "rle_dicom": ("rle.dcm", make_rle_dicom),
    "three_rgba_png": ("rgba.png", make_rgba_png),
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
        print(json.dumps({"mb": measure(sys.argv[1], Path(sys.argv[2]))}))
        return
    cases = sys.argv[1:] or list(FILES)
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
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
            figures[case] = json.loads(done.stdout.strip().splitlines()[-1])["mb"]
            size = path.stat().st_size / 2**20
            print(
                f"{case:>15}: {name} ({size:.2f} MiB file), peak {figures[case]:.0f} MiB above idle"
            )
    print(" ".join(f"{case}_mb={mb:.0f}" for case, mb in figures.items()))


if __name__ == "__main__":
    main()
