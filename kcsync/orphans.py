"""Collecting segment groups nothing references any more (DESIGN §4).

Only groups the segment ledger recorded as kcsync's own and has since retired are ever
candidates: a segment of another tool, of another kcsync sharing the segments container,
or of this bucket's live objects is never judged from its name. And a candidate is deleted
only when the server agrees: every segment is older than the grace period by the server's
clock, no upload of its object is queued or running, and the object does not reference it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum

import structlog

from kcsync.model import ObjectFacts, RemoteEntry
from kcsync.store.segments import Group, SegmentLedger
from kcsync.swift.slo import slo_etag, upload_id_of

log = structlog.get_logger("kcsync.orphans")


class Verdict(Enum):
    KEEP = "keep"  # not now: too young, or its object is being worked on
    DELETE = "delete"
    LIVE = "live"  # the object references it after all: keep it for good
    GONE = "gone"  # no segments left: forget the group


def parse_last_modified(value: str) -> datetime | None:
    """Swift lists microseconds without a zone, RGW milliseconds with Z; both are UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def references(prefix: str, segments: list[RemoteEntry], facts: ObjectFacts | None) -> bool:
    """Whether the object (as a HEAD saw it) may reference the group's segments.

    Its own metadata naming the upload says yes. So does an SLO Etag equal to the MD5 of
    the group's segment MD5s: that is what the server computed from the manifest's
    segments, and it survives another tool replacing the object's metadata (a POST). RGW
    does not show a stored manifest, so the Etag is the witness both servers give.
    """
    if facts is None or not facts.is_slo:
        return False
    if facts.upload_id is not None and facts.upload_id == upload_id_of(prefix):
        return True
    ordered = sorted(segments, key=lambda s: s.name)
    return facts.etag == slo_etag([s.hash for s in ordered])


def judge(
    group: Group,
    segments: list[RemoteEntry],
    facts: Callable[[], ObjectFacts | None],
    *,
    busy: bool,
    now: datetime,
    grace: float,
) -> Verdict:
    """What to do with one retired group. ``facts`` HEADs its object, asked only when the
    cheaper rules have not decided."""
    if not segments:
        return Verdict.GONE
    if busy:
        return Verdict.KEEP  # an upload of its object is queued or running
    times = [parse_last_modified(s.last_modified) for s in segments]
    if any(t is None or (now - t).total_seconds() < grace for t in times):
        return Verdict.KEEP
    seen = facts()
    if references(group.prefix, segments, seen):
        assert seen is not None
        own = seen.upload_id is not None and seen.upload_id == upload_id_of(group.prefix)
        return Verdict.LIVE if own else Verdict.KEEP
    return Verdict.DELETE


class OrphanCollector:
    def __init__(
        self,
        ledger: SegmentLedger,
        list_group: Callable[[str], list[RemoteEntry]],
        head: Callable[[str], ObjectFacts | None],
        delete_segment: Callable[[str], object],
        busy: Callable[[str], bool],
        *,
        grace: float,
        clock: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._ledger = ledger
        self._list = list_group
        self._head = head
        self._delete = delete_segment
        self._busy = busy
        self._grace = grace
        self._clock = clock

    def run(self) -> int:
        groups = self._ledger.retired()
        if not groups:
            return 0  # the common case costs no request at all
        now = self._clock() or datetime.now(UTC)
        heads: dict[str, ObjectFacts | None] = {}

        def facts_of(key: str) -> Callable[[], ObjectFacts | None]:
            def head() -> ObjectFacts | None:
                if key not in heads:
                    heads[key] = self._head(key)
                return heads[key]

            return head

        removed = 0
        for group in groups:
            segments = self._list(group.prefix)
            verdict = judge(
                group,
                segments,
                facts_of(group.key),
                busy=self._busy(group.key),
                now=now,
                grace=self._grace,
            )
            if verdict is Verdict.LIVE:
                self._ledger.mark_live(group.prefix)
            elif verdict is Verdict.GONE:
                self._ledger.drop(group.prefix)
            elif verdict is Verdict.DELETE:
                for segment in segments:
                    self._delete(segment.name)
                self._ledger.drop(group.prefix)
                removed += len(segments)
        if removed:
            log.info("orphaned segments removed", count=removed)
        return removed
