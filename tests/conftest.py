"""Shared test fixtures: a tiny generated chest X-ray dataset and the path of the real one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: The shared Kaggle copy, outside the repository; tests that need it skip when it is absent.
# No background warm-up in AppTest runs: each page loads its model in place, as before
# (tests/test_diagnose_page.py turns it on where it tests the loading state).
os.environ.setdefault("CXR_WARM_UP", "0")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest_xray"

# (split, class) -> (file name, patient) pairs in Kaggle's naming: several images per patient,
# PNG and JPEG mixed.
_TINY_FILES = {
    ("train", "NORMAL"): [
        "IM-0101-0001.jpeg",
        "IM-0101-0001-0002.jpeg",
        "IM-0102-0001.png",
        "IM-0103-0001.jpeg",
        "IM-0103-0001-0002.png",
        "IM-0104-0001.jpeg",
        "IM-0105-0001.png",
        "NORMAL2-IM-0201-0001.jpeg",
        "NORMAL2-IM-0201-0001-0002.jpeg",
        "NORMAL2-IM-0202-0001.png",
        "NORMAL2-IM-0203-0001.jpeg",
        "NORMAL2-IM-0204-0001.jpeg",
    ],
    ("train", "PNEUMONIA"): [
        "person1_bacteria_1.jpeg",
        "person1_bacteria_2.jpeg",
        "person2_virus_3.png",
        "person3_bacteria_4.jpeg",
        "person3_bacteria_5.jpeg",
        "person3_bacteria_6.png",
        "person4_virus_7.jpeg",
        "person5_bacteria_8.png",
        "person6_virus_9.jpeg",
        "person6_virus_10.jpeg",
        "person7_bacteria_11.jpeg",
        "person8_virus_12.png",
    ],
    ("val", "NORMAL"): [
        "NORMAL2-IM-1427-0001.jpeg",
        "NORMAL2-IM-1430-0001.png",
        "NORMAL2-IM-1431-0001.jpeg",
        "NORMAL2-IM-1431-0001-0002.jpeg",
    ],
    ("val", "PNEUMONIA"): [
        "person1946_bacteria_4874.jpeg",
        "person1946_bacteria_4875.png",
        "person1947_bacteria_4876.jpeg",
        "person1949_virus_4880.jpeg",
    ],
}


def synthetic_xray(label_index: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Draw a toy chest X-ray: a grey body with two dark lungs, and bright opacities if ill.

    Args:
        label_index: 0 (NORMAL: clear lungs) or 1 (PNEUMONIA: two or three bright patches).
        rng: Source of the noise and of the patch positions.
        size: Side of the square image.

    Returns:
        uint8 array ``(size, size)``.
    """
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = np.full((size, size), 30.0)
    image[((rows - 0.55) / 0.45) ** 2 + ((cols - 0.5) / 0.42) ** 2 < 1] = 120.0
    for centre in (0.3, 0.7):
        lung = ((rows - 0.5) / 0.3) ** 2 + ((cols - centre) / 0.13) ** 2 < 1
        image[lung] = 55.0
        if label_index == 1:
            for _ in range(int(rng.integers(1, 3))):
                y, x = rng.uniform(0.35, 0.65), centre + rng.uniform(-0.06, 0.06)
                patch = ((rows - y) / 0.09) ** 2 + ((cols - x) / 0.07) ** 2 < 1
                image[patch & lung] = 200.0
    image += rng.normal(0.0, 6.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a generated Kaggle-layout dataset; read-only for tests (copy it to change it).

    ``train/{NORMAL,PNEUMONIA}`` hold 12 images each (9 and 8 patients), ``val/...`` 4 each;
    64 x 64 greyscale PNG and JPEG files whose class a small CNN can learn.
    """
    root = tmp_path_factory.mktemp("tiny_dataset")
    rng = np.random.default_rng(0)
    for (split, label), names in _TINY_FILES.items():
        folder = root / split / label
        folder.mkdir(parents=True)
        for name in names:
            pixels = synthetic_xray(int(label == "PNEUMONIA"), rng)
            Image.fromarray(pixels).save(folder / name)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real shared Kaggle copy; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared dataset is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    """A folder holding one untrained small_cnn model (64 px) with a complete sidecar."""
    from tests.app_helpers import make_tiny_model

    folder = tmp_path_factory.mktemp("models")
    make_tiny_model(folder, tiny_dataset)
    return folder
