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
    bucket_tag,
    format_mtime,
    group_of,
    group_prefix,
    legacy_segment_prefix,
    manifest_body,
    new_upload_id,
    plan_segments,
    segment_name,
    slo_etag,
    upload_id_of,
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


UID = "0123456789abcdef0123456789abcdef"


def test_group_prefix_and_segment_names():
    prefix = group_prefix("photos", UID)
    assert prefix == f"photos/{UID}/"
    assert segment_name(prefix, 3) == f"photos/{UID}/00000003"
    assert group_of(segment_name(prefix, 99_999_999)) == prefix
    assert upload_id_of(prefix) == UID


def test_upload_ids_are_fresh_and_well_formed():
    ids = {new_upload_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(upload_id_of(group_prefix("b", i)) == i for i in ids)


@pytest.mark.parametrize(
    ("bucket", "tag"),
    [
        ("photos", "photos"),
        ("x" * 64, "x" * 64),
        ("x" * 65, hashlib.md5(b"x" * 65).hexdigest()),
        ("사진" * 11, hashlib.md5(("사진" * 11).encode()).hexdigest()),
    ],
    ids=["short", "at-limit", "long-hashed", "long-in-bytes-hashed"],
)
def test_bucket_tag_keeps_segment_names_short(bucket, tag):
    assert bucket_tag(bucket) == tag
    name = segment_name(group_prefix(bucket_tag(bucket), UID), 0)
    assert len(name.encode()) <= 64 + 1 + 32 + 1 + 8


@pytest.mark.parametrize(
    ("name", "group"),
    [
        (f"b/{UID}/00000000", f"b/{UID}/"),
        (f"b/{UID}/0000000", None),
        (f"b/{UID}/000000001", None),
        (f"b/{UID[:-1]}/00000000", None),
        (f"b/{UID.upper()}/00000000", None),
        (f"a/b/{UID}/00000000", None),
        ("photos/a.jpg/1700000000.500000/100/10/00000003", None),
    ],
    ids=[
        "own",
        "short-index",
        "long-index",
        "short-id",
        "upper-case-id",
        "nested",
        "legacy-layout",
    ],
)
def test_group_of(name, group):
    assert group_of(name) == group


def test_legacy_prefix_is_the_layout_before_upload_ids():
    prefix = legacy_segment_prefix("photos/a.jpg", 1_700_000_000_500_000_000, 100, 10)
    assert prefix == "photos/a.jpg/1700000000.500000/100/10/"
    assert upload_id_of(prefix) is None


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
