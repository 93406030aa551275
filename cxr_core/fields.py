"""Typed reads from a JSON object that came from disk, failing with one clear sentence.

The model sidecar and a run's ``status.json``, ``history.jsonl`` and ``config.json`` are
written by this package but read back by a web app that many people use: one wrongly shaped
file must make that one model or run unusable, never a page. :class:`Fields` reads each key
once, with its type and range checked, and raises the caller's :class:`CXRError` subclass
naming the file, the key and the value received.
"""

from __future__ import annotations

import math
from typing import Any

from cxr_core.errors import CXRError

__all__ = ["Fields", "is_number", "short_repr"]


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Fields:
    """Typed access to one JSON object.

    Args:
        values: The parsed JSON value; anything but an object raises ``error``.
        source: How messages name the file, e.g. ``"cxr.json"``.
        error: The :class:`CXRError` subclass to raise.

    A key that is absent or ``null`` gives the default; ``required=True`` refuses that.
    """

    def __init__(self, values: Any, source: str, error: type[CXRError]) -> None:
        if not isinstance(values, dict):
            raise error(f"{source} must hold a JSON object. Received: {short_repr(values)}")
        self.values, self.source, self.error = values, source, error

    def fail(self, key: str, expected: str) -> None:
        """Raise the error for ``key``, saying what was ``expected``."""
        value = self.values.get(key)
        raise self.error(f"{self.source}: {key} must be {expected}. Received: {short_repr(value)}")

    def _get(self, key: str, required: bool) -> Any:
        value = self.values.get(key)
        if value is None and required:
            raise self.error(f"{self.source} lacks {key}")
        return value

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        """A string value."""
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, "a string")
        return value

    def integer(
        self,
        key: str,
        default: int | None = None,
        low: int | None = None,
        high: int | None = None,
        required: bool = False,
    ) -> int | None:
        """An integer in ``[low, high]`` (a float with an integral value is accepted)."""
        value = self._get(key, required)
        if value is None:
            return default
        if isinstance(value, float) and is_number(value) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            self.fail(key, _range("an integer", low, high))
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        low: float | None = None,
        high: float | None = None,
        required: bool = False,
    ) -> float | None:
        """A finite number in ``[low, high]``, as a float."""
        value = self._get(key, required)
        if value is None:
            return default
        ok = is_number(value) and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            self.fail(key, _range("a number", low, high))
        return float(value)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        """A JSON ``true`` or ``false``."""
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, "true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        """A JSON object (``{}`` when absent)."""
        value = self._get(key, False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, "a JSON object")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of strings (``()`` when absent)."""
        value = self._get(key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, "a list of strings")
        return tuple(value)

    def numbers(self, key: str) -> dict[str, float]:
        """A JSON object whose values are numbers; ``null`` values are dropped."""
        value = self.mapping(key)
        if not all(v is None or is_number(v) for v in value.values()):
            self.fail(key, "an object of numbers")
        return {str(k): float(v) for k, v in value.items() if v is not None}

    def sub(self, key: str) -> Fields:
        """The JSON object at ``key`` (``{}`` when absent) as :class:`Fields`."""
        return Fields(self.mapping(key), f"{self.source} {key}", self.error)


def _range(kind: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind} of at least {low}"
    return kind
