"""The arithmetic of bench/netem.py (token bucket, arrival times) and of W's ceilings."""

from __future__ import annotations

import pytest

from bench.netem import Link, TokenBucket, arrival
from bench.wan import parse_list, small_file_ceiling, variants

MB = 1_000_000


def test_bucket_lets_a_burst_through_at_once() -> None:
    bucket = TokenBucket(rate=MB, burst=100_000, now=0.0)
    assert bucket.reserve(60_000, now=0.0) == 0.0
    assert bucket.reserve(40_000, now=0.0) == 0.0


def test_bucket_overdraft_delays_by_the_debt_over_the_rate() -> None:
    bucket = TokenBucket(rate=MB, burst=100_000, now=0.0)
    # 100 KB of burst, then 250 KB more: 0.25 s at 1 MB/s.
    assert bucket.reserve(350_000, now=0.0) == pytest.approx(0.25)
    # The next chunk queues behind that debt.
    assert bucket.reserve(100_000, now=0.0) == pytest.approx(0.35)


def test_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=MB, burst=100_000, now=0.0)
    bucket.reserve(100_000, now=0.0)
    assert bucket.reserve(50_000, now=0.05) == pytest.approx(0.05)  # exactly refilled
    # A long pause refills no more than the burst.
    assert bucket.reserve(200_000, now=10.0) == pytest.approx(10.1)


def test_bucket_long_run_rate_is_exact_whatever_the_chunks() -> None:
    bucket = TokenBucket(rate=12.5 * MB, burst=65_536, now=0.0)
    t = 0.0
    for _ in range(1000):  # a sender that always sends when allowed: 256 KiB chunks
        t = bucket.reserve(262_144, now=t)
    assert 1000 * 262_144 / t == pytest.approx(12.5 * MB, rel=0.001)


@pytest.mark.parametrize("rate, burst", [(0, 1), (1, 0), (-1, 1)])
def test_bucket_refuses_a_useless_configuration(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)


@pytest.mark.parametrize(
    "depart, not_before, previous, expected",
    [
        pytest.param(1.0, 0.0, 0.0, 1.03, id="propagation delay"),
        pytest.param(1.0, 2.0, 0.0, 2.0, id="connection not up yet"),
        pytest.param(1.0, 0.0, 1.5, 1.5, id="never ahead of the chunk before"),
    ],
)
def test_arrival(depart: float, not_before: float, previous: float, expected: float) -> None:
    assert arrival(depart, 0.03, not_before, previous) == pytest.approx(expected)


def test_link_splits_the_round_trip_and_describes_itself() -> None:
    assert Link(0.06).one_way == pytest.approx(0.03)
    assert Link(0.06).describe() == "RTT 60 ms, unlimited"
    assert Link(0.02, 12.5 * MB).describe() == "RTT 20 ms, 100 Mbit/s"


def test_small_file_ceiling_is_workers_per_rtt_unless_the_link_is_lower() -> None:
    # 8 workers at 60 ms: 133 files/s.
    assert small_file_ceiling(8, 0.06, 0.0, 130_000) == {
        "round_trip": pytest.approx(133.33, abs=0.01),
        "min": pytest.approx(133.33, abs=0.01),
    }
    # 100 Mbit/s with 130 KB files: 96 files/s, below the round trips' 400.
    c = small_file_ceiling(8, 0.02, 12.5 * MB, 130_000)
    assert c["round_trip"] == pytest.approx(400)
    assert c["link"] == pytest.approx(96.15, abs=0.01)
    assert c["min"] == c["link"]


def test_variants_run_peers_at_defaults_and_at_kcsync_concurrency() -> None:
    rows = variants(8)
    assert [(v.row, v.workers) for v in rows] == [
        ("kcsync", None), ("rclone", None), ("rclone@8", 8), ("swift", None), ("swift@8", 8),
    ]  # fmt: skip
    assert [v.row for v in variants(8, same_concurrency=False)] == ["kcsync", "rclone", "swift"]


def test_parse_list_scales_milliseconds() -> None:
    assert parse_list("20,60", 1e-3) == pytest.approx((0.02, 0.06))
    assert parse_list("100, 0") == (100.0, 0.0)
