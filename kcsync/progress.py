"""Counting what a run did, a live progress line on a terminal, and the final summary."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from kcsync.logs import status_line
from kcsync.units import format_size, plural

# Skipped and failed paths kept for the report, per list. A daemon runs for months and a dead
# job is revived and can die again every reconcile, so keeping every one grew without end.
# The counts stay exact, and each path is in the log as it happens ("skipped", "job failed").
REPORT_LIMIT = 1000


@dataclass
class Stats:
    """Thread-safe counters of one run; workers and the reconcile both add to them."""

    planned_files: int = 0
    planned_bytes: int = 0
    planned_deletes: int = 0  # a dry run's "would delete" lines
    uploaded: int = 0
    uploaded_bytes: int = 0
    sent_bytes: int = 0
    adopted: int = 0
    deleted: int = 0
    unchanged: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # the first `keep` skipped
    failed: list[tuple[str, str]] = field(default_factory=list)  # the first `keep` failed
    bad_count: int = 0  # every skip, kept or not
    failed_count: int = 0
    ignored: list[tuple[str, str]] = field(default_factory=list)  # the first `keep` ignored
    ignored_count: int = 0  # FIFOs, links out of the folder: reported, no exit 1
    failed_folders: int = 0  # folders not synced at all (missing, unreadable)
    keep: int = REPORT_LIMIT
    refused_deletes: int = 0
    removed_local: int = 0  # files removed after a verified upload (after_upload: delete)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def add_bad(self, path: str, reason: str, *, ignored: bool = False) -> None:
        with self._lock:
            if ignored:
                self.ignored_count += 1
                if len(self.ignored) < self.keep:
                    self.ignored.append((path, reason))
                return
            self.bad_count += 1
            if len(self.bad) < self.keep:
                self.bad.append((path, reason))

    def add_failed(self, key: str, error: str) -> None:
        with self._lock:
            self.failed_count += 1
            if len(self.failed) < self.keep:
                self.failed.append((key, error))

    def report_lines(self) -> list[str]:
        """One line per kept skipped or failed path, and how many more were left out."""
        lines = [f"ignored: {path}: {reason}" for path, reason in self.ignored]
        if self.ignored_count > len(self.ignored):
            more = self.ignored_count - len(self.ignored)
            lines.append(f"... and {more} more ignored (see the log)")
        lines += [f"skipped: {path}: {reason}" for path, reason in self.bad]
        if self.bad_count > len(self.bad):
            lines.append(f"... and {self.bad_count - len(self.bad)} more skipped (see the log)")
        lines += [f"failed: {key}: {error}" for key, error in self.failed]
        if self.failed_count > len(self.failed):
            lines.append(
                f"... and {self.failed_count - len(self.failed)} more failed (see the log)"
            )
        return lines

    @property
    def done_files(self) -> int:
        return self.uploaded + self.adopted

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.sent_bytes / elapsed if elapsed > 0 else 0.0
        parts = [
            f"{self.uploaded} uploaded ({format_size(self.uploaded_bytes)}, {format_size(rate)}/s)",
            f"{self.adopted} already present",
            f"{self.deleted} deleted",
            f"{self.unchanged} unchanged",
        ]
        if self.refused_deletes:
            parts.append(f"{plural(self.refused_deletes, 'delete')} refused by the guard")
        if self.ignored_count:
            parts.append(f"{self.ignored_count} ignored")
        if self.bad_count:
            parts.append(f"{self.bad_count} skipped")
        if self.failed_count:
            parts.append(f"{self.failed_count} failed")
        if self.failed_folders:
            parts.append(f"{plural(self.failed_folders, 'folder')} not synced")
        return f"kcsync: {', '.join(parts)} in {elapsed:.1f}s"

    def dry_run_summary(self) -> str:
        return (
            f"dry run: {plural(self.planned_files, 'file')} to send "
            f"({format_size(self.planned_bytes)}), {plural(self.planned_deletes, 'delete')}, "
            "nothing changed"
        )


class ProgressLine:
    """Redraws one status line on a terminal twice a second; silent elsewhere."""

    def __init__(
        self,
        stats: Stats,
        stream: TextIO | None = None,
        interval: float = 0.5,
        *,
        moved: Callable[[], int] | None = None,
    ) -> None:
        self._stats = stats
        # Bytes as they go out (read for sending, counted per block): a 300 MiB segment
        # upload moves the line all along, where the finished uploads' total stays at 0 B.
        self._moved = moved or (lambda: stats.sent_bytes)
        self._stream = stream or sys.stderr
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.enabled = self._stream.isatty()

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="kcsync-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            status_line.clear(self._stream)
            self._stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            status_line.draw(self._stream, self.text())

    def text(self) -> str:
        s = self._stats
        elapsed = max(time.monotonic() - s.started, 1e-6)
        moved = self._moved()
        return (
            f"{s.done_files}/{s.planned_files} files  "
            f"{format_size(moved)}/{format_size(s.planned_bytes)}  "
            f"{format_size(moved / elapsed)}/s"
        )
