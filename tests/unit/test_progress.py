"""progress.Stats: a long-running daemon keeps a bounded sample of failed paths, exact counts."""

from __future__ import annotations

import threading

import pytest

from kcsync.daemon import _exit_code
from kcsync.errors import EXIT_INCOMPLETE, EXIT_OK
from kcsync.progress import REPORT_LIMIT, Stats
from kcsync.reconcile import Report


@pytest.mark.parametrize(
    ("n", "keep", "kept", "more"),
    [(0, 3, 0, None), (2, 3, 2, None), (3, 3, 3, None), (4, 3, 3, 1), (10_000, 3, 3, 9_997)],
    ids=["none", "under", "exactly", "one-over", "far-over"],
)
def test_skipped_and_failed_keep_the_first_entries_and_count_all(
    n: int, keep: int, kept: int, more: int | None
) -> None:
    stats = Stats(keep=keep)
    for i in range(n):
        stats.add_bad(f"bad/{i}", "name too long")
        stats.add_failed(f"failed/{i}", "503")
    assert (stats.bad_count, stats.failed_count) == (n, n)
    assert stats.bad == [(f"bad/{i}", "name too long") for i in range(kept)]
    assert stats.failed == [(f"failed/{i}", "503") for i in range(kept)]

    lines = stats.report_lines()
    skipped = [f"skipped: bad/{i}: name too long" for i in range(kept)]
    failed = [f"failed: failed/{i}: 503" for i in range(kept)]
    if more is not None:
        skipped.append(f"... and {more} more skipped (see the log)")
        failed.append(f"... and {more} more failed (see the log)")
    assert lines == skipped + failed

    summary = stats.summary()
    assert (f"{n} skipped" in summary) is (n > 0)
    assert (f"{n} failed" in summary) is (n > 0)


def test_default_keeps_a_bounded_report() -> None:
    stats = Stats()
    for i in range(REPORT_LIMIT + 5):
        stats.add_failed(f"p/{i}", "dead")
    assert len(stats.failed) == REPORT_LIMIT
    assert stats.failed_count == REPORT_LIMIT + 5
    assert stats.report_lines()[-1] == "... and 5 more failed (see the log)"


def test_counts_stay_exact_under_concurrent_workers() -> None:
    stats = Stats(keep=10)
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(500):
            stats.add_failed(f"w{worker}/{i}", "err")
            stats.add_bad(f"w{worker}/{i}", "bad")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (stats.failed_count, stats.bad_count) == (4000, 4000)
    assert (len(stats.failed), len(stats.bad)) == (10, 10)


@pytest.mark.parametrize(
    ("skipped", "failed", "expected"),
    [(0, 0, EXIT_OK), (1, 0, EXIT_INCOMPLETE), (0, 1, EXIT_INCOMPLETE)],
    ids=["clean", "one-skipped", "one-failed"],
)
def test_exit_code_comes_from_the_counts_not_the_kept_entries(
    skipped: int, failed: int, expected: int
) -> None:
    stats = Stats(keep=0)  # nothing kept for the report: the count alone must decide
    for i in range(skipped):
        stats.add_bad(f"b/{i}", "bad")
    for i in range(failed):
        stats.add_failed(f"f/{i}", "err")
    assert _exit_code(stats, Report()) == expected
