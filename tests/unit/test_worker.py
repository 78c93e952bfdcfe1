"""worker.py: the pool on a real queue; a job that succeeds hands its worker the next one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcsync.errors import TransientRemoteError
from kcsync.store.db import Database
from kcsync.store.jobs import Job, JobQueue
from kcsync.worker import WorkerPool


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    db = Database(tmp_path / "kcsync.db")
    yield JobQueue(db)
    db.close()


def pool(queue: JobQueue, handle: object, workers: int = 3) -> WorkerPool:
    return WorkerPool(
        queue,
        handle,  # type: ignore[arg-type]
        workers=workers,
        max_attempts=3,
        backoff_cap=0.0,
        on_bad=lambda key, error: None,
        on_dead=lambda key, error: None,
    )


@pytest.mark.parametrize("workers", [1, 4])
def test_every_job_runs_once_and_wait_idle_sees_the_end(queue: JobQueue, workers: int) -> None:
    keys = [f"k{i:03d}" for i in range(200)]
    queue.enqueue_many([(k, "upload", {}) for k in keys], now=0.0)
    ran: list[str] = []
    lock = threading.Lock()

    def handle(job: Job) -> None:
        with lock:
            ran.append(job.key)

    p = pool(queue, handle, workers)
    p.start()
    p.wake(len(keys))
    p.wait_idle(poll=0.05)
    assert p.idle() and queue.outstanding() == 0
    assert sorted(ran) == keys
    assert p.stop(timeout=5)


def test_a_failed_job_stays_queued_and_its_worker_claims_afresh(queue: JobQueue) -> None:
    queue.enqueue_many([("bad", "upload", {}), ("good", "upload", {})], now=0.0)
    failures = []

    def handle(job: Job) -> None:
        if job.key == "bad" and not failures:
            failures.append(job.key)
            raise TransientRemoteError("503")

    p = pool(queue, handle, workers=1)
    p.start()
    p.wait_idle(poll=0.05)
    assert failures == ["bad"] and queue.outstanding() == 0
    assert p.stop(timeout=5)


def test_a_stopping_worker_claims_no_next_job(queue: JobQueue) -> None:
    queue.enqueue_many([("a", "upload", {}), ("b", "upload", {})], now=0.0)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def handle(job: Job) -> None:
        ran.append(job.key)
        started.set()
        release.wait(5)

    p = pool(queue, handle, workers=1)
    p.start()
    assert started.wait(5)
    stopper = threading.Thread(target=p.stop, kwargs={"timeout": 5})
    stopper.start()
    while not p._stop.is_set():  # stop() is under way before the job ends
        pass
    release.set()
    stopper.join()
    assert ran == ["a"]
    # b was neither run nor leased by the job's completion: it waits for the next start.
    assert queue.counts() == {"pending": 1}
