"""cxr_core: the library behind CXR Pneumonia Lab.

Chest X-ray pneumonia classification with Keras transfer learning: dataset scanning and
patient-grouped splits (``data``), model building and saving (``model``), two-phase training
(``train``), metrics (``evaluate``), image decoding (``imaging``), Grad-CAM (``gradcam``) and
background training jobs (``jobs``). The Streamlit app, the command line (``python -m cxr_core``)
and the tests all use it. Research demo only: not a medical device.
"""

from .config import (
    BACKBONES,
    CLASS_NAMES,
    BackboneSpec,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    backbone_spec,
)
from .errors import (
    ConfigError,
    CXRError,
    DataError,
    InvalidImageError,
    JobError,
    ModelLoadError,
    WeightsUnavailableError,
)

__all__ = [
    "BACKBONES",
    "CLASS_NAMES",
    "BackboneSpec",
    "CXRError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "InvalidImageError",
    "JobError",
    "ModelConfig",
    "ModelLoadError",
    "RunConfig",
    "TrainConfig",
    "WeightsUnavailableError",
    "backbone_spec",
]

__version__ = "0.1.0"
