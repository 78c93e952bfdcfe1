"""Sending one file: a single PUT, or an SLO of segments with the manifest last (DESIGN §4)."""

from __future__ import annotations

import hashlib
import mimetypes
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import structlog

from kcsync.errors import FileChangedError, RemoteError, TransientRemoteError
from kcsync.localfs import FileSlice, check_unchanged, hash_file, printable, read_small
from kcsync.model import LocalEntry, RemoteSignature
from kcsync.store.segments import SegmentLedger
from kcsync.swift.client import ServerLimits, SwiftClient
from kcsync.swift.slo import (
    SegmentPlan,
    format_mtime_meta,
    group_of,
    manifest_body,
    plan_segments,
    segment_name,
    slo_etag,
    upload_id_of,
)

log = structlog.get_logger("kcsync.transfer")

# Files up to this size are read into memory once, hashed and sent from there; bigger
# plain files are hashed first and then streamed, so memory stays bounded.
SMALL_READ = 16 * 1024 * 1024
HASH_CHUNK = 1024 * 1024
# Sends of one segment whose returned Etag differs from what was hashed while sending.
SEGMENT_ATTEMPTS = 3


@dataclass(frozen=True)
class Uploaded:
    md5: str
    segment_size: int
    slo_etag: str | None
    remote: RemoteSignature
    bytes_sent: int
    segment_prefix: str | None = None


def object_headers(entry: LocalEntry, md5: str | None) -> dict[str, str]:
    """kcsync's own facts, stored on every object so a lost index can be rebuilt (§3).

    ``md5`` is the whole-file MD5 of a plain object; an SLO carries its segment digest
    instead (see ``Transfer.put_slo``).
    """
    content_type, _ = mimetypes.guess_type(entry.key, strict=False)
    headers = {
        "Content-Type": content_type or "application/octet-stream",
        "X-Object-Meta-Mtime": format_mtime_meta(entry.mtime_ns),
    }
    if md5:
        headers["X-Object-Meta-Kcsync-Md5"] = md5
    return headers


class Transfer:
    def __init__(
        self,
        client: SwiftClient,
        container: str,
        segments_container: str,
        limits: ServerLimits,
        ledger: SegmentLedger,
        *,
        segment_size: int,
        segment_workers: int,
        pace: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        # Told every block read from a file for sending: the bandwidth limit, and the
        # bytes-in-flight metric.
        self._pace = pace
        self._ledger = ledger
        self._container = container
        self._segments = segments_container
        self._limits = limits
        self._segment_size = segment_size
        self._pool = ThreadPoolExecutor(segment_workers, thread_name_prefix="kcsync-segment")
        self._segments_ready = False
        self._segments_lock = threading.Lock()
        # Bytes of PUT bodies being sent right now, whole files and segments (metrics).
        self.in_flight = 0
        self._flight_lock = threading.Lock()

    def _flying(self, n: int) -> None:
        with self._flight_lock:
            self.in_flight += n

    def _ensure_segments_container(self) -> None:
        """Created on the first large file only: most users never need it."""
        with self._segments_lock:
            if not self._segments_ready:
                if not self._client.container_exists(self._segments):
                    self._client.create_container(self._segments)
                self._segments_ready = True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def put(self, entry: LocalEntry, known_md5: str | None = None) -> Uploaded:
        if entry.size <= SMALL_READ:
            data = read_small(entry, self._pace)
            md5 = hashlib.md5(data).hexdigest()
            etag = self._put_checked(entry, data, md5)
        else:
            md5 = known_md5 or hash_file(entry)[0]
            body = FileSlice(entry, 0, entry.size, pace=self._pace)
            try:
                etag = self._put_checked(entry, body, md5)
            finally:
                body.close()
            check_unchanged(entry)
        if etag and etag != md5:
            raise RemoteError(f"{entry.key}: server stored Etag {etag}, expected {md5}")
        return Uploaded(md5, 0, None, RemoteSignature(md5, entry.size, None), entry.size)

    def _put_checked(self, entry: LocalEntry, body: bytes | FileSlice, md5: str) -> str:
        self._flying(entry.size)
        try:
            return self._client.put_object(
                self._container, entry.key, body, etag=md5, headers=object_headers(entry, md5)
            )
        except RemoteError as exc:
            if exc.status == 422:  # the bytes sent did not hash to md5: the file changed
                raise FileChangedError(f"{printable(entry.path)}: changed while sent") from exc
            raise
        finally:
            self._flying(-entry.size)

    def put_slo(self, entry: LocalEntry) -> Uploaded:
        plan = plan_segments(
            entry.size,
            self._segment_size,
            max_segments=self._limits.max_manifest_segments,
            max_segment_size=self._limits.max_file_size,
            min_segment_size=self._limits.min_segment_size,
        )
        self._ensure_segments_container()
        try:
            return self._put_slo(entry, plan)
        except _SpoiledGroup as exc:
            # The resumed group holds a segment that is not this file's: never write over it
            # (it may be what a live manifest references); start again under a new id.
            log.warning("resumed upload does not match the file; starting afresh", group=str(exc))
            self._ledger.retire(str(exc))
            return self._put_slo(entry, plan)

    def _put_slo(self, entry: LocalEntry, plan: SegmentPlan) -> Uploaded:
        # The group is recorded before its first segment goes out: a run killed from here
        # on resumes into the same names, and nothing it sent is ever anyone's guess.
        prefix, resumed = self._ledger.begin(entry, plan.segment_size, now=time.time())
        listed = self._client.list_objects(self._segments, prefix=prefix) if resumed else []
        present = {e.name: (e.hash, e.bytes) for e in listed}
        # Each segment is read, hashed and sent in one pass by its own thread, as the swift
        # CLI does: no copy of a segment is held in memory, and no thread waits for a whole
        # segment to be hashed before its first byte goes out.
        futures = [
            self._pool.submit(
                self._send_segment, entry, segment_name(prefix, i), offset, length, present
            )
            for i, (offset, length) in enumerate(plan.ranges(entry.size))
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception():
                _cancel(futures)
                raise fut.exception()  # type: ignore[misc]
        results = [fut.result() for fut in futures]
        md5s = [md5 for md5, _ in results]
        sizes = [length for _, length in plan.ranges(entry.size)]
        sent = sum(n for _, n in results)
        # Verify after every byte is read: a file appended to, rewritten or replaced
        # meanwhile (size, mtime, ctime or inode differ) must not get a manifest; its
        # segments stay in their active group for the retry, which starts a new group.
        check_unchanged(entry)
        segment_names = [segment_name(prefix, i) for i in range(plan.count)]
        manifest = manifest_body(self._segments, list(zip(segment_names, md5s, sizes, strict=True)))
        # The SLO's identity is the MD5 of its segment MD5s at this segment size: the
        # uploader computes it in parallel as it goes, while a whole-file MD5 would cost
        # one more sequential pass over the file (a CPU core at 760 MB/s). A lost index is
        # rebuilt by hashing the file's ranges at the recorded segment size (apply._check).
        expected = slo_etag(md5s)
        headers = object_headers(entry, None)
        headers["X-Object-Meta-Kcsync-Segment-Size"] = str(plan.segment_size)
        headers["X-Object-Meta-Kcsync-Slo-Etag"] = expected
        headers["X-Object-Meta-Kcsync-Upload"] = upload_id_of(prefix) or ""
        etag = self._client.put_manifest(self._container, entry.key, manifest, headers)
        if etag and etag != expected:
            raise RemoteError(f"{entry.key}: manifest Etag {etag}, expected {expected}")
        signature = self._listing_signature(entry, len(manifest))
        return Uploaded("", plan.segment_size, expected, signature, sent, prefix)

    def _send_segment(
        self,
        entry: LocalEntry,
        name: str,
        offset: int,
        length: int,
        present: dict[str, tuple[str, int]],
    ) -> tuple[str, int]:
        """PUT one segment unless a killed upload already stored it; (md5, bytes sent).

        Segments are written once: a stored one that does not hold this range is never
        overwritten (_SpoiledGroup), because a manifest may already reference it.
        """
        stored = present.get(name)
        if stored is not None:
            md5 = _hash_slice(FileSlice(entry, offset, length, hashed=True))
            if stored == (md5, length):
                return md5, 0
            raise _SpoiledGroup(group_of(name) or name)
        for _ in range(SEGMENT_ATTEMPTS):
            body = FileSlice(entry, offset, length, hashed=True, pace=self._pace)
            self._flying(length)
            try:
                etag = self._client.put_object(self._segments, name, body, etag=None, headers={})
            finally:
                body.close()
                self._flying(-length)
            md5 = body.hexdigest()
            # The server hashed what it received, we hashed what we sent: a difference is
            # damage on the way. The segment is not visible to anyone (no manifest names it
            # yet), so sending it again is enough.
            if not etag or etag == md5:
                return md5, length
            log.warning("segment damaged in transit; sending it again", segment=name)
        raise TransientRemoteError(f"{name}: the server's Etag never matched what was sent")

    def _listing_signature(self, entry: LocalEntry, manifest_len: int) -> RemoteSignature:
        """The listing entry of the manifest just written, so the next run can skip it with
        no HEAD: Swift lists the SLO's total size, RGW the manifest's length (§3)."""
        for remote in self._client.list_objects(self._container, prefix=entry.key, page_size=1):
            if remote.name == entry.key and remote.bytes in (entry.size, manifest_len):
                return RemoteSignature(remote.hash, remote.bytes, remote.last_modified)
            break
        # Not listed yet (container updates can lag): the next run HEADs once and records it.
        return RemoteSignature("", -1, None)

    def delete_groups(self, prefixes: list[str]) -> int:
        """Delete the segments of groups that nothing references any more, then forget the
        groups; how many segments went. Only names under the given prefixes are touched."""
        removed = 0
        for prefix in prefixes:
            for e in list(self._client.list_objects(self._segments, prefix=prefix)):
                removed += self._client.delete_object(self._segments, e.name)
            self._ledger.drop(prefix)
        return removed


class _SpoiledGroup(Exception):
    """A resumed group holds a segment that is not the file's; carries the group prefix."""


def _hash_slice(body: FileSlice) -> str:
    try:
        while body.read(HASH_CHUNK):
            pass
    finally:
        body.close()
    return body.hexdigest()


def _cancel(futures: list[Future[tuple[str, int]]]) -> None:
    for fut in futures:
        fut.cancel()
    wait(futures)
