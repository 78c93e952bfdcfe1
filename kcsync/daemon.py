"""Builds everything from a Config and runs it: the one place adapters are wired together."""

from __future__ import annotations

import fcntl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

import requests
import structlog
from requests.adapters import HTTPAdapter

from kcsync.apply import Applier
from kcsync.config import Config, KakaoAuth, TokenAuth, V1Auth
from kcsync.errors import EXIT_GUARD, EXIT_INCOMPLETE, EXIT_OK, RemoteError, StateLockedError
from kcsync.logs import redactor
from kcsync.model import IndexEntry
from kcsync.progress import ProgressLine, Stats
from kcsync.reconcile import Reconciler, Report, Sink
from kcsync.store.db import Database
from kcsync.store.index import Index
from kcsync.store.jobs import Job, JobQueue
from kcsync.swift.auth import Authenticator
from kcsync.swift.client import ServerLimits, SwiftClient
from kcsync.transfer import Transfer
from kcsync.worker import WorkerPool

log = structlog.get_logger("kcsync")

DB_NAME = "kcsync.db"
LOCK_NAME = "kcsync.lock"
# A job that keeps failing in a one-shot run is retried within seconds, not hours.
ONCE_BACKOFF_CAP = 10.0


@dataclass
class Remote:
    client: SwiftClient
    limits: ServerLimits
    storage_url: str


def make_remote(config: Config) -> Remote:
    for secret in _secrets(config):
        redactor.register(secret)
    session = requests.Session()
    session.verify = config.tls_verify
    # One pooled connection per worker and segment thread, reused across requests.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=config.workers * 2 + 4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "kcsync/0.1"
    auth = Authenticator(config.auth, session, timeout=config.retry.timeout)
    client = SwiftClient(
        auth, session, timeout=config.retry.timeout, attempts=config.retry.request_attempts
    )
    creds = auth.credentials()
    redactor.register(creds.token)
    return Remote(client=client, limits=client.limits(), storage_url=creds.storage_url)


def _secrets(config: Config) -> list[str]:
    auth = config.auth
    if isinstance(auth, V1Auth):
        return [auth.key]
    if isinstance(auth, KakaoAuth):
        return [auth.secret]
    assert isinstance(auth, TokenAuth)
    return [auth.token]


@contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """One kcsync per state directory: two would lease each other's jobs."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle: IO[str] = open(state_dir / LOCK_NAME, "a")  # noqa: SIM115 - held for the run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateLockedError(
                f"another kcsync is using {state_dir} (stop it, or set state_dir)"
            ) from None
        yield
    finally:
        handle.close()


class QueueSink:
    """Reconcile decisions into the persistent queue and the index."""

    def __init__(self, queue: JobQueue, index: Index, stats: Stats, pool: WorkerPool) -> None:
        self._queue = queue
        self._index = index
        self._stats = stats
        self._pool = pool

    def enqueue(self, key: str, op: str, payload: dict[str, object], size: int) -> None:
        self._queue.enqueue(key, op, payload, now=time.time())
        if op != "delete":
            self._stats.add(planned_files=1, planned_bytes=size)
        self._pool.wake()

    def adopt(self, entry: IndexEntry) -> None:
        self._index.put(entry)

    def forget(self, key: str) -> None:
        self._index.delete(key)


class PlanPrinter:
    """A dry run: say what would happen, touch nothing."""

    def __init__(self, out: TextIO, stats: Stats) -> None:
        self._out = out
        self._stats = stats

    def enqueue(self, key: str, op: str, payload: dict[str, object], size: int) -> None:
        verb = {"upload": "upload", "check": "verify", "delete": "delete"}[op]
        self._out.write(f"would {verb}: {key} ({payload.get('reason')})\n")
        if op != "delete":
            self._stats.add(planned_files=1, planned_bytes=size)

    def adopt(self, entry: IndexEntry) -> None:
        pass

    def forget(self, key: str) -> None:
        pass


def run_once(config: Config, *, dry_run: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    stats = Stats()
    with state_lock(config.state_dir):
        remote = make_remote(config)
        db = Database(config.state_dir / DB_NAME)
        try:
            return _run_once(config, remote, db, stats, dry_run, out)
        finally:
            db.close()


def _run_once(
    config: Config, remote: Remote, db: Database, stats: Stats, dry_run: bool, out: TextIO
) -> int:
    client = remote.client
    index, queue = Index(db), JobQueue(db)
    _check_target(db, index, remote.storage_url, config.bucket, dry_run)
    if not client.container_exists(config.bucket):
        if dry_run:
            log.info("bucket does not exist yet", bucket=config.bucket)
        elif config.create_bucket:
            client.create_container(config.bucket)
            log.info("created bucket", bucket=config.bucket)
        else:
            raise RemoteError(f"bucket {config.bucket} does not exist and create_bucket is false")
    page_size = min(remote.limits.container_listing_limit, 10000)
    if dry_run:
        printer = PlanPrinter(out, stats)
        rep = _reconciler(config, remote, index, printer, stats, page_size).run()
        out.write(f"dry run: {stats.planned_files} files to send, nothing changed\n")
        return _exit_code(stats, rep)

    transfer = Transfer(
        client,
        config.bucket,
        config.large.segments_bucket,
        remote.limits,
        segment_size=config.large.segment_size,
        segment_workers=config.workers,
    )
    applier = Applier(
        client,
        transfer,
        index,
        config.bucket,
        threshold=config.large.threshold,
        strict=config.checksum,
    )

    def handle(job: Job) -> None:
        outcome = applier.run(job.key, job.op, job.payload)
        if outcome.action == "uploaded":
            stats.add(uploaded=1, uploaded_bytes=outcome.bytes_sent, sent_bytes=outcome.bytes_sent)
        elif outcome.action == "adopted":
            stats.add(adopted=1)
        elif outcome.action == "deleted":
            stats.add(deleted=1)

    def on_bad(key: str, error: str) -> None:
        stats.add_bad(key, error)
        log.warning("skipped", object=key, reason=error)

    queue.release_all()
    queue.revive_dead(now=time.time())
    pool = WorkerPool(
        queue,
        handle,
        workers=config.workers,
        max_attempts=config.retry.job_attempts,
        backoff_cap=ONCE_BACKOFF_CAP,
        on_bad=on_bad,
        on_dead=stats.add_failed,
    )
    progress = ProgressLine(stats)
    pool.start()
    progress.start()
    try:
        rep = _reconciler(
            config, remote, index, QueueSink(queue, index, stats, pool), stats, page_size
        ).run()
        pool.wait_idle()
    finally:
        pool.stop()
        progress.stop()
        transfer.close()
    log.info(
        "run finished",
        drift=rep.drift,
        requests=client.request_count,
        by_method=dict(client.requests_by_method),
    )
    for path, reason in stats.bad:
        out.write(f"skipped: {path}: {reason}\n")
    for key, error in stats.failed:
        out.write(f"failed: {key}: {error}\n")
    for why in rep.refused:
        out.write(f"deletes refused: {why}\n")
    out.write(stats.summary() + "\n")
    return _exit_code(stats, rep)


def _reconciler(
    config: Config, remote: Remote, index: Index, sink: Sink, stats: Stats, page_size: int
) -> Reconciler:
    return Reconciler(
        config.folders,
        remote.client,
        config.bucket,
        index,
        sink,
        stats,
        mirror=config.delete.mode == "mirror",
        max_deletes=config.delete.max_per_run,
        max_name_bytes=remote.limits.max_object_name_length,
        page_size=page_size,
    )


def _check_target(db: Database, index: Index, storage_url: str, bucket: str, dry: bool) -> None:
    """An index describes one bucket of one account; pointed elsewhere, it must be dropped
    or its signatures would vouch for objects that are not there."""
    target = f"{storage_url}|{bucket}"
    if db.get_meta("target") != target and not dry:
        if db.get_meta("target") is not None:
            log.warning("bucket or account changed; starting a fresh index")
        index.clear()
        db.set_meta("target", target)


def _exit_code(stats: Stats, report: Report) -> int:
    if report.refused:
        return EXIT_GUARD
    if stats.failed or stats.bad or report.folder_errors:
        return EXIT_INCOMPLETE
    return EXIT_OK
