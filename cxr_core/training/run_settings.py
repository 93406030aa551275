"""One mapping from plain settings to a :class:`~cxr_core.config.RunConfig`.

The command line's ``train`` options and the app's Train sidebar both name their values as
plain settings - ``data_root`` and the field names of :class:`ModelConfig`,
:class:`DataConfig` and :class:`TrainConfig` - and call :func:`run_config`, so the rules that
turn what a person typed into a run live here once:

- ``data_root`` is stripped, ``~``-expanded and made absolute; an empty one is refused;
- ``weights`` other than ``imagenet`` or ``none`` must be an existing weights file;
- ``finetune_epochs`` left unset (None) is 0 for a from-scratch backbone (one phase of
  ``head_epochs``) and :class:`TrainConfig`'s default otherwise;
- ``limit_per_class`` 0 or None means every image;
- numbers and switches are converted from what widgets and parsers give (``"3"``, ``3.0``,
  ``numpy.int64``); a value that is not one raises :class:`ConfigError` naming the setting.

Everything else (ranges, choices) is checked by the dataclasses themselves, whose messages end
in ``Received: name=value``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import ConfigError

__all__ = ["SECTIONS", "SETTING_NAMES", "default_settings", "run_config"]

#: Each section of a RunConfig and the dataclass that holds it.
SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_SECTION_OF = {f.name: name for name, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
#: Every setting :func:`run_config` accepts.
SETTING_NAMES: tuple[str, ...] = ("data_root", *_SECTION_OF)
_OPTIONAL_INTS = {"limit_per_class", "lr_reference_batch", "finetune_epochs"}


def default_settings() -> dict[str, Any]:
    """Every setting but ``data_root`` at its dataclass default (``finetune_epochs`` None)."""
    values = {f.name: f.default for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
    return {**values, "finetune_epochs": None}


def run_config(settings: Mapping[str, Any]) -> RunConfig:
    """Build and check the RunConfig of plain ``settings`` (names from :data:`SETTING_NAMES`).

    Settings left out take their dataclass defaults.

    Raises:
        ConfigError: An unknown setting, an empty ``data_root``, a missing weights file, or a
            value of the wrong kind or out of range; the message names the setting.
    """
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        name = unknown[0]
        raise ConfigError(f"{name} is not a training setting. Received: {name}={settings[name]!r}")
    values = {**default_settings(), **settings}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for name in _SECTION_OF:
        sections[_SECTION_OF[name]][name] = _converted(name, values[name])
    model, train = sections["model"], sections["train"]
    model["weights"] = _weights(model["weights"])
    if train["finetune_epochs"] is None:
        scratch = model["weights"].lower() == "none"
        train["finetune_epochs"] = 0 if scratch else TrainConfig.finetune_epochs
    if not sections["data"]["limit_per_class"]:
        sections["data"]["limit_per_class"] = None
    return RunConfig(
        data_root=_data_root(values.get("data_root")),
        model=ModelConfig(**model),
        data=DataConfig(**sections["data"]),
        train=TrainConfig(**train),
    )


def _data_root(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ConfigError(
            "choose a dataset folder (train/ and val/ holding NORMAL/ and PNEUMONIA/). "
            "Received: data_root=''"
        )
    return str(Path(text).expanduser().resolve())


def _weights(value: Any) -> str:
    text = str(value or "").strip()
    if text.lower() in ("imagenet", "none"):
        return text
    if text and Path(text).expanduser().is_file():
        return str(Path(text).expanduser())
    raise ConfigError(
        f"weights must be 'imagenet', 'none' or an existing weights file. Received: "
        f"weights={text!r}"
    )


def _converted(name: str, value: Any) -> Any:
    """``value`` as the type the dataclass default of ``name`` has."""
    kind = SECTIONS[_SECTION_OF[name]]
    default = next(f.default for f in dataclasses.fields(kind) if f.name == name)
    if name in _OPTIONAL_INTS:
        return None if value is None or value == "" else _integer(name, value)
    if isinstance(default, bool):
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name} must be true or false. Received: {name}={value!r}")
    if isinstance(default, int):
        return _integer(name, value)
    if isinstance(default, float):
        return _number(name, value)
    return value if value is None else str(value).strip()


def _number(name: str, value: Any, kind: str = "a number") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"{name} must be {kind}. Received: {name}={value!r}")
    return number


def _integer(name: str, value: Any) -> int:
    number = _number(name, value, "an integer")
    if number != int(number):
        raise ConfigError(f"{name} must be an integer. Received: {name}={value!r}")
    return int(number)
