"""progress.Stats: a long-running daemon keeps a bounded sample of failed paths, exact counts."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from kcsync.config import FolderConfig
from kcsync.daemon import _exit_code, skip_report
from kcsync.errors import EXIT_INCOMPLETE, EXIT_OK
from kcsync.progress import REPORT_LIMIT, ProgressLine, Stats
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


def test_ignored_files_are_reported_but_do_not_fail_the_run() -> None:
    # A FIFO or a link out of the folder made every run exit 1 until excluded (issue 20).
    stats = Stats()
    stats.add_bad("/data/pipe", "not a regular file (fifo)", ignored=True)
    assert _exit_code(stats, Report()) == EXIT_OK
    assert stats.report_lines() == ["ignored: /data/pipe: not a regular file (fifo)"]
    assert "1 ignored" in stats.summary() and "skipped" not in stats.summary()
    stats.add_bad("/data/secret", "cannot stat: Permission denied")
    assert _exit_code(stats, Report()) == EXIT_INCOMPLETE


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, "dry run: 0 files to send (0 B), 0 deletes, nothing changed"),
        (
            {"planned_files": 1, "planned_bytes": 2048, "planned_deletes": 1},
            "dry run: 1 file to send (2.0 KiB), 1 delete, nothing changed",
        ),
        ({"planned_files": 3, "planned_deletes": 2}, "dry run: 3 files to send (0 B), 2 deletes"),
    ],
    ids=["nothing", "one-each", "several"],
)
def test_dry_run_summary_counts_deletes_too(counts: dict[str, int], expected: str) -> None:
    stats = Stats()
    stats.add(**counts)
    assert stats.dry_run_summary().startswith(expected)


def test_summary_words_agree_with_their_counts() -> None:
    stats = Stats()
    stats.add(refused_deletes=1, failed_folders=1)
    summary = stats.summary()
    assert "1 delete refused by the guard" in summary and "1 folder not synced" in summary
    stats.add(refused_deletes=1, failed_folders=1)
    summary = stats.summary()
    assert "2 deletes refused by the guard" in summary and "2 folders not synced" in summary


def test_a_missing_folder_fails_the_run() -> None:
    assert _exit_code(Stats(), Report(folder_errors=["/x does not exist"])) == EXIT_INCOMPLETE


@pytest.mark.parametrize(
    ("key", "error", "expected"),
    [
        ("files/a.txt", "/data/a.txt: vanished", ("/data/a.txt", "vanished")),
        ("files/d/p", "/data/d/p: not a file", ("/data/d/p", "not a file")),
        ("other/x", "/elsewhere/x: odd", ("other/x", "/elsewhere/x: odd")),
    ],
    ids=["file", "nested", "not-under-a-folder"],
)
def test_a_jobs_skip_names_the_path_once(key: str, error: str, expected: tuple[str, str]) -> None:
    folders = (FolderConfig(Path("/data"), "files/", ()),)
    assert skip_report(folders, key, error) == expected


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_never_run_into_the_progress_line() -> None:
    from kcsync.logs import _LogStream, status_line

    tty = _Tty()
    logs = _LogStream(tty)
    status_line.draw(tty, "3/10 files")
    logs.write("uploaded a.txt")  # print() writes the message, then its newline
    status_line.draw(tty, "4/10 files")  # a redraw in between must not erase it
    logs.write("\n")
    status_line.clear(tty)
    # The status line is cleared before the log line, which stands whole on its own.
    assert tty.getvalue() == ("\r\x1b[K3/10 files\r\x1b[K4/10 files\r\x1b[Kuploaded a.txt\n")


def test_progress_counts_bytes_as_they_go_not_when_files_finish() -> None:
    stats = Stats()
    stats.add(planned_files=1, planned_bytes=300 * 1024 * 1024)
    moved = [0]
    line = ProgressLine(stats, _Tty(), moved=lambda: moved[0])
    assert line.text().startswith("0/1 files  0 B/300.0 MiB")
    moved[0] = 64 * 1024 * 1024  # one segment out, the upload not finished
    assert line.text().startswith("0/1 files  64.0 MiB/300.0 MiB")
