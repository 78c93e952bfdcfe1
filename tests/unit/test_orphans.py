"""orphans.py: which retired segment groups may go, judged from facts passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kcsync.model import ObjectFacts, RemoteEntry
from kcsync.orphans import Verdict, judge, parse_last_modified, references
from kcsync.store.segments import RETIRED, Group
from kcsync.swift.slo import group_prefix, segment_name, slo_etag

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
UID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
PREFIX = group_prefix("b", UID)
GROUP = Group(PREFIX, "files/a.bin", "b", "b_segments", RETIRED)


def segs(age: float = 7200, n: int = 3) -> list[RemoteEntry]:
    when = (NOW - timedelta(seconds=age)).replace(tzinfo=None).isoformat()
    return [RemoteEntry(segment_name(PREFIX, i), f"{i:032x}", 10, when) for i in range(n)]


GROUP_ETAG = slo_etag([s.hash for s in segs()])


def slo(etag: str = "e" * 32, upload_id: str | None = None, is_slo: bool = True) -> ObjectFacts:
    return ObjectFacts(
        size=30,
        etag=etag,
        mtime=1.0,
        md5=None,
        segment_size=10,
        is_slo=is_slo,
        dlo_manifest=None,
        slo_digest=etag,
        upload_id=upload_id,
    )


@pytest.mark.parametrize(
    ("segments", "facts", "busy", "expected"),
    [
        (segs(), None, False, Verdict.DELETE),
        (segs(), slo(), False, Verdict.DELETE),
        (segs(), slo(upload_id=OTHER), False, Verdict.DELETE),
        (segs(), slo(is_slo=False), False, Verdict.DELETE),
        (segs(), slo(upload_id=UID), False, Verdict.LIVE),
        (segs(), slo(etag=GROUP_ETAG), False, Verdict.KEEP),
        (segs(), slo(etag=GROUP_ETAG, upload_id=OTHER), False, Verdict.KEEP),
        (segs(age=60), None, False, Verdict.KEEP),
        (segs()[:2] + segs(age=60)[2:], None, False, Verdict.KEEP),
        (segs(), None, True, Verdict.KEEP),
        ([], None, False, Verdict.GONE),
    ],
    ids=[
        "object-gone",
        "object-references-another-manifest",
        "object-names-another-upload",
        "object-now-plain",
        "object-names-this-upload",
        "metadata-replaced-but-etag-is-this-groups",
        "etag-is-this-groups-whatever-the-metadata",
        "younger-than-grace",
        "one-segment-younger-than-grace",
        "upload-of-the-object-queued-or-running",
        "no-segments-left",
    ],
)
def test_judge(
    segments: list[RemoteEntry], facts: ObjectFacts | None, busy: bool, expected: Verdict
) -> None:
    assert judge(GROUP, segments, lambda: facts, busy=busy, now=NOW, grace=3600) is expected


def test_judge_asks_the_server_only_when_the_cheap_rules_allow_a_delete() -> None:
    asked: list[int] = []

    def head() -> ObjectFacts | None:
        asked.append(1)
        return None

    for kwargs in ({"busy": True}, {"busy": False, "grace": 10**6}):
        judge(GROUP, segs(), head, now=NOW, **{"grace": 3600, **kwargs})  # type: ignore[arg-type]
    assert asked == []


def test_references_compares_segments_in_name_order() -> None:
    shuffled = list(reversed(segs()))
    assert references(PREFIX, shuffled, slo(etag=GROUP_ETAG))
    assert not references(PREFIX, segs(n=2), slo(etag=GROUP_ETAG))


@pytest.mark.parametrize(
    "value",
    ["2026-11-23T10:00:00.123456", "2026-11-23T10:00:00.123Z"],
    ids=["swift-naive-micro", "rgw-z-milli"],
)
def test_both_listing_time_formats_are_utc(value: str) -> None:
    parsed = parse_last_modified(value)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parsed.replace(microsecond=0) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
