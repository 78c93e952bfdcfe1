"""`kcsync restore`: the objects under a prefix back into a directory (issue 18).

The listing is read a page at a time; each name passes restore_names (refused or not),
each file is fetched by a pool of ``workers`` threads, large objects as parallel ranged
GETs sharing the same budget of ``workers`` GETs at once, and every file is checked
(restore_plan) before restorefs gives it its real name. When the directory is the folder
a config syncs, each restored file is recorded in the index the way ``kcsync sync``
records an upload, so the next ``kcsync --once`` sends nothing and reads nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import structlog

from kcsync.bandwidth import Pace, make_pace, no_pace
from kcsync.config import Config, FolderConfig
from kcsync.errors import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    AuthError,
    KcsyncError,
    LocalFileError,
    RemoteError,
)
from kcsync.localfs import is_excluded_path
from kcsync.model import IndexEntry, ObjectFacts, RemoteEntry, RemoteSignature
from kcsync.progress import Stats
from kcsync.restore_names import (
    ConflictFilter,
    DirTarget,
    FileTarget,
    Refused,
    base_of,
    target_of,
)
from kcsync.restore_plan import (
    Expected,
    Piece,
    SegmentHasher,
    check,
    expect,
    mtime_ns_of,
    pieces,
    same_as_local,
)
from kcsync.restorefs import Existing, Partial, RestoreDir, drop_leftovers, existing, hash_existing
from kcsync.store.index import Index
from kcsync.store.segments import SegmentLedger
from kcsync.swift.client import SwiftClient
from kcsync.swift.slo import bucket_tag, group_prefix
from kcsync.units import format_size

log = structlog.get_logger("kcsync.restore")

# Fetches of one file (or one piece) whose bytes did not hash right, or whose stream broke.
ATTEMPTS = 3
DIRECTORY_TYPE = "application/directory"


class ContentError(KcsyncError):
    """The bytes received are not what the object's digests say (after retries)."""


@dataclass(frozen=True)
class RestoreOptions:
    to: Path
    prefix: str  # what is listed
    base: str  # names are made relative to this (restore_names.base_of)
    dry_run: bool
    overwrite: bool
    workers: int
    threshold: int  # objects above it come as parallel ranged GETs
    chunk: int  # piece size when no segment boundary is known
    record: FolderConfig | None = None  # the synced folder DIR is: its index is written


@dataclass
class RestoreStats(Stats):
    """The upload side's counters, read as a restore's (``sent_bytes`` = bytes received,
    for the progress line), plus what only a restore has."""

    restored: int = 0
    directories: int = 0
    unverified: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    kept_count: int = 0
    refused_count: int = 0

    def add_kept(self, path: str, why: str) -> None:
        with self._lock:
            self.kept_count += 1
            if len(self.kept) < self.keep:
                self.kept.append((path, why))

    def add_refused(self, name: str, why: str) -> None:
        with self._lock:
            self.refused_count += 1
            if len(self.refused) < self.keep:
                self.refused.append((name, why))

    @property
    def done_files(self) -> int:
        return self.restored + self.unchanged + self.kept_count

    def report_lines(self) -> list[str]:
        lines = [f"refused: {name}: {why}" for name, why in self.refused]
        lines += [f"kept: {path}: {why}" for path, why in self.kept]
        lines += [f"failed: {name}: {why}" for name, why in self.failed]
        more = self.refused_count + self.kept_count + self.failed_count - len(lines)
        if more > 0:
            lines.append(f"... and {more} more (see the log)")
        return lines

    @property
    def incomplete(self) -> bool:
        return bool(self.refused_count or self.kept_count or self.failed_count)

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.sent_bytes / elapsed if elapsed > 0 else 0.0
        parts = [
            f"{self.restored} restored ({format_size(self.uploaded_bytes)}, {format_size(rate)}/s)",
            f"{self.unchanged} already there",
        ]
        if self.directories:
            parts.append(f"{self.directories} directories")
        if self.unverified:
            parts.append(f"{self.unverified} checked by size only")
        if self.kept_count:
            parts.append(f"{self.kept_count} kept (differ locally)")
        if self.refused_count:
            parts.append(f"{self.refused_count} refused")
        if self.failed_count:
            parts.append(f"{self.failed_count} failed")
        return f"kcsync restore: {', '.join(parts)} in {elapsed:.1f}s"


@dataclass(frozen=True)
class _Job:
    remote: RemoteEntry
    target: FileTarget


class Restorer:
    def __init__(
        self,
        client: SwiftClient,
        container: str,
        options: RestoreOptions,
        stats: RestoreStats,
        out: TextIO,
        *,
        index: Index | None = None,
        ledger: SegmentLedger | None = None,
        page_size: int = 1000,
        pace: Pace = no_pace,
    ) -> None:
        self._client = client
        self._container = container
        # Told every received block before it is written: the bandwidth limit holds for
        # restores as for uploads (one bucket per process).
        self._pace = pace
        self._opt = options
        self._stats = stats
        self._out = out
        self._out_lock = threading.Lock()
        self._index = index
        self._ledger = ledger
        self._page_size = page_size
        self._root = RestoreDir(options.to, create=not options.dry_run)
        workers = max(1, options.workers)
        # Twice as many threads as GETs: a thread that waits for its file's fsync (or a
        # journal flush) holds no GET slot, so ``workers`` GETs keep streaming meanwhile.
        self._files = ThreadPoolExecutor(2 * workers, thread_name_prefix="kcsync-restore")
        self._pieces = ThreadPoolExecutor(2 * workers, thread_name_prefix="kcsync-range")
        # At most ``workers`` GETs stream at once, whether for small files or for the
        # ranges of a large one: the same budget as the upload side.
        self._gets = threading.BoundedSemaphore(workers)
        # Restoring into a synced folder, a name is made durable before the index may
        # vouch for it (a name lost to a power cut would otherwise read as a local
        # delete); elsewhere each directory is fsynced once, at the end of the run.
        self._sync_each = options.record is not None
        self._written: set[tuple[str, ...]] = set()
        self._written_lock = threading.Lock()
        # Files submitted but not done: the listing is read no faster than they finish.
        self._window = threading.BoundedSemaphore(workers * 4)
        self._fatal: KcsyncError | None = None

    # -- the listing ------------------------------------------------------------------------

    def run(self) -> None:
        conflicts: ConflictFilter[_Job | DirTarget] = ConflictFilter()
        try:
            pages = self._client.list_pages(
                self._container, prefix=self._opt.prefix, page_size=self._page_size
            )
            for page in pages:
                for remote in page:
                    if self._fatal is not None:
                        raise self._fatal
                    marker = remote.bytes == 0 and remote.content_type == DIRECTORY_TYPE
                    target = target_of(
                        remote.name,
                        self._opt.base,
                        name_max=self._root.name_max,
                        directory_marker=marker,
                    )
                    if isinstance(target, Refused):
                        self._refuse(remote.name, target.reason)
                        continue
                    rel = remote.name[len(self._opt.base) :]
                    if isinstance(target, DirTarget):
                        rel = rel if rel.endswith("/") else rel + "/"
                        released = conflicts.push(rel, target, is_file=False)
                    else:
                        job = _Job(remote, target)
                        released = conflicts.push(rel, job, is_file=True)
                    self._release(released)
            self._release(conflicts.finish())
            self._files.shutdown(wait=True)
            self._root.sync(self._written)
        finally:
            self._files.shutdown(wait=True, cancel_futures=True)
            self._pieces.shutdown(wait=True, cancel_futures=True)
            self._root.close()
        if self._fatal is not None:
            raise self._fatal

    def _release(self, decided: list[tuple[_Job | DirTarget, str | None]]) -> None:
        for item, refusal in decided:
            if isinstance(item, DirTarget):
                self._directory(item)
            elif refusal is not None:
                self._refuse(item.remote.name, refusal)
            else:
                self._stats.add(planned_files=1, planned_bytes=item.remote.bytes)
                self._window.acquire()
                future = self._files.submit(self._file, item)
                future.add_done_callback(lambda _f: self._window.release())

    def _refuse(self, name: str, why: str) -> None:
        log.warning("refused", object=name, reason=why)
        self._stats.add_refused(name, why)

    def _say(self, line: str) -> None:
        with self._out_lock:
            self._out.write(line + "\n")

    def _directory(self, target: DirTarget) -> None:
        if self._opt.dry_run:
            if target.parts:
                self._say(f"would create directory: {target.rel}/")
            return
        try:
            with self._root.directory(target.parts, create=True):
                pass
        except LocalFileError as exc:
            self._stats.add_failed(target.rel + "/", str(exc))
            return
        if target.parts:
            self._stats.add(directories=1)

    # -- one file ---------------------------------------------------------------------------

    def _file(self, job: _Job) -> None:
        name = job.remote.name
        try:
            self._restore(job)
        except AuthError as exc:
            self._fatal = exc  # refused credentials will not get better for the next file
        except (LocalFileError, RemoteError, ContentError) as exc:
            log.warning("restore failed", object=name, error=str(exc))
            self._stats.add_failed(name, str(exc))
        except OSError as exc:
            log.warning("restore failed", object=name, error=str(exc))
            self._stats.add_failed(name, f"{exc.strerror or exc}")

    def _restore(self, job: _Job) -> None:
        remote, target = job.remote, job.target
        parents, name = target.parts[:-1], target.parts[-1]
        with self._root.directory(parents, create=not self._opt.dry_run) as dir_fd:
            now = existing(dir_fd, name)
            facts: ObjectFacts | None = None
            if now.kind in ("directory", "other"):
                raise LocalFileError(f"{target.rel}: a {now.kind} is in the way")
            if now.kind == "file" and dir_fd is not None:
                if self._vouched(remote, now):
                    self._stats.add(unchanged=1)
                    return
                facts = self._head(remote)
                expected = self._expected(remote, facts)
                same, whole, parts = self._same(dir_fd, name, now, expected, facts)
                if same:
                    if remote.bytes > self._opt.threshold or facts.is_slo:
                        drop_leftovers(dir_fd, name)
                    self._record(remote, target, facts, expected, now, whole, parts)
                    self._stats.add(unchanged=1)
                    return
                if not self._opt.overwrite:
                    self._stats.add_kept(
                        target.rel, "differs from the bucket (--overwrite replaces it)"
                    )
                    return
            elif now.kind == "symlink" and not self._opt.overwrite:
                self._stats.add_kept(
                    target.rel, "is a symlink (--overwrite replaces the link itself)"
                )
                return
            if self._opt.dry_run or dir_fd is None:
                self._say(f"would restore: {remote.name} -> {target.rel} ({remote.bytes} bytes)")
                return
            if facts is None and (remote.may_be_large_object or remote.bytes > self._opt.threshold):
                facts = self._head(remote)
            if facts is not None and facts.size > self._opt.threshold:
                self._fetch_large(dir_fd, remote, target, facts)
            else:
                self._fetch_whole(dir_fd, remote, target, facts)

    def _head(self, remote: RemoteEntry) -> ObjectFacts:
        facts = self._client.head_object(self._container, remote.name)
        if facts is None:
            raise RemoteError(f"{remote.name}: gone from the bucket since it was listed", 404)
        return facts

    def _vouched(self, remote: RemoteEntry, now: Existing) -> bool:
        """The index says this very file was synced from this very object: no read."""
        if self._index is None or self._opt.overwrite:
            return False
        entry = self._index.get(remote.name)
        return (
            entry is not None
            and (entry.size, entry.mtime_ns, entry.inode, entry.ctime_ns)
            == (now.size, now.mtime_ns, now.inode, now.ctime_ns)
            and entry.remote.matches(remote)
        )

    def _expected(self, remote: RemoteEntry, facts: ObjectFacts) -> Expected:
        segments: list[tuple[int, str]] | None = None
        if facts.dlo_manifest is not None:
            container, _, prefix = facts.dlo_manifest.partition("/")
            segments = [
                (e.bytes, e.hash) for e in self._client.list_objects(container, prefix=prefix)
            ]
        elif facts.is_slo and facts.size > 0:
            # Swift shows the stored manifest (each segment's MD5: a bad range is fetched
            # again alone); RGW answers an empty body.
            segments = self._client.get_slo_segments(self._container, remote.name)
        return expect(facts, segments)

    def _same(
        self, dir_fd: int, name: str, now: Existing, expected: Expected, facts: ObjectFacts
    ) -> tuple[bool, str | None, list[str]]:
        """Whether the file there holds the object; and the digests taken to tell."""
        if now.size != expected.size:
            return False, None, []
        whole: str | None = None
        parts: list[str] = []
        if expected.verified:
            whole, parts = hash_existing(
                dir_fd, name, expected.sizes, whole=expected.needs_whole_md5
            )
        same = same_as_local(
            expected,
            now.size,
            whole,
            parts,
            local_mtime_ns=now.mtime_ns,
            remote_mtime_ns=mtime_ns_of(facts),
        )
        return same, whole, parts

    # -- fetching ---------------------------------------------------------------------------

    def _fetch_whole(
        self, dir_fd: int, remote: RemoteEntry, target: FileTarget, facts: ObjectFacts | None
    ) -> None:
        """One GET, hashed as it streams to the temporary file."""
        expected = self._expected(remote, facts) if facts is not None else None
        name = target.parts[-1]
        if facts is not None and expected is not None and facts.size == 0 and not expected.problem:
            # Nothing to fetch: the HEAD that told a DLO from an empty file said it all.
            partial = Partial(dir_fd, name, 0, version=None, mode=self._root.file_mode)
            st = self._commit(partial, target, mtime_ns_of(facts))
            self._done(remote, target, facts, expected, st, expected.md5s[0][0], [])
            return
        reason = ""
        for attempt in range(ATTEMPTS):
            partial = Partial(dir_fd, name, 0, version=None, mode=self._root.file_mode)
            try:
                with self._gets, self._client.get_object(self._container, remote.name) as body:
                    got_facts = facts or body.facts
                    want = expected or expect(got_facts, None)
                    md5 = hashlib.md5()
                    segments = SegmentHasher(want.sizes)
                    offset = 0
                    for chunk in body.chunks():
                        self._pace(len(chunk))
                        partial.write_at(offset, chunk)
                        md5.update(chunk)
                        segments.update(chunk)
                        offset += len(chunk)
                        self._stats.add(sent_bytes=len(chunk))
                if offset != want.size:
                    reason = f"{offset} bytes received, {want.size} expected"
                else:
                    reason = check(want, md5.hexdigest(), segments.digests) or ""
                if not reason:
                    st = self._commit(partial, target, mtime_ns_of(got_facts))
                    self._done(
                        remote, target, got_facts, want, st, md5.hexdigest(), segments.digests
                    )
                    return
                if want.problem:
                    break
            except RemoteError as exc:
                if exc.status is not None and exc.status < 500 and exc.status not in (408, 429):
                    partial.discard()
                    raise
                reason = str(exc)
            except BaseException:
                partial.discard()
                raise
            partial.discard()
            log.warning("restore: retrying", object=remote.name, attempt=attempt + 1, reason=reason)
        raise ContentError(reason)

    def _fetch_large(
        self, dir_fd: int, remote: RemoteEntry, target: FileTarget, facts: ObjectFacts
    ) -> None:
        """Parallel ranged GETs into a journalled temporary file: a rerun after a kill
        fetches only the pieces the journal does not vouch for."""
        expected = self._expected(remote, facts)
        if expected.problem:
            raise ContentError(expected.problem)
        plan = pieces(facts.size, expected.sizes, self._opt.chunk)
        layout = ",".join(f"{p.offset}+{p.length}" for p in plan)
        cut = hashlib.md5(layout.encode()).hexdigest()
        version = f"{facts.etag}|{facts.size}|{remote.last_modified}|{cut}"
        name = target.parts[-1]
        for attempt in range(2):
            partial = Partial(dir_fd, name, facts.size, version=version, mode=self._root.file_mode)
            try:
                resumed = sum(plan[i].length for i in partial.done if i < len(plan))
                if resumed:
                    log.info("restore: resuming", object=remote.name, bytes_kept=resumed)
                todo = [p for p in plan if p.index not in partial.done]
                futures = [
                    self._pieces.submit(self._fetch_piece, remote.name, partial, p, expected, facts)
                    for p in todo
                ]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for fut in finished:
                    if fut.exception() is not None:
                        _cancel(futures)
                        with contextlib.suppress(OSError):
                            partial.flush()  # the journal keeps what is done for the rerun
                        partial.close()
                        raise fut.exception()  # type: ignore[misc]
                digests = [d for p in plan for d in partial.done[p.index]]
                whole = None
                if expected.needs_whole_md5:
                    whole, _ = partial.whole_md5()
                reason = check(expected, whole, digests)
                if not reason:
                    st = self._commit(partial, target, mtime_ns_of(facts))
                    self._done(remote, target, facts, expected, st, whole, digests)
                    return
            except BaseException:
                partial.close()
                raise
            # Wrong as a whole, though each piece was as the server said (or no piece had
            # a digest of its own): start over once, then report.
            partial.discard()
            log.warning("restore: retrying", object=remote.name, attempt=attempt + 1, reason=reason)
        raise ContentError(reason)

    def _fetch_piece(
        self, name: str, partial: Partial, piece: Piece, expected: Expected, facts: ObjectFacts
    ) -> None:
        start = _segment_index(expected.sizes, piece.offset)
        want = (
            expected.segment_md5s[start : start + len(piece.sizes)] if expected.segment_md5s else ()
        )
        reason = ""
        for _ in range(ATTEMPTS):
            hasher = SegmentHasher(piece.sizes)
            offset = piece.offset
            try:
                with (
                    self._gets,
                    self._client.get_object(
                        self._container, name, offset=piece.offset, length=piece.length
                    ) as body,
                ):
                    if body.facts.etag and facts.etag and body.facts.etag != facts.etag:
                        # Replaced since the HEAD: these bytes belong to another version.
                        raise ContentError(f"{name}: changed in the bucket during the restore")
                    for chunk in body.chunks():
                        self._pace(len(chunk))
                        partial.write_at(offset, chunk)
                        hasher.update(chunk)
                        offset += len(chunk)
                        self._stats.add(sent_bytes=len(chunk))
            except RemoteError as exc:
                if exc.status is not None and exc.status < 500 and exc.status not in (408, 429):
                    raise
                reason = str(exc)
                continue
            if offset != piece.offset + piece.length:
                reason = f"range at {piece.offset}: {offset - piece.offset} of {piece.length} bytes"
                continue
            if want and tuple(hasher.digests) != want:
                reason = f"range at {piece.offset}: segment MD5s differ from the manifest"
                continue
            partial.piece_done(piece.index, hasher.digests, piece.length)
            return
        raise ContentError(f"{name}: {reason}")

    def _commit(self, partial: Partial, target: FileTarget, mtime_ns: int | None) -> os.stat_result:
        st = partial.commit(mtime_ns, sync_directory=self._sync_each)
        if not self._sync_each:
            with self._written_lock:
                self._written.add(target.parts[:-1])
        return st

    # -- after --------------------------------------------------------------------------------

    def _done(
        self,
        remote: RemoteEntry,
        target: FileTarget,
        facts: ObjectFacts,
        expected: Expected,
        st: os.stat_result,
        whole: str | None,
        digests: list[str],
    ) -> None:
        self._stats.add(restored=1, uploaded_bytes=st.st_size)
        event = "restored" if expected.verified else "restored-unverified"
        if not expected.verified:
            self._stats.add(unverified=1)
        # One line per file only at debug level: at 10,000 small files, a line each cost
        # about a tenth of the run's time. The summary counts them; what was not
        # verified is a warning.
        (log.debug if expected.verified else log.warning)(
            event, object=remote.name, bytes=st.st_size, checked=expected.how
        )
        now = Existing("file", st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        self._record(remote, target, facts, expected, now, whole, digests)

    def _record(
        self,
        remote: RemoteEntry,
        target: FileTarget,
        facts: ObjectFacts,
        expected: Expected,
        now: Existing,
        whole: str | None,
        digests: list[str],
    ) -> None:
        """Into the synced folder: the index entry ``kcsync sync`` would have written had it
        uploaded (or adopted) this file, so its next run skips it on stat alone."""
        folder = self._opt.record
        if self._index is None or folder is None or not expected.verified:
            return
        rel = remote.name[len(folder.prefix) :]
        if rel != target.rel or is_excluded_path(rel, folder.exclude):
            return
        entry = index_entry(remote, facts, expected, now, whole, digests, self._container)
        if entry is None:
            return
        if self._ledger is not None:
            self._ledger.settle(remote.name, entry.segment_prefix, now=time.time())
        self._index.put(entry)


def index_entry(
    remote: RemoteEntry,
    facts: ObjectFacts,
    expected: Expected,
    now: Existing,
    whole: str | None,
    digests: list[str],
    container: str,
) -> IndexEntry | None:
    """The index entry for a restored (or found identical) file, as apply.py records an
    upload or an adoption: plain objects by MD5, kcsync SLOs by their segment digest at
    their segment size, other large objects by Etag. None when not enough is known."""
    large = facts.is_slo or facts.dlo_manifest is not None
    signature = RemoteSignature(remote.hash, remote.bytes, remote.last_modified if large else None)
    md5, segment_size, slo, prefix = whole or "", 0, None, None
    if not large:
        if not whole:
            return None
    elif facts.is_slo and facts.segment_size and digests:
        md5, segment_size, slo = "", facts.segment_size, expected.combined
        if facts.upload_id:
            prefix = group_prefix(bucket_tag(container), facts.upload_id)
    else:
        segment_size = 1 if facts.is_slo else 0
        slo = facts.etag or None
    return IndexEntry(
        key=remote.name,
        size=now.size,
        mtime_ns=now.mtime_ns,
        inode=now.inode,
        ctime_ns=now.ctime_ns,
        md5=md5,
        segment_size=segment_size,
        slo_etag=slo,
        remote=signature,
        segment_prefix=prefix,
        # The bytes were proved right before the file got its name: a write in the same
        # timestamp tick after that would go unseen, so the entry is racy (the next sync
        # hashes the file once, then trusts it).
        verified_ns=time.time_ns(),
    )


def _segment_index(sizes: tuple[int, ...], offset: int) -> int:
    """Which segment starts at ``offset`` (pieces start on segment boundaries)."""
    at = 0
    for i, n in enumerate(sizes):
        if at >= offset:
            return i
        at += n
    return len(sizes)


def _cancel(futures: list[Future[None]]) -> None:
    for fut in futures:
        fut.cancel()
    wait(futures)


def run_restore(
    config: Config,
    *,
    to: Path,
    folder: FolderConfig | None,
    prefix: str | None,
    dry_run: bool,
    overwrite: bool,
    out: TextIO,
) -> int:
    """Wire a restore from the config and run it; the exit code (0, or 1 when some file
    was refused, kept or failed)."""
    from kcsync.daemon import DB_NAME, _check_target, make_remote, state_lock
    from kcsync.progress import ProgressLine
    from kcsync.store.db import Database

    listed = folder.prefix if folder is not None else (prefix or "")
    base = base_of(listed)
    record = _synced_folder(config, to, base) if not dry_run else None
    remote = make_remote(config)
    stats = RestoreStats()
    options = RestoreOptions(
        to=to,
        prefix=listed,
        base=base,
        dry_run=dry_run,
        overwrite=overwrite,
        workers=config.workers,
        threshold=config.large.threshold,
        chunk=config.large.segment_size,
        record=record,
    )
    page = min(remote.limits.container_listing_limit, 10000)
    if not remote.client.container_exists(config.bucket):
        raise RemoteError(f"bucket {config.bucket} does not exist")
    with contextlib.ExitStack() as stack:
        index = ledger = None
        if record is not None:
            # Writing into a synced folder's index: not while a daemon syncs it.
            stack.enter_context(state_lock(config.state_dir))
            db = Database(config.state_dir / DB_NAME)
            stack.callback(db.close)
            index = Index(db)
            _check_target(db, index, remote.storage_url, config.bucket)
            ledger = SegmentLedger(db, config.bucket, config.large.segments_bucket)
            log.info("restoring into a synced folder: its index is kept", folder=str(record.path))
        restorer = Restorer(
            remote.client,
            config.bucket,
            options,
            stats,
            out,
            index=index,
            ledger=ledger,
            page_size=page,
            pace=make_pace(config.bandwidth),
        )
        progress = ProgressLine(stats)
        progress.start()
        try:
            restorer.run()
        finally:
            progress.stop()
    client = remote.client
    log.info(
        "run finished", requests=client.request_count, by_method=dict(client.requests_by_method)
    )
    for line in stats.report_lines():
        out.write(line + "\n")
    if dry_run:
        out.write(f"dry run: {stats.planned_files} files, nothing written\n")
    out.write(stats.summary() + "\n")
    return EXIT_INCOMPLETE if stats.incomplete else EXIT_OK


def _synced_folder(config: Config, to: Path, base: str) -> FolderConfig | None:
    """The configured folder that ``to`` is, restored from its own prefix: then the
    restore is a disaster recovery into the original place, and the index learns it."""
    try:
        real = to.resolve()
    except OSError:
        return None
    for folder in config.folders:
        if folder.prefix == base and folder.path.resolve() == real:
            return folder
    return None
