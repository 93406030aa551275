"""cxr_core: the library behind CXR Pneumonia Lab.

Chest X-ray pneumonia classification with Keras transfer learning, shared by the Streamlit app
(``cxr_app``), the command line (``python -m cxr_core``) and the tests. Research demo only: not a
medical device.

At the top sit the modules every layer may use (``errors``, ``fields``, ``io``, ``markdown``,
``backbones``, ``config``, ``sidecar`` and its typed sections in ``sidecar_sections`` and
``sidecar_reports``) and the command line (``cli``, its options in ``cli_parsers``, and
``cli_calibrate``). The subpackages are layered: a module may import its own subpackage and the
layers listed before its own in :data:`LAYERS`, never one after it
(``tests/core/test_layers.py`` reads every import and checks it).
"""

from cxr_core.backbones import BACKBONES, BackboneSpec, backbone_spec
from cxr_core.config import (
    CLASS_NAMES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from cxr_core.errors import (
    ConfigError,
    CXRError,
    DataError,
    InvalidImageError,
    JobError,
    ModelLoadError,
    WeightsUnavailableError,
)

#: Import layers, lowest first. A module may import its own subpackage and the units of earlier
#: layers, never a unit of its own layer or a later one; a top-level module is a unit of its own.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "markdown"),
    ("fields", "io"),
    ("backbones",),
    ("config",),
    ("stats",),
    ("sidecar_sections", "sidecar_reports"),
    ("sidecar",),
    ("imaging",),
    ("explain",),
    ("runs",),
    ("data",),
    ("distributed", "model"),
    ("inference",),
    ("evaluation",),
    ("training",),
    ("cli_calibrate",),
    ("cli_parsers",),
    ("cli",),
    ("__main__",),
)

__all__ = [
    "LAYERS",
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
