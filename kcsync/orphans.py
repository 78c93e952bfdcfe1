"""Collecting segments no manifest uses: left by killed uploads, files changed mid-upload,
or deleted before their upload finished (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum

import structlog

from kcsync.config import FolderConfig
from kcsync.model import IndexEntry, RemoteEntry
from kcsync.swift.slo import is_segment_of

log = structlog.get_logger("kcsync.orphans")


class Verdict(Enum):
    KEEP = "keep"
    DELETE = "delete"
    ASK = "ask"  # only the object itself can tell: HEAD it; absent means orphan


def owner(segment: str) -> str | None:
    """The object name a segment in our layout (name/mtime/size/segsize/index) belongs to."""
    parts = segment.rsplit("/", 4)
    if len(parts) != 5 or not is_segment_of(parts[0], segment):
        return None
    return parts[0]


def parse_last_modified(value: str) -> datetime | None:
    """Swift lists microseconds without a zone, RGW milliseconds with Z; both are UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def judge(
    segment: RemoteEntry,
    key: str,
    entry: IndexEntry | None,
    *,
    busy: bool,
    now: datetime,
    grace: float,
    folders: tuple[FolderConfig, ...],
) -> Verdict:
    """Whether one segment is garbage. Pure: every fact is passed in.

    Conservative everywhere the facts are incomplete: segments of objects outside our
    folders, of uploads that may still be running, and of SLOs whose live segment prefix
    kcsync did not record itself (written by another tool) are kept.
    """
    if not any(key.startswith(f.prefix) for f in folders):
        return Verdict.KEEP
    if busy:
        return Verdict.KEEP  # a job for it is queued or running: it may resume these
    written = parse_last_modified(segment.last_modified)
    if written is None or (now - written).total_seconds() < grace:
        return Verdict.KEEP
    if entry is None:
        return Verdict.ASK
    if entry.segment_size == 0:
        return Verdict.DELETE  # the object is a plain one now
    if entry.segment_prefix is None:
        return Verdict.KEEP
    return Verdict.KEEP if segment.name.startswith(entry.segment_prefix) else Verdict.DELETE


class OrphanCollector:
    def __init__(
        self,
        list_segments: Callable[[], Iterable[RemoteEntry]],
        object_exists: Callable[[str], bool],
        delete_segment: Callable[[str], object],
        index_get: Callable[[str], IndexEntry | None],
        busy: Callable[[str], bool],
        *,
        folders: tuple[FolderConfig, ...],
        grace: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._list = list_segments
        self._exists = object_exists
        self._delete = delete_segment
        self._index_get = index_get
        self._busy = busy
        self._folders = folders
        self._grace = grace
        self._clock = clock

    def run(self) -> int:
        now = self._clock()
        asked: dict[str, bool] = {}
        removed = 0
        for segment in self._list():
            key = owner(segment.name)
            if key is None:
                continue
            verdict = judge(
                segment,
                key,
                self._index_get(key),
                busy=self._busy(key),
                now=now,
                grace=self._grace,
                folders=self._folders,
            )
            if verdict is Verdict.ASK:
                if key not in asked:
                    asked[key] = self._exists(key)
                verdict = Verdict.KEEP if asked[key] else Verdict.DELETE
            if verdict is Verdict.DELETE:
                self._delete(segment.name)
                removed += 1
        if removed:
            log.info("orphaned segments removed", count=removed)
        return removed
