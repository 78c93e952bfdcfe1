"""The worker pool: threads that claim jobs from the queue, run them and settle them."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from kcsync.errors import (
    FileChangedError,
    FileVanishedError,
    GuardError,
    KcsyncError,
    LocalFileError,
)
from kcsync.store.jobs import Job, JobQueue

log = structlog.get_logger("kcsync.worker")

# Long enough for any single upload: leases only matter after a crash, and then the
# restarted process (holding the state lock) frees them all at start.
LEASE_SECONDS = 6 * 3600.0


def job_backoff(attempt: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before a failed job runs again: exponential with jitter, capped."""
    return min(cap, 2.0**attempt) * (0.5 + rand() / 2)


class WorkerPool:
    def __init__(
        self,
        queue: JobQueue,
        handle: Callable[[Job], None],
        *,
        workers: int,
        max_attempts: int,
        backoff_cap: float,
        on_bad: Callable[[str, str], None],
        on_dead: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._handle = handle
        self._workers = workers
        self._max_attempts = max_attempts
        self._backoff_cap = backoff_cap
        self._on_bad = on_bad
        self._on_dead = on_dead
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Condition()  # workers wait here for work
        self._settled = threading.Condition()  # wait_idle waits here for jobs to finish
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    def start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._loop, name=f"kcsync-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self, jobs: int = 1) -> None:
        """New work: a worker per job at most (waking all for one job makes them race for
        the DB)."""
        with self._wake:
            self._wake.notify(jobs)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming; let running jobs finish for up to ``timeout`` seconds. A job still
        running then keeps its lease, which the next start frees. True if all finished."""
        with self._wake:  # under the lock: a worker about to wait cannot miss it
            self._stop.set()
            self._wake.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def idle(self) -> bool:
        """No job running and none waiting (dead jobs excepted)."""
        with self._busy_lock:
            return self._busy == 0 and self._queue.outstanding() == 0

    def wait_idle(self, *, poll: float = 0.2) -> None:
        # Checked under the condition's lock, so the last job's notify cannot slip in
        # between the check and the wait (it would cost a whole poll).
        with self._settled:
            while not self.idle():
                self._settled.wait(poll)

    def _loop(self) -> None:
        job: Job | None = None
        while not self._stop.is_set():
            if job is None:
                with self._busy_lock:
                    job = self._queue.claim(now=self._clock(), lease=LEASE_SECONDS)
                    if job is not None:
                        self._busy += 1
                if job is None:
                    self._sleep_until_work()
                    continue
            following: Job | None = None
            try:
                # A job that succeeded hands over the next one, claimed in the same
                # transaction that completed it; still counted busy, so wait_idle cannot
                # see the pool idle in between.
                following = self._run(job)
            finally:
                if following is None:
                    self._done_one()
            job = following
        if job is not None:
            # Stopped between claiming the next job and starting it: give it back now
            # rather than leave it leased until the next start.
            self._queue.release(job)
            self._done_one()

    def _done_one(self) -> None:
        with self._busy_lock:
            self._busy -= 1
            last = self._busy == 0
        # Only when no job is running can the pool be idle: waking wait_idle after every
        # job made it query the queue thousands of times a run, under the GIL and the
        # database lock the workers need.
        if last:
            with self._settled:
                self._settled.notify_all()

    def _sleep_until_work(self) -> None:
        ready = self._queue.next_ready_at()
        delay = 0.5 if ready is None else min(0.5, max(0.0, ready - self._clock()))
        with self._wake:
            if not self._stop.is_set():
                self._wake.wait(max(delay, 0.01))

    def _run(self, job: Job) -> Job | None:
        """Run and settle one job; the next job when it succeeded and one was ready."""
        try:
            self._handle(job)
        except FileChangedError as exc:
            # Still being written: come back soon; not a fault of the server.
            self._fail(job, str(exc), delay=1.0)
        except FileVanishedError as exc:
            # Moved or deleted while its job ran: not a bad file (its own event settles it).
            log.debug("vanished", object=job.key, error=str(exc))
            self._queue.complete(job, now=self._clock())
        except LocalFileError as exc:
            self._on_bad(job.key, str(exc))
            self._queue.complete(job, now=self._clock())
        except GuardError as exc:
            # Retrying cannot help: dead at once, shown by status, retried by a reconcile.
            self._fail(job, str(exc), delay=0.0, max_attempts=0)
        except KcsyncError as exc:  # remote trouble above all: retried later with backoff
            self._fail(job, str(exc), delay=job_backoff(job.attempts + 1, self._backoff_cap))
        except Exception as exc:  # a bug must not kill the worker; keep the job, report it
            log.exception("job crashed", object=job.key, op=job.op)
            self._fail(job, f"{type(exc).__name__}: {exc}", delay=self._backoff_cap)
        else:
            # Under the busy lock, as a claim is: a next job takes over this one's place in
            # the busy count from the moment it is leased (_loop counts it done otherwise).
            with self._busy_lock:
                lease = None if self._stop.is_set() else LEASE_SECONDS
                return self._queue.complete(job, now=self._clock(), claim_lease=lease)
        return None

    def _fail(self, job: Job, error: str, *, delay: float, max_attempts: int | None = None) -> None:
        now = self._clock()
        limit = self._max_attempts if max_attempts is None else max_attempts
        dead = self._queue.fail(job, error, now=now, retry_at=now + delay, max_attempts=limit)
        log.warning("job failed", object=job.key, op=job.op, error=error, dead=dead)
        if dead:
            self._on_dead(job.key, error)
