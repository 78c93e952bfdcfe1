"""units.py: sizes and durations as people write them."""

from __future__ import annotations

import pytest

from kcsync.units import format_size, parse_duration, parse_size

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (12345, 12345),
        ("12345", 12345),
        ("10b", 10),
        ("512KiB", 512 * KIB),
        ("64MiB", 64 * MIB),
        ("64mib", 64 * MIB),
        ("5GiB", 5 * GIB),
        ("2TiB", 2 * TIB),
        ("1k", 1000),
        ("1kb", 1000),
        ("1M", 1000**2),
        ("1MB", 1000**2),
        ("1.5 GB", 1_500_000_000),
        ("1G", 1000**3),
        ("3tb", 3 * 1000**4),
        ("  64 MiB  ", 64 * MIB),
        ("0.5KiB", 512),
        ("1.5MiB", 3 * MIB // 2),
    ],
    ids=[
        "zero-int",
        "int",
        "digits",
        "bytes-suffix",
        "kib",
        "mib",
        "mib-lowercase",
        "gib",
        "tib",
        "k-decimal",
        "kb-decimal",
        "m-decimal",
        "mb-decimal",
        "fraction-with-space",
        "g-decimal",
        "tb-decimal",
        "padded",
        "half-kib",
        "fraction-mib",
    ],
)
def test_parse_size(value, expected):
    assert parse_size(value) == expected
    assert isinstance(parse_size(value), int)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "expected a size"),
        (False, "expected a size"),
        (-1, "must not be negative"),
        ("-1MiB", "is not a size"),
        ("lots", "is not a size"),
        ("64 XB", "is not a size"),
        ("64MiBs", "is not a size"),
        ("", "is not a size"),
        ("1e6", "is not a size"),
        ("MiB", "is not a size"),
        (None, "is not a size"),
        ("1,000", "is not a size"),
    ],
    ids=[
        "bool-true",
        "bool-false",
        "negative-int",
        "negative-string",
        "word",
        "unknown-unit",
        "unit-with-trailing-s",
        "empty",
        "exponent",
        "unit-only",
        "none",
        "thousands-separator",
    ],
)
def test_parse_size_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("5M", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        (" 10 s ", 10.0),
    ],
    ids=[
        "zero",
        "int",
        "float",
        "digits",
        "seconds",
        "fractional-seconds",
        "minutes",
        "minutes-uppercase",
        "hours",
        "days",
        "padded",
    ],
)
def test_parse_duration(value, expected):
    result = parse_duration(value)
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "expected a duration"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        ("-5s", "is not a duration"),
        ("5 minutes", "is not a duration"),
        ("5ms", "is not a duration"),
        ("1w", "is not a duration"),
        ("soon", "is not a duration"),
        ("", "is not a duration"),
    ],
    ids=[
        "bool",
        "negative-int",
        "negative-float",
        "negative-string",
        "spelled-out-unit",
        "milliseconds",
        "weeks",
        "word",
        "empty",
    ],
)
def test_parse_duration_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (MIB - 1, "1024.0 KiB"),
        (64 * MIB, "64.0 MiB"),
        (5 * GIB, "5.0 GiB"),
        (3 * TIB, "3.0 TiB"),
        (2048 * TIB, "2048.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
    ids=[
        "zero",
        "one",
        "just-under-kib",
        "kib",
        "fraction",
        "rounds-not-promotes",
        "mib",
        "gib",
        "tib",
        "beyond-tib-stays-tib",
        "negative",
    ],
)
def test_format_size(n, text):
    assert format_size(n) == text


@pytest.mark.parametrize("text", ["512KiB", "64MiB", "5GiB", "2TiB"], ids=str)
def test_format_size_reads_back(text):
    number, unit = format_size(parse_size(text)).split()
    assert parse_size(f"{float(number):g}{unit}") == parse_size(text)
