from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kcsync.config import FolderConfig
from kcsync.model import IndexEntry, RemoteEntry, RemoteSignature
from kcsync.orphans import Verdict, judge, owner, parse_last_modified

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FOLDERS = (FolderConfig(Path("/data"), "files/", ()),)
LIVE = "files/a.bin/1700000000.000000/100/10/"


def entry(segment_size: int = 10, prefix: str | None = LIVE) -> IndexEntry:
    return IndexEntry(
        "files/a.bin",
        100,
        1,
        1,
        1,
        "m",
        segment_size,
        None,
        RemoteSignature("h", 1, None),
        segment_prefix=prefix,
        verified_ns=0,
    )


def seg(name: str, age: float = 7200) -> RemoteEntry:
    when = (NOW - timedelta(seconds=age)).replace(tzinfo=None).isoformat()
    return RemoteEntry(name, "h", 10, when)


@pytest.mark.parametrize(
    ("segment", "key", "index", "busy", "expected"),
    [
        (seg(LIVE + "00000001"), "files/a.bin", entry(), False, Verdict.KEEP),
        (
            seg("files/a.bin/1.000000/100/10/00000001"),
            "files/a.bin",
            entry(),
            False,
            Verdict.DELETE,
        ),
        (seg("files/a.bin/1.000000/100/10/00000001"), "files/a.bin", entry(), True, Verdict.KEEP),
        (
            seg("files/a.bin/1.000000/100/10/00000001", age=60),
            "files/a.bin",
            entry(),
            False,
            Verdict.KEEP,
        ),
        (
            seg("files/a.bin/1.000000/100/10/00000001"),
            "files/a.bin",
            entry(prefix=None),
            False,
            Verdict.KEEP,
        ),
        (
            seg("files/a.bin/1.000000/100/10/00000001"),
            "files/a.bin",
            entry(segment_size=0),
            False,
            Verdict.DELETE,
        ),
        (seg("files/a.bin/1.000000/100/10/00000001"), "files/a.bin", None, False, Verdict.ASK),
        (seg("other/a.bin/1.000000/100/10/00000001"), "other/a.bin", None, False, Verdict.KEEP),
    ],
    ids=[
        "live-version",
        "older-version",
        "job-running",
        "younger-than-grace",
        "foreign-slo-prefix-unknown",
        "object-now-plain",
        "no-index-entry-ask-the-bucket",
        "outside-our-prefixes",
    ],
)
def test_judge(
    segment: RemoteEntry, key: str, index: IndexEntry | None, busy: bool, expected: Verdict
) -> None:
    assert judge(segment, key, index, busy=busy, now=NOW, grace=3600, folders=FOLDERS) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("files/a.bin/1700000000.000000/100/10/00000001", "files/a.bin"),
        ("files/a/b/1700000000.5/100/10/00000001", "files/a/b"),
        ("files/a.bin/-5.000000/100/10/00000001", "files/a.bin"),
        ("files/a.bin/not-a-segment", None),
        ("files/a.bin/1/2/3/4", None),
    ],
    ids=["plain", "nested-name", "pre-1970", "not-ours", "index-not-8-digits"],
)
def test_owner(name: str, expected: str | None) -> None:
    assert owner(name) == expected


@pytest.mark.parametrize(
    "value",
    ["2026-11-23T10:00:00.123456", "2026-11-23T10:00:00.123Z"],
    ids=["swift-naive-micro", "rgw-z-milli"],
)
def test_both_listing_time_formats_are_utc(value: str) -> None:
    parsed = parse_last_modified(value)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parsed.replace(microsecond=0) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
