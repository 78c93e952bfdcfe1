"""The periodic full reconcile, on APScheduler: an interval or a cron expression."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

JOB_ID = "reconcile"


class ReconcileScheduler:
    def __init__(self, run: Callable[[], None], *, interval: float, cron: str | None) -> None:
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
            run,
            trigger,
            id=JOB_ID,
            max_instances=1,  # never two reconciles at once
            coalesce=True,  # runs missed while one was going collapse into one
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # and one right at start
        )

    def start(self) -> None:
        self._scheduler.start()

    def run_now(self) -> None:
        """SIGHUP: reconcile now (coalesced with one already running)."""
        job = self._scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)


def check_cron(expression: str) -> None:
    """ValueError with APScheduler's reason when the expression is not a crontab line."""
    CronTrigger.from_crontab(expression, timezone=UTC)
