"""Carry out one job: look again, decide with plan.py, act with transfer.py, record."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from kcsync import plan
from kcsync.localfs import hash_file, restat
from kcsync.model import IndexEntry, LocalEntry, ObjectFacts, RemoteEntry, RemoteSignature
from kcsync.store.index import Index
from kcsync.swift.client import SwiftClient
from kcsync.transfer import Transfer, Uploaded

log = structlog.get_logger("kcsync.apply")

# Job kinds, stored in the queue.
UPLOAD = "upload"
CHECK = "check"
DELETE = "delete"


@dataclass(frozen=True)
class Outcome:
    action: str  # uploaded, adopted, deleted, nothing
    key: str
    bytes_sent: int = 0
    reason: str = ""


def job_payload(
    *,
    path: str | None,
    remote: RemoteEntry | None,
    reason: str,
    large: bool = False,
    basis: IndexEntry | bool | None = False,
) -> dict[str, Any]:
    """``basis`` is the index entry the decision was made on (None: there was none);
    False when the job does not come from a comparison (a watcher event)."""
    payload: dict[str, Any] = {
        "path": path,
        "remote": asdict(remote) if remote else None,
        "reason": reason,
        "large": large,
    }
    if basis is not False:
        payload["basis"] = _basis(basis if isinstance(basis, IndexEntry) else None)
    return payload


def _basis(entry: IndexEntry | None) -> list[Any] | None:
    if entry is None:
        return None
    return [entry.size, entry.mtime_ns, entry.inode, entry.md5, entry.remote.hash]


class Applier:
    def __init__(
        self,
        client: SwiftClient,
        transfer: Transfer,
        index: Index,
        container: str,
        *,
        threshold: int,
        strict: bool,
    ) -> None:
        self._client = client
        self._transfer = transfer
        self._index = index
        self._container = container
        self._threshold = threshold
        self._strict = strict

    def run(self, key: str, op: str, payload: Mapping[str, Any]) -> Outcome:
        remote = RemoteEntry(**payload["remote"]) if payload.get("remote") else None
        if op == DELETE:
            return self._delete(key, payload.get("path"), remote, bool(payload.get("large")))
        local = restat(LocalEntry(key, str(payload["path"]), 0, 0, 0, 0))
        previous = self._index.get(key)
        moved_on = "basis" in payload and payload["basis"] != _basis(previous)
        if moved_on and previous is not None and previous.stat_matches(local):
            # Another job (say, one left by a killed run) synced this very file after the
            # reconcile looked: the work is done.
            return Outcome("nothing", key, 0, "already synced")
        if op == CHECK and remote is not None:
            return self._check(local, remote, previous)
        return self._upload(local, previous, None, str(payload.get("reason", "")))

    def _upload(
        self, local: LocalEntry, previous: IndexEntry | None, md5: str | None, reason: str
    ) -> Outcome:
        result = (
            self._transfer.put_slo(local)
            if plan.use_slo(local.size, self._threshold)
            else self._transfer.put(local, md5)
        )
        self._record(local, result)
        if result.segment_size == 0 and previous is not None and previous.segment_size:
            # A plain PUT replaced our manifest: its segments are now garbage.
            self._transfer.remove_segments(local.key)
        log.info("uploaded", object=local.key, bytes=local.size, reason=reason)
        return Outcome("uploaded", local.key, result.bytes_sent, reason)

    def _record(self, local: LocalEntry, result: Uploaded) -> None:
        self._index.put(
            IndexEntry(
                key=local.key,
                size=local.size,
                mtime_ns=local.mtime_ns,
                inode=local.inode,
                ctime_ns=local.ctime_ns,
                md5=result.md5,
                segment_size=result.segment_size,
                slo_etag=result.slo_etag,
                remote=result.remote,
            )
        )

    def _check(
        self, local: LocalEntry, remote: RemoteEntry, previous: IndexEntry | None
    ) -> Outcome:
        md5 = previous.md5 if previous is not None and previous.stat_matches(local) else None
        facts: ObjectFacts | None = None
        segments_match: bool | None = None
        if plan.needs_head(remote, local):
            facts = self._client.head_object(self._container, remote.name)
            segments = self._foreign_segments(facts, local)
            if segments is not None:
                md5, parts = hash_file(local, _ranges([size for size, _ in segments]))
                segments_match = parts == [h for _, h in segments]
        if md5 is None:
            md5, _ = hash_file(local)
        decision = plan.resolve(
            local, md5, remote, facts, segments_match=segments_match, strict=self._strict
        )
        if decision.action is not plan.Action.ADOPT:
            return self._upload(local, previous, md5, decision.reason)
        large = facts is not None and (facts.is_slo or facts.dlo_manifest is not None)
        signature = RemoteSignature(
            remote.hash, remote.bytes, remote.last_modified if large else None
        )
        segment_size = (facts.segment_size or 1) if facts is not None and facts.is_slo else 0
        self._record(
            local,
            Uploaded(md5, segment_size, facts.etag if large and facts else None, signature, 0),
        )
        event = (
            "adopted" if "digest not comparable" not in decision.reason else "adopted-unverified"
        )
        (log.warning if event == "adopted-unverified" else log.info)(
            event, object=local.key, reason=decision.reason
        )
        return Outcome("adopted", local.key, 0, decision.reason)

    def _foreign_segments(
        self, facts: ObjectFacts | None, local: LocalEntry
    ) -> list[tuple[int, str]] | None:
        """(size, md5) of the segments of a manifest kcsync did not write, where the server
        tells them: Swift's stored SLO manifest, or a DLO's segment listing. RGW keeps the
        SLO manifest to itself (empty body), so there only size and mtime remain."""
        if facts is None or facts.md5 is not None or facts.size != local.size or not facts.size:
            return None
        segments: list[tuple[int, str]] | None = None
        if facts.is_slo:
            segments = self._client.get_slo_segments(self._container, local.key)
        elif facts.dlo_manifest:
            container, _, prefix = facts.dlo_manifest.partition("/")
            segments = [
                (e.bytes, e.hash) for e in self._client.list_objects(container, prefix=prefix)
            ]
        if not segments or sum(size for size, _ in segments) != local.size:
            return None
        return segments

    def _delete(
        self, key: str, path: str | None, remote: RemoteEntry | None, large: bool
    ) -> Outcome:
        if path is not None and os.path.lexists(path):
            # The file came back after the reconcile decided: never delete a live file.
            return Outcome("nothing", key, 0, "file exists again")
        previous = self._index.get(key)
        large = large or (previous is not None and previous.segment_size > 0)
        large = large or (remote is not None and remote.may_be_large_object)
        deleted = 0
        if large:
            deleted = self._client.delete_slo(self._container, key)
        if not deleted:
            # Not an SLO after all (or RGW's answer said nothing was deleted).
            self._client.delete_object(self._container, key)
        self._index.delete(key)
        log.info("deleted", object=key)
        return Outcome("deleted", key)


def _ranges(sizes: list[int]) -> list[tuple[int, int]]:
    ranges, offset = [], 0
    for size in sizes:
        ranges.append((offset, size))
        offset += size
    return ranges
