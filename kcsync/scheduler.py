"""The periodic full reconcile, on APScheduler: an interval or a cron expression."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

JOB_ID = "reconcile"


class ReconcileScheduler:
    """Runs ``run`` on the trigger, at start, and on request; never two at once.

    A request while a reconcile runs is not dropped (APScheduler skips a job whose
    instance is still running): the running one may have looked at the folder before the
    change, so one more runs right after it. Any number of requests meanwhile make one.
    """

    def __init__(self, run: Callable[[], None], *, interval: float, cron: str | None) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        # APScheduler logs every skipped overlapping run at WARNING through stdlib logging;
        # an overlap is expected (max_instances=1), not a warning.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self._scheduler = BackgroundScheduler(timezone=UTC)
        trigger = (
            CronTrigger.from_crontab(cron, timezone=UTC)
            if cron
            else IntervalTrigger(seconds=interval, timezone=UTC)
        )
        self._scheduler.add_job(
            self._reconcile,
            trigger,
            id=JOB_ID,
            max_instances=1,  # never two reconciles at once
            coalesce=True,  # runs missed while one was going collapse into one
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # and one right at start
        )

    def start(self) -> None:
        self._scheduler.start()

    def _reconcile(self) -> None:
        self._wanted.set()
        with self._lock:
            if not self._wanted.is_set():
                return  # a reconcile that started after this request has covered it
            self._wanted.clear()
            self._run()

    def run_now(self) -> None:
        """SIGHUP, or events lost: reconcile now, or right after the one running."""
        self._scheduler.add_job(
            self._reconcile, "date", run_date=datetime.now(UTC), misfire_grace_time=None
        )

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)


def check_cron(expression: str) -> None:
    """ValueError with APScheduler's reason when the expression is not a crontab line."""
    CronTrigger.from_crontab(expression, timezone=UTC)
