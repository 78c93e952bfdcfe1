"""bandwidth.py: which limit holds when, and the shared token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from kcsync.bandwidth import BURST_SECONDS, Throttle, TokenBucket, limit_at
from kcsync.config import BandwidthConfig, BandwidthWindow

MIB = 1024 * 1024
OFFICE = BandwidthWindow(8 * 60, 18 * 60, 2 * MIB)
NIGHT = BandwidthWindow(22 * 60, 6 * 60, 0)  # over midnight, unlimited


@pytest.mark.parametrize(
    ("minute", "expected"),
    [
        pytest.param(7 * 60 + 59, 10 * MIB, id="before-office"),
        pytest.param(8 * 60, 2 * MIB, id="office-starts"),
        pytest.param(17 * 60 + 59, 2 * MIB, id="office-last-minute"),
        pytest.param(18 * 60, 10 * MIB, id="office-ends-exclusive"),
        pytest.param(23 * 60, 0, id="night-before-midnight"),
        pytest.param(3 * 60, 0, id="night-after-midnight"),
        pytest.param(6 * 60, 10 * MIB, id="night-ends"),
    ],
)
def test_limit_at_time_of_day(minute: int, expected: int) -> None:
    config = BandwidthConfig(limit=10 * MIB, schedule=(OFFICE, NIGHT))
    assert limit_at(config, minute) == expected


def test_first_matching_window_wins() -> None:
    config = BandwidthConfig(limit=0, schedule=(OFFICE, BandwidthWindow(0, 24 * 60, 1)))
    assert limit_at(config, 9 * 60) == 2 * MIB
    assert limit_at(config, 19 * 60) == 1


def test_bucket_keeps_the_rate_over_many_reads() -> None:
    bucket, now, rate = TokenBucket(), 0.0, 1000.0
    for _ in range(100):  # 100 reads of 100 bytes, each waiting what it is told
        now += bucket.reserve(100, now=now, rate=rate)
    # 10,000 bytes at 1000/s: 10 s, less the burst the bucket started with.
    assert now == pytest.approx(10.0 - BURST_SECONDS, abs=1e-9)


def test_a_read_larger_than_the_bucket_runs_into_debt() -> None:
    bucket = TokenBucket()
    assert bucket.reserve(1000, now=0.0, rate=100.0) == pytest.approx(10.0 - BURST_SECONDS)
    # The next caller waits behind the debt, though it asked for one byte.
    assert bucket.reserve(1, now=0.0, rate=100.0) == pytest.approx(10.0 - BURST_SECONDS + 0.01)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    bucket = TokenBucket()
    bucket.reserve(0, now=0.0, rate=100.0)
    assert bucket.reserve(25, now=3600.0, rate=100.0) == 0.0  # 25 = 0.25 s at 100/s
    assert bucket.reserve(1, now=3600.0, rate=100.0) == pytest.approx(0.01)


def test_a_new_rate_starts_afresh() -> None:
    bucket = TokenBucket()
    bucket.reserve(10_000, now=0.0, rate=100.0)  # 100 s of debt at the office rate
    assert bucket.reserve(100, now=1.0, rate=1000.0) == 0.0  # the window closed


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.minute = 9 * 60
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_throttle_sleeps_by_the_window_in_force_and_not_without_a_limit() -> None:
    t = FakeTime()
    config = BandwidthConfig(limit=0, schedule=(BandwidthWindow(8 * 60, 18 * 60, 1000),))
    throttle = Throttle(config, clock=lambda: t.now, minute_of_day=lambda: t.minute, sleep=t.sleep)
    for _ in range(4):
        throttle.take(1000)
    assert t.now == pytest.approx(4.0 - BURST_SECONDS)
    t.minute = 19 * 60  # after office hours: the default, no limit
    slept = len(t.slept)
    throttle.take(10**9)
    assert len(t.slept) == slept
    assert Throttle(BandwidthConfig()).active is False
