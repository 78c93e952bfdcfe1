"""Builds everything from a Config and runs it: the one place adapters are wired together."""

from __future__ import annotations

import fcntl
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import structlog

from kcsync.apply import Applier
from kcsync.bandwidth import limit_at, local_minute, make_pace
from kcsync.config import (
    AuthConfig,
    Config,
    FolderConfig,
    KakaoAuth,
    TokenAuth,
    V1Auth,
    load_config,
)
from kcsync.errors import (
    EXIT_GUARD,
    EXIT_INCOMPLETE,
    EXIT_OK,
    KcsyncError,
    RemoteError,
    StateLockedError,
)
from kcsync.guard import Limits
from kcsync.localfs import folder_path_for, make_gate
from kcsync.logs import redactor
from kcsync.metrics import (
    Endpoint,
    RunFacts,
    Sources,
    previous_success,
    registry_for,
    write_textfile,
)
from kcsync.model import IndexEntry
from kcsync.notify import Notifier
from kcsync.orphans import OrphanCollector
from kcsync.progress import ProgressLine, Stats
from kcsync.reconcile import GuardVerdict, Reconciler, Report, Sink
from kcsync.store.db import Database
from kcsync.store.guards import GuardState
from kcsync.store.index import Index
from kcsync.store.jobs import Job, JobQueue
from kcsync.store.owner import hand_over, owner_to_hand_over
from kcsync.store.segments import SegmentLedger
from kcsync.swift.auth import Authenticator
from kcsync.swift.client import ServerLimits, SwiftClient
from kcsync.swift.session import Session
from kcsync.transfer import Transfer
from kcsync.worker import WorkerPool

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kcsync.scheduler import ReconcileScheduler

log = structlog.get_logger("kcsync")

DB_NAME = "kcsync.db"
LOCK_NAME = "kcsync.lock"
# A job that keeps failing in a one-shot run is retried within seconds, not hours.
ONCE_BACKOFF_CAP = 10.0
DAEMON_BACKOFF_CAP = 600.0


@dataclass
class Remote:
    client: SwiftClient
    limits: ServerLimits
    storage_url: str
    auth: Authenticator
    # Whether the bucket exists, asked beside /info (make_remote(probe_bucket=True)): an
    # answer, or the error the HEAD met, raised where the HEAD would have been sent.
    bucket_probe: BucketProbe | None = None


class BucketProbe:
    """The bucket's HEAD, sent in a thread while /info is read on the caller's.

    /info and the HEAD depend on nothing but the token, yet a run sent them one after the
    other: one round trip of every start was waiting for nothing. The answer (or the
    error) is kept and given out in ensure_bucket, at the point where the HEAD used to be
    sent, so a missing bucket or refused credentials end the run as they always did.
    """

    def __init__(self, client: SwiftClient, bucket: str) -> None:
        self._outcome: bool | BaseException | None = None
        self._thread = threading.Thread(
            target=self._head, args=(client, bucket), name="kcsync-bucket-head", daemon=True
        )
        self._thread.start()

    def _head(self, client: SwiftClient, bucket: str) -> None:
        try:
            self._outcome = client.container_exists(bucket)
        except BaseException as exc:  # raised by exists(), on the caller's thread
            self._outcome = exc

    def join(self) -> None:
        self._thread.join()

    def exists(self) -> bool:
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


def make_remote(config: Config, *, probe_bucket: bool = False) -> Remote:
    for secret in _secrets(config):
        redactor.register(secret)
    # One pooled connection per worker and segment thread, reused across requests.
    session = Session(verify=config.tls_verify, pool_size=config.workers * 2 + 4)
    auth = Authenticator(config.auth, session, timeout=config.retry.timeout)
    client = SwiftClient(
        auth,
        session,
        timeout=config.retry.timeout,
        attempts=config.retry.request_attempts,
        json_manifest=isinstance(config.auth, KakaoAuth),
    )
    creds = auth.credentials()  # the Authenticator registers every token with the redactor
    probe = BucketProbe(client, config.bucket) if probe_bucket else None
    try:
        limits = client.limits()
    finally:
        # Joined here, not in ensure_bucket: nothing is left running should the start
        # fail between the two (another bucket's index, an unusable state directory).
        if probe is not None:
            probe.join()
    return Remote(client, limits, creds.storage_url, auth, bucket_probe=probe)


def _secrets(config: Config) -> list[str]:
    return _secrets_of(config.auth)


def _secrets_of(auth: AuthConfig) -> list[str]:
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
    hand_over([state_dir / LOCK_NAME], owner_to_hand_over(state_dir))
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

    # Jobs are written in batches: one transaction per job cost a first run over 100,000
    # files already in the bucket a tenth of its time. A batch goes out when full or when
    # its first job has waited FLUSH_AFTER (checked as jobs come), and at the end of the
    # reconcile, so workers start at once on small runs.
    BATCH = 256
    FLUSH_AFTER = 0.05

    def __init__(
        self,
        queue: JobQueue,
        index: Index,
        ledger: SegmentLedger,
        guards: GuardState,
        stats: Stats,
        pool: WorkerPool,
    ) -> None:
        self._queue = queue
        self._index = index
        self._ledger = ledger
        self._guards = guards
        self._stats = stats
        self._pool = pool
        self._pending: list[tuple[str, str, dict[str, object]]] = []
        self._first_at = 0.0
        self.new_jobs = 0  # work the reconcile found that nobody had queued: drift

    def enqueue(self, key: str, op: str, payload: dict[str, object], size: int) -> None:
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append((key, op, payload))
        if op != "delete":
            self._stats.add(planned_files=1, planned_bytes=size)
        if (
            len(self._pending) >= self.BATCH
            or time.monotonic() - self._first_at >= self.FLUSH_AFTER
        ):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.new_jobs += self._queue.enqueue_many(self._pending, now=time.time())
            self._pool.wake(len(self._pending))
            self._pending = []

    def adopt(self, entry: IndexEntry) -> None:
        self._index.put(entry)

    def guarded(self, folder: str, verdict: GuardVerdict) -> None:
        if verdict.refused:
            self._guards.refuse(folder, verdict.deletes, verdict.refused, at=time.time())
            return
        # Not refused: this disk is the folder's from now on, and an approval is spent.
        self._guards.clear(folder)
        self._guards.record_device(folder, verdict.device)
        if verdict.approved is not None:
            self._guards.used_approval(folder)

    def forget(self, key: str, *, gone: bool) -> None:
        self._index.delete(key)
        if gone:
            # The object left the bucket behind our back: its segments are referenced by
            # nothing; the collector deletes them once the server agrees.
            self._ledger.settle(key, None, now=time.time())


class PlanPrinter:
    """A dry run: say what would happen, touch nothing."""

    def __init__(self, out: TextIO, stats: Stats) -> None:
        self._out = out
        self._stats = stats

    def enqueue(self, key: str, op: str, payload: dict[str, object], size: int) -> None:
        verb = {
            "upload": "upload",
            "check": "verify",
            "delete": "delete",
            "sync": "remove (uploaded already)",  # an ingest folder's leftover
        }[op]
        self._out.write(f"would {verb}: {key} ({payload.get('reason')})\n")
        if op != "delete":
            self._stats.add(planned_files=1, planned_bytes=size)
        else:
            self._stats.add(planned_deletes=1)

    def adopt(self, entry: IndexEntry) -> None:
        pass

    def guarded(self, folder: str, verdict: GuardVerdict) -> None:
        if verdict.refused:
            why = f"{folder}: {verdict.refused}"
            self._out.write(f"would refuse {verdict.deletes} deletes: {why}\n")

    def forget(self, key: str, *, gone: bool) -> None:
        pass

    def flush(self) -> None:
        pass


class Runtime:
    """Everything one process needs, built from the config."""

    def __init__(self, config: Config, stats: Stats, *, once: bool, dry_run: bool = False) -> None:
        self.config = config
        self.stats = stats
        self.facts = RunFacts()
        self.remote = make_remote(config, probe_bucket=True)
        # One gate for the scan, the watcher and the jobs (DESIGN §4a).
        self.gate = make_gate(
            config.folders,
            config.state_dir,
            max_name_bytes=self.remote.limits.max_object_name_length,
        )
        self.db = Database(config.state_dir / DB_NAME)
        self.index = Index(self.db)
        self.queue = JobQueue(self.db)
        self.guards = GuardState(self.db)
        self.ledger = SegmentLedger(self.db, config.bucket, config.large.segments_bucket)
        if not dry_run:
            _check_target(self.db, self.index, self.remote.storage_url, config.bucket)
        self.transfer = Transfer(
            self.remote.client,
            config.bucket,
            config.large.segments_bucket,
            self.remote.limits,
            self.ledger,
            segment_size=config.large.segment_size,
            segment_workers=config.workers,
            pace=self.facts.counting(make_pace(config.bandwidth)),
        )
        self.applier = Applier(
            self.remote.client,
            self.transfer,
            self.index,
            config.bucket,
            threshold=config.large.threshold,
            strict=config.checksum,
            mirror=config.delete.mode == "mirror",
            folders=config.folders,
            guards=self.guards,
            gate=self.gate,
            ledger=self.ledger,
            enqueue=self.enqueue,
        )
        self.pool = WorkerPool(
            self.queue,
            self._handle,
            workers=config.workers,
            max_attempts=config.retry.job_attempts,
            backoff_cap=ONCE_BACKOFF_CAP if once else DAEMON_BACKOFF_CAP,
            on_bad=self._on_bad,
            on_dead=stats.add_failed,
        )
        self.sink = QueueSink(self.queue, self.index, self.ledger, self.guards, stats, self.pool)

    def enqueue(self, jobs: list[tuple[str, str, dict[str, Any]]]) -> None:
        """New jobs from outside a reconcile (the watcher, a directory's delete)."""
        self.queue.enqueue_many(jobs, now=time.time())
        self.pool.wake(len(jobs))

    def metrics(self, watcher_overflows: Callable[[], int] | None = None) -> CollectorRegistry:
        """A registry whose collector reads this runtime's counters at each scrape."""
        bandwidth = self.config.bandwidth
        return registry_for(
            Sources(
                stats=self.stats,
                facts=self.facts,
                client=self.remote.client,
                auth=self.remote.auth,
                queue_counts=self.queue.counts,
                in_flight=lambda: self.transfer.in_flight,
                bandwidth_limit=lambda: limit_at(bandwidth, local_minute()),
                watcher_overflows=watcher_overflows,
            )
        )

    def _handle(self, job: Job) -> None:
        outcome = self.applier.run(job.key, job.op, job.payload)
        if outcome.action == "uploaded":
            self.stats.add(
                uploaded=1, uploaded_bytes=outcome.bytes_sent, sent_bytes=outcome.bytes_sent
            )
        elif outcome.action in ("adopted", "copied"):
            self.stats.add(adopted=1)
        elif outcome.action == "deleted":
            self.stats.add(deleted=outcome.objects)
        if outcome.removed_local:
            self.stats.add(removed_local=1)

    def _on_bad(self, key: str, error: str) -> None:
        path, reason = skip_report(self.config.folders, key, error)
        self.stats.add_bad(path, reason)
        log.warning("skipped", path=path, reason=reason)

    def ensure_bucket(self, *, dry_run: bool = False) -> None:
        client, bucket = self.remote.client, self.config.bucket
        # The answer asked for at start is used once: a later call asks again.
        probe, self.remote.bucket_probe = self.remote.bucket_probe, None
        if probe.exists() if probe is not None else client.container_exists(bucket):
            return
        if dry_run:
            log.info("bucket does not exist yet", bucket=bucket)
        elif self.config.create_bucket:
            client.create_container(bucket)
            log.info("created bucket", bucket=bucket)
        else:
            raise RemoteError(f"bucket {bucket} does not exist and create_bucket is false")

    def reconciler(self, sink: Sink) -> Reconciler:
        return Reconciler(
            self.config.folders,
            self.remote.client,
            self.config.bucket,
            self.index,
            sink,
            self.stats,
            mirror=self.config.delete.mode == "mirror",
            limits=Limits(self.config.delete.max_per_run, self.config.delete.max_share),
            guards=self.guards,
            gate=self.gate,
            page_size=min(self.remote.limits.container_listing_limit, 10000),
        )

    def collect_orphans(self) -> int:
        client, config = self.remote.client, self.config
        segments = config.large.segments_bucket
        return OrphanCollector(
            self.ledger,
            lambda prefix: list(client.list_objects(segments, prefix=prefix)),
            lambda key: client.head_object(config.bucket, key),
            lambda name: client.delete_object(segments, name),
            self.queue.has,
            grace=config.large.orphan_grace,
            clock=lambda: client.server_time(segments),
        ).run()

    def close(self) -> None:
        self.transfer.close()
        self.db.close()


def run_once(config: Config, *, dry_run: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    stats = Stats()
    with state_lock(config.state_dir):
        rt = Runtime(config, stats, once=True, dry_run=dry_run)
        code: int | None = None
        started = time.time()
        try:
            rt.ensure_bucket(dry_run=dry_run)
            if dry_run:
                rep = rt.reconciler(PlanPrinter(out, stats)).run()
                _report_folders(rep, out)
                out.write(stats.dry_run_summary() + "\n")
                return _exit_code(stats, rep)
            rt.queue.release_all()
            started = time.time()
            revived = rt.queue.revive_dead(now=started)
            progress = ProgressLine(stats, moved=lambda: rt.facts.sent_bytes)
            rt.pool.start()
            progress.start()
            try:
                rep = rt.reconciler(rt.sink).run()
                rt.pool.wait_idle()
                orphans = rt.collect_orphans() if not rep.folder_errors else 0
            finally:
                rt.pool.stop()
                progress.stop()
            # `status` after a run from cron must not say "last reconcile: never".
            record_reconcile(rt.db, started, rep, rt.sink.new_jobs, revived, orphans)
            client = rt.remote.client
            log.info(
                "run finished",
                drift=rep.drift,
                requests=client.request_count,
                by_method=dict(client.requests_by_method),
                unauthorized=client.unauthorized,
            )
            for line in stats.report_lines():
                out.write(line + "\n")
            _report_folders(rep, out)
            for why in rep.refused:
                out.write(f"deletes refused: {why}\n")
            out.write(stats.summary() + "\n")
            code = _exit_code(stats, rep)
            rt.facts.reconciled(
                at=started, duration=time.time() - started, drift=rep.drift, ok=code == EXIT_OK
            )
            return code
        finally:
            if config.metrics.textfile is not None and not dry_run:
                _write_textfile(rt, config.metrics.textfile)
            rt.close()


def _write_textfile(rt: Runtime, path: Path) -> None:
    """At the end of a --once run, whatever its outcome: a failed run keeps the last
    success a previous run recorded, so an alert on its age keeps counting."""
    if rt.facts.last_success_at is None:
        rt.facts.last_success_at = previous_success(path)
    try:
        write_textfile(path, rt.metrics())
    except OSError as exc:  # the sync itself went as it went: say so, keep its exit code
        log.error("cannot write the metrics textfile", path=str(path), error=str(exc))


class Daemon:
    """Watcher -> persistent queue -> worker pool, with a periodic reconcile."""

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self._last: dict[str, Any] = {}

    def run(self) -> int:
        # Imported here: a `--once` run from cron needs neither, and apscheduler plus
        # watchdog cost about 55 ms of its start.
        from kcsync.scheduler import ReconcileScheduler
        from kcsync.watcher import Watcher

        config = self.config
        with state_lock(config.state_dir):
            rt = Runtime(config, Stats(), once=False)
            rt.ensure_bucket()
            rt.queue.release_all()
            scheduler = ReconcileScheduler(
                lambda: self._reconcile(rt),
                interval=config.daemon.reconcile_interval,
                cron=config.daemon.reconcile_cron,
            )
            watcher = Watcher(
                config.folders,
                rt.enqueue,
                settle=config.daemon.settle,
                gate=rt.gate,
                on_lost=lambda folder: scheduler.run_now(),
            )
            endpoint = None
            if config.metrics.listen is not None:
                endpoint = Endpoint(rt.metrics(lambda: watcher.overflows), config.metrics.listen)
                log.info("metrics endpoint", address=f"{config.metrics.listen[0]}:{endpoint.port}")
            self._install_signals(scheduler, rt)
            # Watch before the first reconcile scans: a change between the two is then seen
            # by at least one of them.
            watcher.start()
            rt.pool.start()
            scheduler.start()
            self.notifier.ready(self._status(rt))
            log.info("daemon started", folders=[str(f.path) for f in config.folders])
            heartbeat = self.notifier.watchdog_interval or 5.0
            while not self.stop_event.wait(min(heartbeat, 5.0)):
                self.notifier.watchdog()
                self.notifier.status(self._status(rt))
            self.notifier.stopping()
            log.info("stopping", timeout=config.daemon.stop_timeout)
            scheduler.shutdown()
            watcher.stop()  # its pending hints become jobs: nothing seen is dropped
            if endpoint is not None:
                endpoint.close()
            finished = rt.pool.stop(timeout=config.daemon.stop_timeout)
            if finished:
                rt.close()
            lingering = [
                t.name
                for t in threading.enumerate()
                if t is not threading.current_thread() and t.is_alive() and not t.daemon
            ]
            if lingering:
                # Seen once under heavy load in CI: the process outlived a clean stop. Name
                # the threads so the cause shows up in the journal.
                log.warning("threads still alive at exit", threads=lingering)
            log.info("stopped", clean=finished)
            return EXIT_OK

    def _install_signals(self, scheduler: ReconcileScheduler, rt: Runtime) -> None:
        def stop(signum: int, _frame: object) -> None:
            self.stop_event.set()

        def reconcile_now(signum: int, _frame: object) -> None:
            # Credentials first: after a key rotation the operator edits the config (or the
            # secret file it names) and sends SIGHUP; the reconcile then runs with the new key
            # and revives the jobs the old one failed. Only the auth section is taken: the
            # rest of a changed config needs a restart.
            log.info("SIGHUP: re-reading credentials, reconcile now")
            self._reload_credentials(rt)
            scheduler.run_now()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reconcile_now)

    def _reload_credentials(self, rt: Runtime) -> None:
        try:
            auth = load_config(self.config.source).auth
        except KcsyncError as exc:
            log.error("SIGHUP: config not re-read; keeping the old credentials", error=str(exc))
            return
        for secret in _secrets_of(auth):
            redactor.register(secret)
        rt.remote.auth.reconfigure(auth)

    def _reconcile(self, rt: Runtime) -> None:
        started = time.time()
        rt.queue.requeue_expired(now=started)
        revived = rt.queue.revive_dead(now=started)
        rt.sink.new_jobs = 0
        try:
            rep = rt.reconciler(rt.sink).run()
        except Exception as exc:  # the next tick tries again; the daemon stays up
            log.error("reconcile failed", error=str(exc))
            rt.db.set_meta("last_reconcile_error", str(exc))
            return
        rt.pool.wake()
        orphans = rt.collect_orphans() if not rep.folder_errors else 0
        drift = rt.sink.new_jobs
        duration = record_reconcile(rt.db, started, rep, drift, revived, orphans)
        rt.facts.reconciled(
            at=started,
            duration=duration,
            drift=drift,
            ok=not rep.folder_errors and not rep.refused,
        )
        log.info("reconcile finished", drift=drift, seconds=round(duration, 2), revived=revived)

    def _status(self, rt: Runtime) -> str:
        counts = rt.queue.counts()
        return (
            f"{counts.get('pending', 0)} queued, {counts.get('running', 0)} running, "
            f"{counts.get('dead', 0)} dead"
        )


def skip_report(folders: tuple[FolderConfig, ...], key: str, error: str) -> tuple[str, str]:
    """(path, reason) of a file a job could not sync, as the scan and the watcher report
    one. A job's LocalFileError reads "PATH: reason"; reported under the job's key it
    printed "skipped: KEY: PATH: reason", the file named twice, in another shape than the
    same skip found by the scan."""
    path = next(
        (str(p) for f in folders if (p := folder_path_for(f, key)) is not None),
        key,
    )
    return path, error.removeprefix(f"{path}: ")


def record_reconcile(
    db: Database, started: float, rep: Report, drift: int, revived: int, orphans: int
) -> float:
    """What `kcsync status` shows as the last reconcile, the daemon's or a --once run's.
    Returns how long it took."""
    duration = time.time() - started
    db.set_meta(
        "last_reconcile",
        json.dumps(
            {
                "at": started,
                "duration": round(duration, 3),
                "drift": drift,
                "refused": rep.refused,
                "folder_errors": rep.folder_errors,
                "revived": revived,
                "orphans_removed": orphans,
            }
        ),
    )
    return duration


def _report_folders(rep: Report, out: TextIO) -> None:
    # A folder that is missing or unreadable is a failure like a file's: on stdout, not
    # only in the log, or the summary looked clean above an exit code of 1.
    for error in rep.folder_errors:
        out.write(f"failed: folder {error}\n")


def _check_target(db: Database, index: Index, storage_url: str, bucket: str) -> None:
    """An index describes one bucket of one account; pointed elsewhere, it must be dropped
    or its signatures would vouch for objects that are not there."""
    target = f"{storage_url}|{bucket}"
    known = db.get_meta("target")
    if known != target:
        if known is not None:
            log.warning("bucket or account changed; starting a fresh index")
        index.clear()
        db.set_meta("target", target)


def _exit_code(stats: Stats, report: Report) -> int:
    if report.refused:
        return EXIT_GUARD
    if stats.failed_count or stats.bad_count or report.folder_errors:
        return EXIT_INCOMPLETE
    return EXIT_OK
