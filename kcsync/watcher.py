"""Filesystem events -> jobs. The watcher is a hint; the reconcile is the truth (DESIGN §2).

The watchdog handler only records what happened, in memory. A settle thread turns those
hints into persistent jobs once a file is complete: closed after writing (inotify
close-write), or left alone for ``settle`` seconds while nobody holds it open. Every file
goes through the same gate as the reconcile's scan (DESIGN §4a) before it becomes a job.
An event lost in a crash before it became a job is found by the reconcile at start.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
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
from kcsync.errors import FileChangedError, LocalFileError
from kcsync.gate import Gate, dir_refusal, ours_to_judge, relative_name
from kcsync.localfs import Admission, admit, open_file
from kcsync.model import LocalEntry

log = structlog.get_logger("kcsync.watcher")

SYNC, DELETE, MOVE, DELETE_TREE = "sync", "delete", "move", "delete_tree"
NEW_DIR = "new_dir"  # in memory only: walked by the settle thread into SYNC jobs
DIR_MOVE = "dir_move"  # in memory only: walked by the settle thread into MOVE jobs
# Where NEW_DIR and DIR_MOVE hints are filed: beside a directory's own delete ("dir/").
_DIR_SUFFIX = {NEW_DIR: "/\0new", DIR_MOVE: "/\0move", DELETE_TREE: "/"}
TICK = 0.05
LOST_WARNING_EVERY = 60.0  # seconds between warnings about a kernel queue overflow
# A file held open this long with no event is sent anyway (a log kept open for days); the
# reconcile would send it too, this only makes it sooner.
OPEN_PATIENCE = 60.0
# How long past a new directory's settle time the files handed over from their own events
# are remembered, so the directory's walk does not hand them over again (_walk_new_dir).
# A walk later than this (a stalled settle thread) only costs a redundant job per file.
RECENT_SLACK = 30.0

Job = tuple[str, str, dict[str, Any]]  # key, op, payload
# Called with all the jobs a settle tick found: one transaction for a burst of files.
Enqueue = Callable[[list[Job]], None]
# Jobs are handed over in batches of this many: a huge tree moved in gets workers going
# before all of it has been judged.
WALK_BATCH = 1000
# The gate, by folder and relative name (a seam for tests; the real one is localfs.admit).
Admit = Callable[[FolderConfig, str], Admission]


@dataclass
class Hint:
    op: str
    path: str
    due: float
    folder: FolderConfig
    key: str = ""  # the object name it is filed under ("" only for NEW_DIR)
    src_key: str | None = None
    src_path: str | None = None


def object_key(folder: FolderConfig, path: str, state_rel: str | None = None) -> str | None:
    """The object name for a path under ``folder``, or None when the name is not ours to
    judge (the same rule the reconcile applies to a listing). Whether the file itself may
    be synced is the gate's to say, when the hint is due."""
    rel = relative_name(str(folder.path), path)
    if rel is None:
        return None
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return None  # the reconcile reports it; the watcher only hints
    return folder.prefix + rel if ours_to_judge(rel, folder.exclude, state_rel) else None


def still_writing(entry: LocalEntry) -> bool:
    """Opened as a job will open it: held open for writing by someone (the read lease says
    so even when we missed the open event, as in a directory created a moment ago), or
    changed under us. Any other trouble is for the job to report."""
    try:
        open_file(entry).close()
    except FileChangedError:  # FileBusyError among them
        return True
    except LocalFileError:
        return False
    return False


class Watcher:
    def __init__(
        self,
        folders: tuple[FolderConfig, ...],
        enqueue: Enqueue,
        *,
        settle: float,
        gate: Gate,
        clock: Callable[[], float] = time.monotonic,
        observer_factory: Callable[[], Any] = Observer,
        admit_path: Admit | None = None,
        busy: Callable[[LocalEntry], bool] = still_writing,
        on_lost: Callable[[FolderConfig], None] = lambda folder: None,
    ) -> None:
        self._on_lost = on_lost
        self.overflows = 0  # times the kernel dropped events
        self._warned_at: float | None = None
        # watchdog prints its own unstructured line for an overflow; ours (below) is the
        # one in the JSON log, with a count and what is done about it.
        logging.getLogger("watchdog.observers").setLevel(logging.ERROR)
        self._folders = folders
        self._gate = gate
        self._admit: Admit = admit_path or (lambda folder, rel: admit(folder, rel, gate))
        self._busy = busy
        self._enqueue = enqueue
        self._settle = settle
        self._clock = clock
        self._observer_factory = observer_factory
        self._lock = threading.Lock()
        self._hints: dict[str, Hint] = {}
        # Key -> when its own event became a sync or move job (the clock above), oldest
        # first: see _walk_new_dir. Only the settle thread (and stop, after it) uses it.
        self._recent: dict[str, float] = {}
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
        elif isinstance(event, FileMovedEvent | DirMovedEvent) and event.is_synthetic:
            # watchdog's guesses for the files of a moved directory, made by walking the
            # destination when it gets to it: after `mv d1 tmp; mv tmp d2` that walk of tmp
            # finds nothing. The directory's own move is followed instead (below).
            pass
        elif isinstance(event, FileMovedEvent):
            self._moved(folder, src, os.fsdecode(event.dest_path), now)
        elif isinstance(event, DirCreatedEvent):
            # A directory moved in from outside arrives as this one event; its files may
            # never get their own. The settle thread walks it.
            self._hint(folder, src, NEW_DIR, now + self._settle)
        elif isinstance(event, DirDeletedEvent):
            self._hint(folder, src, DELETE_TREE, now + self._settle)
        elif isinstance(event, EventsLostEvent):
            self._lost(folder)
        elif isinstance(event, DirMovedEvent):
            # A destination outside the folder arrives as DirDeletedEvent, a source outside
            # as DirCreatedEvent.
            self._dir_moved(folder, src, os.fsdecode(event.dest_path), now)

    def _open(self, path: str, delta: int) -> None:
        with self._lock:
            count = self._opens.get(path, 0) + delta
            if count > 0:
                self._opens[path] = count
            else:
                self._opens.pop(path, None)

    def _key(self, folder: FolderConfig, path: str) -> str | None:
        return object_key(folder, path, self._gate.state_rel(folder))

    def _hint(self, folder: FolderConfig, path: str, op: str, due: float) -> None:
        key = self._key(folder, path)
        if key is None:
            return
        key += _DIR_SUFFIX.get(op, "")
        with self._lock:
            current = self._hints.get(key)
            if current is not None and current.op == MOVE and op == SYNC:
                current.due = max(current.due, due)  # still a move; the copy checks the stat
                return
            if op == DELETE and self._tree_pending(key):
                return  # the directory's own delete covers it
            if op == DELETE_TREE:
                # `rm -rf` reports every file, then every directory bottom-up: the outermost
                # directory's one job deletes each object once, instead of a job per file,
                # per sub-directory and per parent all deleting the same objects.
                for other in [k for k, h in self._hints.items() if k.startswith(key)]:
                    if self._hints[other].op in (DELETE, DELETE_TREE):
                        del self._hints[other]
            self._hints[key] = Hint(op, path, due, folder, key)

    def _tree_pending(self, key: str) -> bool:
        """A delete of a directory above ``key`` is waiting (called under the lock)."""
        at = key.find("/")
        while at != -1:
            hint = self._hints.get(key[: at + 1])
            if hint is not None and hint.op == DELETE_TREE:
                return True
            at = key.find("/", at + 1)
        return False

    def _moved(self, folder: FolderConfig, src: str, dest: str, now: float) -> None:
        src_key, dest_key = self._key(folder, src), self._key(folder, dest)
        with self._lock:
            before = self._hints.pop(src_key, None) if src_key is not None else None
            count = self._opens.pop(src, 0)
            if count:
                self._opens[dest] = count
        # The name whose object holds this file's content: through a chain of renames
        # inside the settle window (a -> b -> c) it is still the first one, a. The names
        # in between (b) may hold objects of their own from before: they are settled by
        # a delete hint, which does nothing if the name exists again when it runs.
        origin, origin_path = src_key, src
        if before is not None and before.op == MOVE and before.src_key is not None:
            origin, origin_path = before.src_key, before.src_path or src
            self._hint(folder, src, DELETE, now + self._settle)
        if dest_key is None:
            if origin is not None:
                self._hint(folder, origin_path, DELETE, now + self._settle)
            return
        if origin is None or origin == dest_key:
            # "photo.jpg.part" -> "photo.jpg" (the final name is complete), or a file
            # moved back to where it was.
            self._hint(folder, dest, SYNC, now)
            return
        with self._lock:
            self._hints[dest_key] = Hint(
                MOVE, dest, now, folder, dest_key, src_key=origin, src_path=origin_path
            )

    def _dir_moved(self, folder: FolderConfig, src: str, dest: str, now: float) -> None:
        """A directory renamed inside the folder: each file in it is a move, carried
        through chains and swaps (``mv d1 tmp; mv d2 d1; mv tmp d2``) as for files."""
        src_key, dest_key = self._key(folder, src), self._key(folder, dest)
        if src_key is None:
            self._hint(folder, dest, NEW_DIR, now + self._settle)
            return
        with self._lock:
            before = self._hints.pop(src_key + _DIR_SUFFIX[DIR_MOVE], None)
            appeared = self._hints.pop(src_key + _DIR_SUFFIX[NEW_DIR], None)
            self._follow(src_key + "/", src, dest_key, dest)
        origin, origin_path = src_key, src
        if before is not None and before.src_key is not None:
            origin, origin_path = before.src_key, before.src_path or src
            # The name in between may hold objects of its own from before.
            self._hint(folder, src, DELETE_TREE, now + self._settle)
        if dest_key is None:  # renamed to an excluded name: its objects go
            self._hint(folder, origin_path, DELETE_TREE, now + self._settle)
            return
        if appeared is not None or origin == dest_key:
            # New a moment ago (nothing of it in the bucket yet), or back where it was.
            self._hint(folder, dest, NEW_DIR, now + self._settle)
            return
        with self._lock:
            key = dest_key + _DIR_SUFFIX[DIR_MOVE]
            self._hints[key] = Hint(
                DIR_MOVE,
                dest,
                now + self._settle,
                folder,
                key,
                src_key=origin,
                src_path=origin_path,
            )

    def _follow(self, prefix: str, src: str, dest_key: str | None, dest: str) -> None:
        """Hints for files below a directory that moved now name where it went (called
        under the lock): a file renamed into d1 just before d1 itself moved is still a
        move of that file."""
        for key in [k for k in self._hints if k.startswith(prefix)]:
            if self._hints[key].op in (DELETE, DELETE_TREE):
                continue  # those name objects in the bucket, which did not move
            hint = self._hints.pop(key)
            if dest_key is None:
                continue
            rest = key[len(prefix) :]
            new_key = f"{dest_key}/{rest}"
            path = dest + hint.path[len(src) :] if hint.path.startswith(src) else hint.path
            if hint.op == SYNC:  # a changed file that moved: its old object must go too
                hint = replace(hint, op=MOVE, src_key=key, src_path=hint.path)
            self._hints[new_key] = replace(hint, key=new_key, path=path)

    def _lost(self, folder: FolderConfig) -> None:
        """The kernel dropped events (inotify queue overflow): nothing seen can be trusted
        to be complete, so the folder is reconciled at once rather than at the next tick.
        A burst overflows the queue again and again: one warning a minute, with the count,
        while every overflow asks for the (coalesced) reconcile."""
        now = self._clock()
        with self._lock:
            self.overflows += 1
            count = self.overflows
            warn = self._warned_at is None or now - self._warned_at >= LOST_WARNING_EVERY
            if warn:
                self._warned_at = now
        if warn:
            log.warning(
                "inotify queue overflowed: events were lost; reconciling the folder now",
                folder=str(folder.path),
                overflows=count,
            )
        self._on_lost(folder)

    # -- settle thread -----------------------------------------------------------------------

    def _settle_loop(self) -> None:
        while not self._stop.wait(TICK):
            self.flush()

    def flush(self, *, force: bool = False) -> int:
        """Turn due hints into jobs; all of them when ``force`` (at shutdown)."""
        now = self._clock()
        with self._lock:
            new_dirs = self._take(
                lambda hint: hint.op in (NEW_DIR, DIR_MOVE) and (force or hint.due <= now)
            )
        for hint in new_dirs:
            self._walk_new_dir(hint, now)
        with self._lock:
            due = self._take(lambda h: force or (h.due <= now and self._complete(h, now)))
        self._forget_recent(now)
        jobs: list[Job] = []
        for hint in due:
            job = self._job(hint, now, force)
            if job is not None:
                jobs.append(job)
                if job[1] in (SYNC, MOVE):
                    self._recent.pop(job[0], None)  # re-inserted last: the dict stays in order
                    self._recent[job[0]] = now
            if len(jobs) >= WALK_BATCH:
                self._enqueue(jobs)
                jobs = []
        if jobs:
            self._enqueue(jobs)
        return len(new_dirs) + len(due)

    def _forget_recent(self, now: float) -> None:
        cutoff = now - self._settle - RECENT_SLACK
        while self._recent:
            oldest = next(iter(self._recent))
            if self._recent[oldest] >= cutoff:
                return
            del self._recent[oldest]

    def _take(self, ready: Callable[[Hint], bool]) -> list[Hint]:
        taken = [(key, hint) for key, hint in self._hints.items() if ready(hint)]
        for key, _ in taken:
            del self._hints[key]
        return [hint for _, hint in taken]

    def _job(self, hint: Hint, now: float, force: bool) -> Job | None:
        key = hint.key
        payload: dict[str, Any] = {"path": hint.path, "reason": f"watcher: {hint.op}"}
        if hint.op in (DELETE, DELETE_TREE):
            return key, hint.op, payload
        verdict = self._admit(hint.folder, key[len(hint.folder.prefix) :])
        if isinstance(verdict, LocalEntry):
            # Not while someone still writes it (we may have missed the open: a file in a
            # directory created a moment ago is written before its watch exists). At
            # shutdown it becomes a job anyway, and the job's own open check holds it.
            if not force and self._busy(verdict):
                with self._lock:  # a newer hint for the same name wins
                    self._hints.setdefault(key, replace(hint, due=now + self._settle))
                return None
            if hint.op == MOVE:
                payload.update(src=hint.src_key, src_path=hint.src_path)
            return key, hint.op, payload
        if verdict is not None:
            log.warning(verdict.event, path=verdict.path, reason=verdict.reason)
        if hint.op == MOVE and hint.src_key is not None:
            # Moved to a name that is not synced: the old name's file is gone all the same.
            return hint.src_key, DELETE, {"path": hint.src_path, "reason": "watcher: moved"}
        return None

    def _walk_new_dir(self, hint: Hint, now: float) -> None:
        """A directory that appeared (created, moved in whole, or renamed): each file in
        it becomes a hint like any event's, judged by the gate and the open check when
        due, never a job at once (files written into it may still be open). In a renamed
        directory each file is a move from its name under the old one."""
        folder, root = hint.folder, str(hint.folder.path)
        # A file whose own event became a job since the directory appeared needs no hint
        # from the walk: that job reads it after the watch on the directory existed, so
        # any earlier write is in what it reads, and any later one has its own event.
        # Without this, a burst written into a new directory was sent once and then, when
        # the walk came, opened, judged and hashed all over again as a second job per file.
        # Not for a renamed directory: its walk's hints are moves, which delete old names.
        created = hint.due - self._settle if hint.op == NEW_DIR else float("inf")
        for dirpath, dirs, files in os.walk(hint.path):
            rel_dir = relative_name(root, dirpath)
            if rel_dir is None:
                return
            # Pruned as the scan prunes: excluded directories and our own state.
            dirs[:] = [d for d in dirs if dir_refusal(f"{rel_dir}/{d}", folder, self._gate) is None]
            for name in files:
                path = os.path.join(dirpath, name)
                key = self._key(folder, path)
                if key is None or self._recent.get(key, float("-inf")) >= created:
                    continue
                found = Hint(SYNC, path, now, folder, key)
                if hint.op == DIR_MOVE and hint.src_key is not None and hint.src_path:
                    inside = os.path.relpath(path, hint.path)
                    found = replace(
                        found,
                        op=MOVE,
                        src_key=hint.src_key + "/" + inside.replace(os.sep, "/"),
                        src_path=os.path.join(hint.src_path, inside),
                    )
                with self._lock:  # a file with its own, later event keeps that hint
                    self._hints.setdefault(key, found)

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
