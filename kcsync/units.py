"""Sizes and durations written by people ("64MiB", "1.5 GB", "30s")."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as ``64MiB``; ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 64MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size (use e.g. 512KiB, 64MiB, 5GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``30s``, ``5m``, ``1h``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 object``, ``2 objects``: counts people read (``many`` for irregular nouns)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"
