"""Hostile files, built on the spot: unreadable uploads on the Diagnose page, decompression
bombs, malformed or non-regular files on disk, and writes that hit a full or read-only disk.
Each asserts the one-line error or the friendly message, and no traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_helpers import point_app_at

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")


@pytest.fixture
def diagnose(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> AppTest:
    point_app_at(monkeypatch, tiny_model_dir, tmp_path / "runs", tiny_dataset)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/diagnose.py").run()
    assert not at.exception, at.exception
    return at


def truncated_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (200, 200), 90).save(buffer, "PNG")
    return buffer.getvalue()[:60]


UNREADABLE = [
    ("empty.png", b""),
    ("cut.png", truncated_png()),
    ("drawing.png", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
    ("page.png", b"<!doctype html><html><body>hi</body></html>"),
    ("anim.gif", b"GIF89a" + bytes(64)),
    ("notes.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"),
]


@pytest.mark.parametrize("count", [1, 2])
def test_diagnose_shows_only_the_friendly_message_when_no_file_is_readable(diagnose, count):
    files = [(name, data, "image/png") for name, data in UNREADABLE[:count]]
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    errors = [e.value for e in diagnose.error]
    assert len(errors) == count and all("could not be analysed" in e for e in errors)


def test_diagnose_names_each_unreadable_kind(diagnose):
    files = [(name, data, "image/png") for name, data in UNREADABLE]
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    assert len(diagnose.error) == len(UNREADABLE)
    assert len(diagnose.dataframe[0].value) == len(UNREADABLE)


# --- Defect 1: decoding to a bounded budget -------------------------------------------------


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rgba_png(width: int, height: int) -> bytes:
    """White, opaque on the left half and transparent on the right: composites to a split."""
    import numpy as np
    from PIL import Image

    rgba = np.full((height, width, 4), 255, np.uint8)
    rgba[:, width // 2 :, 3] = 0
    return png(Image.fromarray(rgba))


def numpy_peak_bytes(call) -> int:
    """Peak bytes NumPy allocated during ``call()`` (tracemalloc sees NumPy's buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_rgba_png_is_reduced_in_strips_without_float_copies_of_the_whole_image():
    from cxr_core.imaging.decode import read_image

    data = rgba_png(4000, 3000)
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1000, 1333)  # 1/3: the longer side stays >= 1024
    assert "decoded at 1/3 scale" in decoded.info["note"]
    assert decoded.pixels[:, :600].min() == 255 and decoded.pixels[:, 700:].max() == 0
    # The old path made float64 RGBA copies: over 60 bytes per source pixel.
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 1.5 * 4000 * 3000


def test_a_16bit_rgba_png_is_reduced_and_stretched_within_budget():
    import cv2
    import numpy as np

    from cxr_core.imaging.decode import read_image

    image = np.zeros((2400, 3000, 4), np.uint16)
    image[..., :3] = np.linspace(1000, 3000, 3000, dtype=np.float32).astype(np.uint16)[:, None]
    image[..., 3] = 65535
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    data = encoded.tobytes()
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1200, 1500) and decoded.info["bit_depth"] == 16
    assert decoded.pixels[:, 0].max() <= 1 and decoded.pixels[:, -1].min() >= 254
    # OpenCV's uint16 RGBA buffer is 8 bytes per pixel; the whole stays under the budget of
    # 12 bytes per source pixel (the old path's float64 copies took over 50).
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 12 * 2400 * 3000


def test_an_rle_dicom_is_reduced_before_float_conversion():
    import numpy as np
    from pydicom import dcmread
    from pydicom.uid import RLELossless

    from cxr_core.imaging.decode import read_image
    from tests.core.imaging.test_imaging import dicom_bytes

    pixels = np.tile(np.linspace(100, 4000, 2400).astype(np.uint16), (2000, 1))
    dataset = dcmread(io.BytesIO(dicom_bytes(pixels)))
    dataset.compress(RLELossless)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    data = buffer.getvalue()
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1000, 1200)
    assert (decoded.info["width"], decoded.info["height"]) == (2400, 2000)
    assert "decoded at 1/2 scale" in decoded.info["note"]
    assert decoded.pixels[:, 0].max() <= 1 and decoded.pixels[:, -1].min() >= 254
    # pydicom's RLE decoding costs a few bytes per pixel; the whole stays under the budget of
    # 12 bytes per source pixel (the old path's float64 copies of the frame took over 25).
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 12 * 2400 * 2000


def test_a_decompression_bomb_is_refused_from_its_header():
    import struct
    import zlib

    from cxr_core.errors import InvalidImageError
    from cxr_core.imaging import decode as imaging
    from cxr_core.imaging.decoded import TOO_MANY_PIXELS

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 6, 0, 0, 0)  # 3.6 gigapixels RGBA
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(InvalidImageError) as caught:
        imaging.read_image(bomb, max_side=1024)
    assert str(caught.value) == TOO_MANY_PIXELS


# --- Defect 5: malformed or non-regular files on disk ---------------------------------------


def deep_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def copy_model(source: Path, folder: Path) -> Path:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for path in source.glob("tiny*"):
        shutil.copy(path, folder / path.name)
    return folder / "tiny.keras"


@pytest.mark.parametrize(
    "sidecar",
    [deep_json(200_000), '{"image_size": ' + "9" * 5000 + "}", "[" * 100_000],
    ids=["nested", "huge-number", "open-brackets"],
)
def test_a_hostile_sidecar_makes_the_model_unusable_with_one_line(
    tiny_model_dir, tmp_path, sidecar
):
    from cxr_core.errors import ModelLoadError
    from cxr_core.sidecar import check_model_file, sidecar_path

    model = copy_model(tiny_model_dir, tmp_path / "models")
    sidecar_path(model).write_text(sidecar, encoding="utf-8")
    with pytest.raises(ModelLoadError) as caught:
        check_model_file(model)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_a_status_nested_100000_deep_is_a_run_file_error(tmp_path):
    from cxr_core.errors import RunFileError
    from cxr_core.runs.files import RunPaths, read_status

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    paths.status.write_text(deep_json(100_000), encoding="utf-8")
    with pytest.raises(RunFileError, match="nested more than"):
        read_status(paths)


def test_a_fifo_named_status_json_is_refused_without_hanging(tmp_path):
    import os

    from cxr_core.errors import RunFileError
    from cxr_core.runs.files import RunPaths, read_json, read_status

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    os.mkfifo(paths.status)  # nobody writes: opening it for reading would block for good
    with pytest.raises(RunFileError, match="not a regular file"):
        read_status(paths)
    assert read_json(paths.status) == {}


def test_home_lists_a_model_with_a_hostile_sidecar_as_unusable(
    monkeypatch, tmp_path, tiny_model_dir, tiny_dataset
):
    from cxr_core.sidecar import sidecar_path

    models = tmp_path / "models"
    copy_model(tiny_model_dir, models)
    bad = copy_model(tiny_model_dir, tmp_path / "bad")
    (models / "nested.keras").write_bytes(bad.read_bytes())
    sidecar_path(models / "nested.keras").write_text(deep_json(200_000), encoding="utf-8")
    (tmp_path / "runs" / "odd").mkdir(parents=True)
    (tmp_path / "runs" / "odd" / "status.json").write_text(deep_json(100_000), encoding="utf-8")
    point_app_at(monkeypatch, models, tmp_path / "runs", tiny_dataset)
    for page in ("streamlit_app.py", "pages/train.py"):
        at = AppTest.from_file(str(ROOT / page), default_timeout=120).run()
        assert not at.exception, at.exception


def test_a_model_with_a_lambda_layer_is_unusable_when_listed(tmp_path, tiny_model_dir):
    import json
    import zipfile

    from cxr_core.errors import ModelLoadError
    from cxr_core.sidecar import check_model_file

    model = copy_model(tiny_model_dir, tmp_path / "models")
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"].append({"class_name": "Lambda", "config": {"function": "x"}})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        check_model_file(model)


def test_a_damaged_input_check_file_is_unusable_when_listed(tmp_path, tiny_model_dir):
    from cxr_core.errors import ModelLoadError
    from cxr_core.sidecar import check_model_file, read_metadata, sidecar_path

    model = copy_model(tiny_model_dir, tmp_path / "models")
    values = read_metadata(model).to_dict()
    values["input_gate"] = {"file": "tiny.gate.npz", "version": 1}
    import json

    sidecar_path(model).write_text(json.dumps(values), encoding="utf-8")
    model.with_suffix(".gate.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelLoadError, match="input check tiny.gate.npz is unusable"):
        check_model_file(model)


# --- Defect 7: a full or read-only disk -----------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), [(28, "the disk is full"), (30, "read-only")])
def test_a_failed_write_is_one_line_and_leaves_no_temporary_file(
    monkeypatch, tmp_path, code, reason
):
    import os

    from cxr_core import io as cxr_io
    from cxr_core.errors import StorageError

    def refuse(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    target = tmp_path / "out" / "status.json"
    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(StorageError) as caught:
        cxr_io.write_json_atomic(target, {"state": "running"})
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()

    def half_then_refuse(temporary: Path) -> None:
        temporary.write_bytes(b"half a file")
        raise OSError(code, os.strerror(code))

    with pytest.raises(StorageError):
        cxr_io.atomic_write(tmp_path / "out" / "model.weights.h5", half_then_refuse)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_temporary_name_keeps_the_suffix_keras_needs():
    from cxr_core.io import temporary_path

    assert temporary_path("/r/best.weights.h5").name.endswith(".tmp.weights.h5")
    assert temporary_path("/m/cxr.keras").name.startswith(".cxr.")
    assert temporary_path("/m/cxr.keras").suffix == ".keras"


def test_a_failed_status_write_at_the_end_of_a_run_still_records_the_failure(monkeypatch, tmp_path):
    from cxr_core.errors import StorageError
    from cxr_core.runs.files import RunPaths, read_status
    from cxr_core.runs.guard import StopRequest
    from cxr_core.training import train

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    train._record_failure(paths, StopRequest(paths.stop_file), "cannot write x: the disk is full")
    assert read_status(paths).state == "failed"
    assert read_status(paths).error == "cannot write x: the disk is full"

    def full(*_args, **_kwargs):
        raise StorageError("cannot write status.json: the disk is full")

    monkeypatch.setattr(train, "update_status", full)
    train._record_failure(paths, StopRequest(paths.stop_file), "again")  # no exception


# --- Defect 8: CLI on a device, a FIFO and a read-only output folder ------------------------


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_predict_refuses_a_device_or_a_fifo_with_one_line(tiny_model_dir, tmp_path, capsys, kind):
    import os

    from cxr_core.cli import main

    target = "/dev/zero"
    if kind == "fifo":
        target = str(tmp_path / "x.png")
        os.mkfifo(target)
    assert main(["predict", "--model", str(tiny_model_dir / "tiny.keras"), target]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {target}: The path is a folder, FIFO or device, not a regular file."]


def test_predict_into_a_read_only_heatmap_folder_is_one_error_line(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    import errno
    import os

    import numpy as np
    from PIL import Image

    from cxr_core.cli import main

    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96), np.uint8)).save(image)
    maps = tmp_path / "maps"
    original = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self == maps:  # as on a read-only mount (root ignores permission bits)
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    args = ["predict", "--model", str(tiny_model_dir / "tiny.keras"), "--heatmap-dir"]
    assert main([*args, str(maps), "--score-anyway", str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write {maps}: the file system is read-only"]


def test_sigterm_ends_predict_after_the_current_file_with_exit_143(tiny_model_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import numpy as np
    from PIL import Image

    files = []
    for index in range(400):
        path = tmp_path / f"x{index:03d}.png"
        Image.fromarray(np.full((64, 64), index % 250, np.uint8)).save(path)
        files.append(str(path))
    command = [sys.executable, "-m", "cxr_core", "predict", "--model"]
    process = subprocess.Popen(
        [*command, str(tiny_model_dir / "tiny.keras"), "--score-anyway", *files],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the first verdict: TensorFlow is loaded, files are going
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-2000:]
    assert time.monotonic() - sent < 5
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM)"
    assert "Traceback" not in err
