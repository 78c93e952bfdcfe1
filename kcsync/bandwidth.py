"""Bandwidth limits: which limit holds at a time of day, and one token bucket shared by
every worker, uploads and restores alike.

The decisions (``limit_at``, ``TokenBucket.reserve``) are pure and take time as an
argument, so they are tested with a fake clock; ``Throttle`` adds the lock, the clocks and
the sleep. Bytes are charged where they are read from a file for sending and where
downloaded bytes are written: the socket is not ours to pace (requests and urllib3 own
it), and a reader that waits holds the send back just the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kcsync.config import BandwidthConfig

# The bucket holds at most this many seconds of the current rate: enough that a pause
# between two reads (a request's round trip) is not lost, small enough that a limit is
# kept over any few seconds, not only on average over a run.
BURST_SECONDS = 0.25

Pace = Callable[[int], None]


def no_pace(n: int) -> None:
    """Unlimited: the default wherever a pace can be given."""


def limit_at(config: BandwidthConfig, minute: int) -> int:
    """Bytes/s allowed at ``minute`` of the day (local time); 0 means no limit.

    The first window that holds the minute wins; a window whose end is before its start
    runs over midnight (22:00 to 06:00). Outside every window, the default limit holds.
    """
    for window in config.schedule:
        if window.start <= window.end:
            inside = window.start <= minute < window.end
        else:
            inside = minute >= window.start or minute < window.end
        if inside:
            return window.limit
    return config.limit


@dataclass
class TokenBucket:
    """Bytes that may go now; a reservation larger than what is there runs into debt,
    and the caller waits until the debt is paid. So a read of any size (a 1 MiB block, a
    whole 16 MiB small file) takes its turn, and the rate holds across all callers."""

    tokens: float = 0.0
    updated: float | None = None  # when tokens were last brought up to date
    rate: float = 0.0

    def reserve(self, n: int, *, now: float, rate: float) -> float:
        """Take ``n`` bytes at ``rate`` bytes/s; seconds the caller must wait (0: none)."""
        capacity = rate * BURST_SECONDS
        if self.updated is None or rate != self.rate:
            # First use, or the limit changed (a window opened): start from a full bucket
            # at the new rate rather than carry a debt priced at the old one.
            self.tokens = capacity
        else:
            self.tokens = min(capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        self.rate = rate
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / rate


class Throttle:
    """The process's one bucket; ``take(n)`` blocks until ``n`` bytes may go."""

    def __init__(
        self,
        config: BandwidthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        minute_of_day: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._clock = clock
        self._minute = minute_of_day or local_minute
        self._sleep = sleep
        self._bucket = TokenBucket()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._config.limit or self._config.schedule)

    def take(self, n: int) -> None:
        rate = limit_at(self._config, self._minute())
        if rate <= 0 or n <= 0:
            return
        with self._lock:
            wait = self._bucket.reserve(n, now=self._clock(), rate=rate)
        # Slept outside the lock: the next caller reserves behind this one's debt at once,
        # and the debts are paid one after another, which is the rate.
        if wait > 0:
            self._sleep(wait)


def local_minute() -> int:
    """The minute of the day now, local time (the schedule's clock)."""
    now = datetime.now()
    return now.hour * 60 + now.minute


def make_pace(config: BandwidthConfig) -> Pace:
    """The pace for a run: ``Throttle.take`` when a limit is configured, else a no-op."""
    throttle = Throttle(config)
    return throttle.take if throttle.active else no_pace
