"""Filesystem events -> jobs. The watcher is a hint; the reconcile is the truth (DESIGN §2).

The watchdog handler only records what happened, in memory. A settle thread turns those
hints into persistent jobs once a file is complete: closed after writing (inotify
close-write), or left alone for ``settle`` seconds while nobody holds it open. An event
lost in a crash before it became a job is found by the reconcile at start.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from kcsync.config import FolderConfig
from kcsync.localfs import is_excluded_path

log = structlog.get_logger("kcsync.watcher")

SYNC, DELETE, MOVE, DELETE_TREE = "sync", "delete", "move", "delete_tree"
NEW_DIR = "new_dir"  # in memory only: walked by the settle thread into SYNC jobs
TICK = 0.05
# A file held open this long with no event is sent anyway (a log kept open for days); the
# reconcile would send it too, this only makes it sooner.
OPEN_PATIENCE = 60.0

Job = tuple[str, str, dict[str, Any]]  # key, op, payload
# Called with all the jobs a settle tick found: one transaction for a burst of files.
Enqueue = Callable[[list[Job]], None]
# A new directory's files are handed over in batches of this many as the walk goes.
WALK_BATCH = 1000


@dataclass
class Hint:
    op: str
    path: str
    due: float
    folder: FolderConfig
    src_key: str | None = None
    src_path: str | None = None


def object_key(folder: FolderConfig, path: str) -> str | None:
    """The object name for a path under ``folder``, or None if it is not one we sync."""
    rel = os.path.relpath(path, folder.path)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return None
    rel = rel.replace(os.sep, "/")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return None  # the reconcile reports it; the watcher only hints
    if is_excluded_path(rel, folder.exclude):
        return None
    return folder.prefix + rel


class Watcher:
    def __init__(
        self,
        folders: tuple[FolderConfig, ...],
        enqueue: Enqueue,
        *,
        settle: float,
        clock: Callable[[], float] = time.monotonic,
        observer_factory: Callable[[], Any] = Observer,
    ) -> None:
        self._folders = folders
        self._enqueue = enqueue
        self._settle = settle
        self._clock = clock
        self._observer_factory = observer_factory
        self._lock = threading.Lock()
        self._hints: dict[str, Hint] = {}
        self._opens: dict[str, int] = {}
        self._stop = threading.Event()
        self._observers: list[Any] = []
        self._thread: threading.Thread | None = None
        self.degraded = False  # True when some folder could not be watched

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for folder in self._folders:
            observer = self._observer_factory()
            handler = _Handler(self, folder)
            try:
                observer.schedule(handler, str(folder.path), recursive=True)
                observer.start()
            except OSError as exc:
                self._cannot_watch(folder, exc)
                continue
            self._observers.append(observer)
        self._thread = threading.Thread(target=self._settle_loop, name="kcsync-settle", daemon=True)
        self._thread.start()

    def _cannot_watch(self, folder: FolderConfig, exc: OSError) -> None:
        self.degraded = True
        if exc.errno in (errno.ENOSPC, errno.EMFILE):
            log.error(
                "cannot watch folder: inotify limit reached; changes are picked up by the "
                "periodic reconcile only. Raise the limit with: "
                "sysctl fs.inotify.max_user_watches=1048576 fs.inotify.max_user_instances=1024",
                folder=str(folder.path),
                error=str(exc),
            )
        else:
            log.error(
                "cannot watch folder; relying on the periodic reconcile",
                folder=str(folder.path),
                error=str(exc),
            )

    def stop(self) -> None:
        self._stop.set()
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join()
        if self._thread is not None:
            self._thread.join()
        self.flush(force=True)

    # -- events (observer threads) -------------------------------------------------------------

    def on_event(self, folder: FolderConfig, event: FileSystemEvent) -> None:
        now = self._clock()
        src = os.fsdecode(event.src_path)
        if isinstance(event, FileOpenedEvent):
            self._open(src, +1)
        elif isinstance(event, FileClosedNoWriteEvent):
            self._open(src, -1)
        elif isinstance(event, FileClosedEvent):
            self._open(src, -1)
            self._hint(folder, src, SYNC, now)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._hint(folder, src, SYNC, now + self._settle)
        elif isinstance(event, FileDeletedEvent):
            self._hint(folder, src, DELETE, now + self._settle)
        elif isinstance(event, FileMovedEvent):
            self._moved(folder, src, os.fsdecode(event.dest_path), now)
        elif isinstance(event, DirCreatedEvent):
            # A directory moved in from outside arrives as this one event; its files may
            # never get their own. The settle thread walks it.
            self._hint(folder, src, NEW_DIR, now + self._settle)
        elif isinstance(event, DirDeletedEvent):
            self._hint(folder, src, DELETE_TREE, now + self._settle)
        elif isinstance(event, DirMovedEvent):
            # watchdog follows with one FileMovedEvent per file inside, which copy and delete
            # object by object; a destination outside the folder arrives as DirDeletedEvent.
            pass

    def _open(self, path: str, delta: int) -> None:
        with self._lock:
            count = self._opens.get(path, 0) + delta
            if count > 0:
                self._opens[path] = count
            else:
                self._opens.pop(path, None)

    def _hint(self, folder: FolderConfig, path: str, op: str, due: float) -> None:
        key = object_key(folder, path)
        if key is None:
            return
        if op in (DELETE_TREE, NEW_DIR):
            key += "/" if op == DELETE_TREE else "/\0new"
        with self._lock:
            current = self._hints.get(key)
            if current is not None and current.op == MOVE and op == SYNC:
                current.due = max(current.due, due)  # still a move; the copy checks the stat
                return
            self._hints[key] = Hint(op, path, due, folder)

    def _moved(self, folder: FolderConfig, src: str, dest: str, now: float) -> None:
        src_key, dest_key = object_key(folder, src), object_key(folder, dest)
        with self._lock:
            if src_key is not None:
                self._hints.pop(src_key, None)
            count = self._opens.pop(src, 0)
            if count:
                self._opens[dest] = count
        if dest_key is None:
            if src_key is not None:
                self._hint(folder, src, DELETE, now + self._settle)
            return
        if src_key is None:  # e.g. "photo.jpg.part" -> "photo.jpg": the final name is complete
            self._hint(folder, dest, SYNC, now)
            return
        with self._lock:
            self._hints[dest_key] = Hint(MOVE, dest, now, folder, src_key=src_key, src_path=src)

    # -- settle thread -----------------------------------------------------------------------

    def _settle_loop(self) -> None:
        while not self._stop.wait(TICK):
            self.flush()

    def flush(self, *, force: bool = False) -> int:
        """Turn due hints into jobs; all of them when ``force`` (at shutdown)."""
        now = self._clock()
        with self._lock:
            due = [
                (key, hint)
                for key, hint in self._hints.items()
                if force or (hint.due <= now and self._complete(hint, now))
            ]
            for key, _ in due:
                del self._hints[key]
        jobs: list[Job] = []
        for key, hint in due:
            if hint.op == NEW_DIR:
                self._walk_new_dir(hint, jobs)
                continue
            payload: dict[str, Any] = {"path": hint.path, "reason": f"watcher: {hint.op}"}
            if hint.op == MOVE:
                payload.update(src=hint.src_key, src_path=hint.src_path)
            jobs.append((key, hint.op, payload))
        if jobs:
            self._enqueue(jobs)
        return len(due)

    def _walk_new_dir(self, hint: Hint, jobs: list[Job]) -> None:
        for dirpath, _dirs, files in os.walk(hint.path):
            for name in files:
                path = os.path.join(dirpath, name)
                key = object_key(hint.folder, path)
                if key is not None:
                    jobs.append((key, SYNC, {"path": path, "reason": "watcher: new directory"}))
            if len(jobs) >= WALK_BATCH:  # a huge tree moved in: workers start before the end
                self._enqueue(jobs[:])
                jobs.clear()

    def _complete(self, hint: Hint, now: float) -> bool:
        if hint.op != SYNC or hint.path not in self._opens:
            return True
        return now - hint.due > OPEN_PATIENCE  # still open for writing: wait for the close

    def pending(self) -> int:
        with self._lock:
            return len(self._hints)


class _Handler(FileSystemEventHandler):
    """Only records: no I/O beyond a directory walk, no network, no database."""

    def __init__(self, watcher: Watcher, folder: FolderConfig) -> None:
        super().__init__()
        self._watcher = watcher
        self._folder = folder

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher.on_event(self._folder, event)
        except Exception:  # an odd event must not kill the observer thread
            log.exception("watch event failed", path=str(event.src_path))
