"""`kcsync verify`: compare every folder with the bucket and say what differs, changing
nothing (no upload, no index write, no lock taken: a daemon may run meanwhile).

By default as cheap as a no-change rerun: the same three-way merge of scan, listing and
index, and a file the index vouches for (stat and listing signature unchanged) is not
read. ``--deep`` ignores the index, hashes every file, and for large objects lists the
segments the server actually stores and compares each with its range of the file, so a
segment replaced behind kcsync's back (same size, same mtime, same manifest) shows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import structlog

from kcsync import plan
from kcsync.config import Config, FolderConfig
from kcsync.errors import EXIT_INCOMPLETE, EXIT_OK, LocalFileError, RemoteError
from kcsync.gate import Gate, ours_to_judge
from kcsync.listing import list_prefix
from kcsync.localfs import FolderUnavailable, hash_file, make_gate, scan
from kcsync.merge import OrderError, merge3
from kcsync.model import BadEntry, IndexEntry, LocalEntry, ObjectFacts, RemoteEntry
from kcsync.store.index import Index
from kcsync.swift.client import SwiftClient
from kcsync.swift.slo import bucket_tag, group_prefix, slo_etag, uniform_ranges
from kcsync.verify_plan import CHECK, Difference, Kind, after_check, first_look
from kcsync.verify_plan import stored_segments_differ as _differ

log = structlog.get_logger("kcsync.verify")


@dataclass
class Tally:
    files: int = 0
    same: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, diff: Difference | None, emit: Callable[[Difference], None]) -> None:
        with self._lock:
            if diff is None:
                self.same += 1
                return
            self.counts[diff.kind.name.lower()] = self.counts.get(diff.kind.name.lower(), 0) + 1
            self.differences.append(diff)
            emit(diff)

    @property
    def ok(self) -> bool:
        return not self.differences


class Verifier:
    def __init__(
        self,
        client: SwiftClient,
        container: str,
        segments_container: str,
        index: Index | None,
        *,
        deep: bool,
        workers: int,
        gate: Gate,
        page_size: int,
    ) -> None:
        self._client = client
        self._container = container
        self._segments = segments_container
        self._index = index
        self._deep = deep
        self._workers = max(1, workers)
        self._gate = gate
        self._page_size = page_size

    def run(self, folders: tuple[FolderConfig, ...], emit: Callable[[Difference], None]) -> Tally:
        tally = Tally()
        with ThreadPoolExecutor(self._workers, thread_name_prefix="kcsync-verify") as pool:
            window = threading.BoundedSemaphore(self._workers * 4)
            for folder in folders:
                try:
                    self._folder(folder, tally, emit, pool, window)
                except (FolderUnavailable, OrderError) as exc:
                    diff = Difference(
                        Kind.NOT_COMPARABLE, folder.prefix, str(exc), str(folder.path)
                    )
                    tally.add(diff, emit)
        return tally

    def _folder(
        self,
        folder: FolderConfig,
        tally: Tally,
        emit: Callable[[Difference], None],
        pool: ThreadPoolExecutor,
        window: threading.BoundedSemaphore,
    ) -> None:
        index: Iterator[IndexEntry] = (
            self._index.iter_sorted(folder.prefix) if self._index is not None else iter(())
        )
        merged = merge3(
            self._local(folder, tally, emit),
            lambda e: e.key,
            self._remote(folder),
            lambda e: e.name,
            index,
            lambda e: e.key,
        )
        for _, local, remote, entry in merged:
            if local is None and remote is None:
                continue
            tally.files += local is not None
            verdict = first_look(local, remote, entry, deep=self._deep)
            if verdict != CHECK:
                assert not isinstance(verdict, str)
                tally.add(verdict, emit)
                continue
            assert local is not None and remote is not None
            window.acquire()
            fut: Future[None] = pool.submit(self._checked, local, remote, entry, tally, emit)
            fut.add_done_callback(lambda _f: window.release())

    def _local(
        self, folder: FolderConfig, tally: Tally, emit: Callable[[Difference], None]
    ) -> Iterator[LocalEntry]:
        for item in scan(folder, self._gate):
            if isinstance(item, BadEntry):
                tally.files += 1
                key = item.protects or item.path
                tally.add(Difference(Kind.NOT_COMPARABLE, key, item.reason, item.path), emit)
                continue
            yield item

    def _remote(self, folder: FolderConfig) -> Iterator[RemoteEntry]:
        # As the sync lists (ranges at once where the index knows the names), so a
        # verify costs what a no-change rerun costs.
        listing = list_prefix(
            self._client, self._container, folder.prefix, self._index, page_size=self._page_size
        )
        for remote in listing:
            rel = remote.name[len(folder.prefix) :]
            # Not a name a file of this folder could have (a pseudo-directory, say),
            # excluded, or kcsync's own state: the sync never judges it either.
            if ours_to_judge(rel, folder.exclude, self._gate.state_rel(folder)):
                yield remote

    # -- the checks that read ---------------------------------------------------------------

    def _checked(
        self,
        local: LocalEntry,
        remote: RemoteEntry,
        entry: IndexEntry | None,
        tally: Tally,
        emit: Callable[[Difference], None],
    ) -> None:
        try:
            diff = self._check(local, remote, entry)
        except (LocalFileError, RemoteError) as exc:
            diff = Difference(Kind.NOT_COMPARABLE, local.key, str(exc), local.path)
        tally.add(diff, emit)

    def _check(
        self, local: LocalEntry, remote: RemoteEntry, entry: IndexEntry | None
    ) -> Difference | None:
        trusted = not self._deep and entry is not None and entry.trusts(local)
        if not plan.needs_head(remote, local):
            known = entry.md5 if trusted and entry is not None and entry.md5 else None
            whole = known or hash_file(local)[0]
            decision = plan.resolve(local, whole, remote, None, segments_match=None, strict=False)
            return after_check(local, decision)
        facts = self._client.head_object(self._container, remote.name)
        if facts is None:
            return Difference(Kind.MISSING, local.key, "gone from the bucket", local.path)
        if facts.size != local.size:
            why = f"size {local.size} locally, {facts.size} in the bucket"
            return Difference(Kind.DIFFERS, local.key, why, local.path)
        md5: str | None = None
        digest: str | None = None
        segments_match: bool | None = None
        uniform = _uniform(facts, entry)
        if uniform:
            if trusted and entry is not None and entry.holds_slo_digest:
                digest = entry.slo_etag
            else:
                _, parts = hash_file(local, uniform_ranges(local.size, uniform), whole_md5=False)
                digest = slo_etag(parts)
            # Both servers give an SLO the MD5 of its segment MD5s as Etag (apply.py).
            facts = replace(facts, slo_digest=facts.etag, segment_size=uniform)
        else:
            segments = self._foreign_segments(facts, remote)
            if segments is not None and not facts.ours:
                md5, parts = hash_file(local, _ranges([n for n, _ in segments]))
                segments_match = parts == [h for _, h in segments]
        if md5 is None and digest is None:
            md5 = entry.md5 if trusted and entry is not None and entry.md5 else hash_file(local)[0]
        decision = plan.resolve(
            local,
            md5 or "",
            remote,
            facts,
            segments_match=segments_match,
            strict=False,
            slo_digest=digest,
        )
        diff = after_check(local, decision)
        if diff is None and self._deep and local.size > 0:
            diff = self._stored_segments(local, remote, facts)
        return diff

    def _foreign_segments(
        self, facts: ObjectFacts, remote: RemoteEntry
    ) -> list[tuple[int, str]] | None:
        if facts.size == 0:
            return None
        return self._client.large_object_segments(self._container, remote.name, facts)

    def _stored_segments(
        self, local: LocalEntry, remote: RemoteEntry, facts: ObjectFacts
    ) -> Difference | None:
        """``--deep``: the segments as the server stores them now, not as the manifest
        remembers them, each against its range of the file."""
        stored = self._stored(remote, facts)
        if stored is None:
            return None  # not a large object, or nowhere to look (said by the digest check)
        sizes = [item[1] for item in stored if item is not None]
        if None in stored or sum(sizes) != local.size:
            parts: list[str] = []
        else:
            _, parts = hash_file(local, _ranges(sizes), whole_md5=False)
        reason = _differ(stored, parts)
        return None if reason is None else Difference(Kind.DIFFERS, local.key, reason, local.path)

    def _stored(
        self, remote: RemoteEntry, facts: ObjectFacts
    ) -> list[tuple[str, int, str] | None] | None:
        if facts.dlo_manifest:
            container, _, prefix = facts.dlo_manifest.partition("/")
            return [
                (e.name, e.bytes, e.hash)
                for e in self._client.list_objects(container, prefix=prefix)
            ]
        if not facts.is_slo:
            return None
        manifest = self._client.get_slo_manifest(self._container, remote.name)
        if manifest is not None:
            return self._listed(manifest)
        if facts.upload_id:  # RGW shows no manifest; kcsync's own SLOs say where they are
            prefix = group_prefix(bucket_tag(self._container), facts.upload_id)
            return [
                (e.name, e.bytes, e.hash)
                for e in self._client.list_objects(self._segments, prefix=prefix)
            ]
        return None

    def _listed(self, manifest: list[tuple[str, int, str]]) -> list[tuple[str, int, str] | None]:
        """Each segment a manifest names, as the segments container lists it now (one
        listing per container and common prefix, not one HEAD per segment)."""
        wanted: dict[str, set[str]] = {}
        for path, _, _ in manifest:
            container, _, name = path.lstrip("/").partition("/")
            wanted.setdefault(container, set()).add(name)
        found: dict[tuple[str, str], tuple[str, int, str]] = {}
        for container, names in wanted.items():
            prefix = _common_prefix(sorted(names))
            for e in self._client.list_objects(container, prefix=prefix):
                if e.name in names:
                    found[(container, e.name)] = (e.name, e.bytes, e.hash)
        out: list[tuple[str, int, str] | None] = []
        for path, _, _ in manifest:
            container, _, name = path.lstrip("/").partition("/")
            out.append(found.get((container, name)))
        return out


def _uniform(facts: ObjectFacts, entry: IndexEntry | None) -> int | None:
    if not facts.is_slo or facts.size <= 0:
        return None
    if facts.segment_size:
        return facts.segment_size
    if entry is not None and entry.holds_slo_digest:
        return entry.segment_size
    return None


def _ranges(sizes: list[int]) -> list[tuple[int, int]]:
    out, offset = [], 0
    for n in sizes:
        out.append((offset, n))
        offset += n
    return out


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    first, last = names[0], names[-1]
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def run_verify(config: Config, *, deep: bool, as_json: bool, stream: TextIO) -> int:
    """Wire a verify from the config and run it; 0 when everything is in the bucket."""
    from kcsync.daemon import DB_NAME, make_remote
    from kcsync.store.db import Database

    started = time.monotonic()
    remote = make_remote(config)
    db: Database | None = None
    index: Index | None = None
    db_path: Path = config.state_dir / DB_NAME
    if not deep and db_path.exists():
        db = Database(db_path)
        # An index of another bucket or account vouches for nothing here.
        if db.get_meta("target") == f"{remote.storage_url}|{config.bucket}":
            index = Index(db)
    verifier = Verifier(
        remote.client,
        config.bucket,
        config.large.segments_bucket,
        index,
        deep=deep,
        workers=config.workers,
        gate=make_gate(
            config.folders,
            config.state_dir,
            max_name_bytes=remote.limits.max_object_name_length,
        ),
        page_size=min(remote.limits.container_listing_limit, 10000),
    )

    def emit(diff: Difference) -> None:
        if not as_json:
            stream.write(f"{diff.kind.value}: {diff.key}: {diff.reason}\n")

    try:
        tally = verifier.run(config.folders, emit)
    finally:
        if db is not None:
            db.close()
    client = remote.client
    log.info(
        "run finished", requests=client.request_count, by_method=dict(client.requests_by_method)
    )
    elapsed = time.monotonic() - started
    if as_json:
        json.dump(
            {
                "ok": tally.ok,
                "deep": deep,
                "files": tally.files,
                "same": tally.same,
                "counts": tally.counts,
                "differences": [
                    {"kind": d.kind.name.lower(), "key": d.key, "path": d.path, "reason": d.reason}
                    for d in sorted(tally.differences, key=lambda d: d.key)
                ],
            },
            stream,
            indent=2,
        )
        stream.write("\n")
    else:
        counts = ", ".join(
            f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(tally.counts.items())
        )
        stream.write(
            f"kcsync verify{' --deep' if deep else ''}: {tally.files} files, {tally.same} as in "
            f"the bucket{', ' + counts if counts else ''} in {elapsed:.1f}s\n"
        )
    return EXIT_OK if tally.ok else EXIT_INCOMPLETE
