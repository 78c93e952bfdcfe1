"""scheduler.py: reconciles on request are never lost and never run two at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kcsync.scheduler import ReconcileScheduler


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_during_a_reconcile_make_exactly_one_more() -> None:
    runs: list[float] = []
    running = threading.Semaphore(0)
    release = threading.Event()
    overlap: list[bool] = []
    active = threading.Lock()

    def reconcile() -> None:
        overlap.append(not active.acquire(blocking=False))
        try:
            runs.append(time.monotonic())
            running.release()
            release.wait(10)
        finally:
            active.release()

    scheduler = ReconcileScheduler(reconcile, interval=3600, cron=None)
    scheduler.start()
    try:
        assert running.acquire(timeout=10)  # the run at start is going
        for _ in range(3):  # e.g. three overflows while it runs
            scheduler.run_now()
        time.sleep(0.2)  # give a wrongly concurrent run the chance to show
        assert len(runs) == 1
        release.set()
        wait_for(lambda: len(runs) == 2)
        time.sleep(0.3)  # and no third one for the same requests
        assert len(runs) == 2 and not any(overlap)
        scheduler.run_now()  # a request while idle runs at once
        wait_for(lambda: len(runs) == 3)
    finally:
        release.set()
        scheduler.shutdown()
