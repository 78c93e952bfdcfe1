"""swift/slo.py: segment arithmetic, names and the manifest body."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from kcsync.model import EMPTY_MD5
from kcsync.swift.slo import (
    MIB,
    SegmentationError,
    SegmentPlan,
    format_mtime,
    is_segment_of,
    manifest_body,
    plan_segments,
    segment_name,
    segment_prefix,
    slo_etag,
)

GIB = 1024 * MIB


@pytest.mark.parametrize(
    ("total", "wanted", "max_segments", "max_segment_size", "min_size", "size", "count"),
    [
        (10, 4, 1000, 5 * GIB, 1, 4, 3),
        (8, 4, 1000, 5 * GIB, 1, 4, 2),
        (3, 4, 1000, 5 * GIB, 1, 4, 1),
        (10, 1, 1000, 5 * GIB, 4, 4, 3),
        (1000 * MIB, MIB, 1000, 5 * GIB, 1, MIB, 1000),
        (1000 * MIB + 1, MIB, 1000, 5 * GIB, 1, 2 * MIB, 501),
        (2000 * MIB, MIB, 1000, 5 * GIB, 1, 2 * MIB, 1000),
        (10 * GIB, 64 * MIB, 100, 5 * GIB, 1, 103 * MIB, 100),
        (5 * GIB, 64 * MIB, 1, 5 * GIB, 1, 5 * GIB, 1),
    ],
    ids=[
        "short-last-segment",
        "exact-multiple",
        "smaller-than-one-segment",
        "minimum-wins-over-wanted",
        "exactly-max-segments",
        "one-byte-over-max-grows-to-whole-mib",
        "grows-to-fit",
        "grows-to-whole-mib",
        "one-segment-at-object-limit",
    ],
)
def test_plan_segments(total, wanted, max_segments, max_segment_size, min_size, size, count):
    plan = plan_segments(
        total,
        wanted,
        max_segments=max_segments,
        max_segment_size=max_segment_size,
        min_segment_size=min_size,
    )
    assert plan == SegmentPlan(segment_size=size, count=count)
    assert plan.count <= max_segments
    assert plan.segment_size <= max_segment_size


@pytest.mark.parametrize(
    ("total", "max_segments", "max_segment_size", "message"),
    [
        (0, 1000, 5 * GIB, "never a large object"),
        (-1, 1000, 5 * GIB, "never a large object"),
        (5 * GIB + 1, 1, 5 * GIB, "above the server's limit of 5368709120 per object"),
        (2 * GIB, 1000, MIB, "limit of 1048576"),
    ],
    ids=["empty", "negative", "one-segment-too-big", "segment-cap-too-small"],
)
def test_plan_segments_refuses(total, max_segments, max_segment_size, message):
    with pytest.raises(SegmentationError, match=message):
        plan_segments(total, 64 * MIB, max_segments=max_segments, max_segment_size=max_segment_size)


@pytest.mark.parametrize(
    ("segment_size", "count", "total", "ranges"),
    [
        (4, 3, 10, [(0, 4), (4, 4), (8, 2)]),
        (4, 2, 8, [(0, 4), (4, 4)]),
        (4, 1, 1, [(0, 1)]),
    ],
    ids=["short-tail", "exact", "single-short"],
)
def test_segment_ranges(segment_size, count, total, ranges):
    assert SegmentPlan(segment_size, count).ranges(total) == ranges


@pytest.mark.parametrize(
    "total", [1, 4095, 4096, 4097, 1_000_003, 3 * MIB + 5], ids=lambda t: f"total-{t}"
)
def test_planned_ranges_cover_the_file_exactly(total):
    plan = plan_segments(total, 4096, max_segments=1000, max_segment_size=5 * GIB)
    ranges = plan.ranges(total)
    assert len(ranges) == plan.count
    assert ranges[0][0] == 0
    for (offset, length), (next_offset, _) in itertools.pairwise(ranges):
        assert offset + length == next_offset
    assert sum(length for _, length in ranges) == total
    assert all(0 < length <= plan.segment_size for _, length in ranges)


@pytest.mark.parametrize(
    ("mtime_ns", "text"),
    [
        (0, "0.000000"),
        (999, "0.000000"),
        (1000, "0.000001"),
        (1_500_000_000, "1.500000"),
        (1_700_000_000_123_456_789, "1700000000.123456"),
        (1_700_000_000_000_000_000, "1700000000.000000"),
        # Before 1970 (bad clocks, odd archives): must still read back as the same time.
        (-1_500_000_000, "-1.500000"),
    ],
    ids=[
        "epoch",
        "sub-microsecond",
        "one-microsecond",
        "one-and-a-half",
        "now",
        "whole",
        "pre-1970",
    ],
)
def test_format_mtime(mtime_ns, text):
    assert format_mtime(mtime_ns) == text
    assert float(format_mtime(mtime_ns)) == pytest.approx(mtime_ns / 1e9, abs=1e-6)


def test_segment_prefix_and_name():
    prefix = segment_prefix("photos/a.jpg", 1_700_000_000_500_000_000, 100, 10)
    assert prefix == "photos/a.jpg/1700000000.500000/100/10/"
    assert segment_name(prefix, 3) == "photos/a.jpg/1700000000.500000/100/10/00000003"
    assert segment_name(prefix, 12345678) == prefix + "12345678"


@pytest.mark.parametrize(
    ("changed", "value"),
    [("mtime_ns", 1_700_000_001_000_000_000), ("size", 101), ("segment_size", 20)],
    ids=["mtime", "size", "segment-size"],
)
def test_segment_prefix_differs_per_version(changed, value):
    base = {"mtime_ns": 1_700_000_000_000_000_000, "size": 100, "segment_size": 10}
    other = {**base, changed: value}
    assert segment_prefix("a", **base) != segment_prefix("a", **other)


@pytest.mark.parametrize(
    ("name", "segment", "expected"),
    [
        ("a", "a/1700000000.500000/100/10/00000000", True),
        ("a", "a/1700000000/100/10/00000007", True),
        ("dir/é.jpg", "dir/é.jpg/1.000000/5/1/00000004", True),
        ("a", "a/b/1700000000.500000/100/10/00000000", False),
        ("a", "ab/1700000000.500000/100/10/00000000", False),
        ("a", "a/1700000000.500000/100/10/0000000", False),
        ("a", "a/1700000000.500000/100/10/000000001", False),
        ("a", "a/1700000000.500000/100/00000000", False),
        ("a", "a/x.5/100/10/00000000", False),
        ("a", "a/1.5/100/10/00000000/", False),
        ("a/b", "a/1700000000.500000/100/10/00000000", False),
    ],
    ids=[
        "own-segment",
        "integer-mtime",
        "unicode-name",
        "segment-of-child-object",
        "segment-of-sibling-with-same-start",
        "short-index",
        "long-index",
        "missing-field",
        "non-numeric-mtime",
        "trailing-slash",
        "name-longer-than-segment-owner",
    ],
)
def test_is_segment_of(name, segment, expected):
    assert is_segment_of(name, segment) is expected


@pytest.mark.parametrize(
    ("name", "mtime_ns"),
    [
        ("a", 1_700_000_000_123_456_789),
        ("dir/sub/file.bin", 0),
        ("가/😀.mov", 1_234_567_890_000_001_000),
        ("old.tar", -1_500_000_000),
    ],
    ids=["plain", "nested-epoch", "unicode", "pre-1970"],
)
def test_is_segment_of_recognises_every_generated_name(name, mtime_ns):
    prefix = segment_prefix(name, mtime_ns, 10_000, 1000)
    for index in (0, 9, 99_999_999):
        assert is_segment_of(name, segment_name(prefix, index))
    # Not the segments of an object whose name extends this one.
    assert not is_segment_of(name + "x", segment_name(prefix, 0))


@pytest.mark.parametrize(
    "contents",
    [[b"a"], [b"a", b"b"], [b"x" * 10, b"y" * 3, b""]],
    ids=["one", "two", "three-with-empty"],
)
def test_slo_etag(contents):
    md5s = [hashlib.md5(c).hexdigest() for c in contents]
    expected = hashlib.md5(b"".join(m.encode() for m in md5s)).hexdigest()
    assert slo_etag(md5s) == expected
    # Not the md5 of the content itself (that is what a plain object would list).
    assert slo_etag(md5s) != hashlib.md5(b"".join(contents)).hexdigest()


def test_slo_etag_of_nothing_is_the_empty_md5():
    assert slo_etag([]) == EMPTY_MD5


def test_slo_etag_depends_on_order():
    a, b = hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()
    assert slo_etag([a, b]) != slo_etag([b, a])


def test_manifest_body():
    body = manifest_body(
        "bkt_segments",
        [("a/1.000000/7/4/00000000", "e1", 4), ("a/1.000000/7/4/00000001", "e2", 3)],
    )
    assert json.loads(body) == [
        {"path": "/bkt_segments/a/1.000000/7/4/00000000", "etag": "e1", "size_bytes": 4},
        {"path": "/bkt_segments/a/1.000000/7/4/00000001", "etag": "e2", "size_bytes": 3},
    ]
    assert b" " not in body  # compact: the manifest counts against request limits


def test_manifest_body_unicode_names_round_trip():
    body = manifest_body("segs", [("é/가/00000000", "e", 1)])
    assert isinstance(body, bytes)
    assert json.loads(body.decode("utf-8"))[0]["path"] == "/segs/é/가/00000000"


def test_manifest_body_has_no_nulls():
    # RGW answers 400 to null etag/size_bytes.
    entries = json.loads(manifest_body("s", [("x/00000000", "abc", 0)]))
    assert all(value is not None for entry in entries for value in entry.values())


@pytest.mark.parametrize(
    ("mtime_ns", "text"),
    [
        (1_700_000_000_123_456_789, "1700000000.123456789"),
        (1_700_000_000_000_000_001, "1700000000.000000001"),
        (0, "0.000000000"),
        (-1_500_000_000, "-1.500000000"),
    ],
    ids=["nanoseconds", "one-nanosecond", "epoch", "pre-1970"],
)
def test_mtime_metadata_keeps_nanoseconds_and_parses_back_exactly(mtime_ns, text):
    from kcsync.swift.slo import format_mtime_meta, parse_mtime_ns

    assert format_mtime_meta(mtime_ns) == text
    assert parse_mtime_ns(text) == mtime_ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000.5", 1_700_000_000_500_000_000),  # rclone/swift CLI forms
        ("1700000000", 1_700_000_000_000_000_000),
        ("1700000000.1234567891", 1_700_000_000_123_456_789),  # extra digits cut
        ("not a time", None),
        ("1.2.3", None),
    ],
    ids=["short-fraction", "integer", "too-many-digits", "garbage", "two-dots"],
)
def test_parse_mtime_ns(text, expected):
    from kcsync.swift.slo import parse_mtime_ns

    assert parse_mtime_ns(text) == expected
