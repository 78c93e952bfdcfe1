from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from watchdog.events import (
    DirDeletedEvent,
    EventsLostEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from kcsync.config import DEFAULT_EXCLUDES, FolderConfig
from kcsync.gate import Gate
from kcsync.localfs import Admission
from kcsync.model import BadEntry, LocalEntry
from kcsync.watcher import Watcher, object_key

ROOT = Path("/data")
FOLDER = FolderConfig(ROOT, "files/", DEFAULT_EXCLUDES)
GATE = Gate(1024)


def admit_all(folder: FolderConfig, rel: str) -> Admission:
    """The gate for paths that exist only in these tests: every file is a plain file."""
    return LocalEntry(folder.prefix + rel, f"{folder.path}/{rel}", 1, 1, 1, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(settle: float = 2.0) -> tuple[Watcher, list[tuple[str, str, dict[str, Any]]], Clock]:
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    clock = Clock()
    watcher = Watcher(
        (FOLDER,),
        jobs.extend,
        settle=settle,
        gate=GATE,
        clock=clock,
        admit_path=admit_all,
        busy=lambda entry: False,
    )
    return watcher, jobs, clock


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/a.txt", "files/a.txt"),
        ("/data/d/b c.txt", "files/d/b c.txt"),
        ("/data/x.part", None),
        ("/data", None),
        ("/elsewhere/a.txt", None),
        ("/data/d/\udcff.txt", None),
    ],
    ids=["file", "nested", "excluded", "the-root", "outside", "not-utf8"],
)
def test_object_key(path: str, expected: str | None) -> None:
    assert object_key(FOLDER, path) == expected


def test_created_then_modified_waits_for_the_settle_time_and_is_one_job() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileCreatedEvent("/data/a.txt"))
    clock.now += 1.5
    watcher.on_event(FOLDER, FileModifiedEvent("/data/a.txt"))
    clock.now += 1.9
    assert watcher.flush() == 0  # the last event was 1.9 s ago: not settled
    clock.now += 0.2
    assert watcher.flush() == 1
    assert jobs == [("files/a.txt", "sync", {"path": "/data/a.txt", "reason": "watcher: sync"})]


def test_close_after_write_is_sent_at_once() -> None:
    watcher, jobs, _ = make()
    watcher.on_event(FOLDER, FileOpenedEvent("/data/a.txt"))
    watcher.on_event(FOLDER, FileModifiedEvent("/data/a.txt"))
    watcher.on_event(FOLDER, FileClosedEvent("/data/a.txt"))
    assert watcher.flush() == 1 and jobs[0][:2] == ("files/a.txt", "sync")


def test_a_file_held_open_for_writing_is_not_sent_when_quiet() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileOpenedEvent("/data/slow.bin"))
    watcher.on_event(FOLDER, FileModifiedEvent("/data/slow.bin"))
    clock.now += 10  # quiet for longer than settle, still open: a slow writer
    assert watcher.flush() == 0
    watcher.on_event(FOLDER, FileOpenedEvent("/data/slow.bin"))  # a reader (our own hashing)
    watcher.on_event(FOLDER, FileClosedNoWriteEvent("/data/slow.bin"))
    assert watcher.flush() == 0
    watcher.on_event(FOLDER, FileClosedEvent("/data/slow.bin"))
    assert watcher.flush() == 1 and len(jobs) == 1


def test_rename_of_a_finished_part_file_sends_the_final_name() -> None:
    watcher, jobs, _ = make()
    watcher.on_event(FOLDER, FileCreatedEvent("/data/v.mp4.part"))
    watcher.on_event(FOLDER, FileMovedEvent("/data/v.mp4.part", "/data/v.mp4"))
    assert watcher.flush() == 1
    assert jobs[0][:2] == ("files/v.mp4", "sync")


def test_rename_within_the_folder_is_a_move() -> None:
    watcher, jobs, _ = make()
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.txt", "/data/b.txt"))
    watcher.flush()
    assert jobs == [
        (
            "files/b.txt",
            "move",
            {
                "path": "/data/b.txt",
                "reason": "watcher: move",
                "src": "files/a.txt",
                "src_path": "/data/a.txt",
            },
        )
    ]


def test_rename_to_an_excluded_name_deletes_after_settling() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.txt", "/data/a.txt.tmp"))
    assert watcher.flush() == 0
    clock.now += 2.1
    watcher.flush()
    assert jobs[0][:2] == ("files/a.txt", "delete")


def test_delete_then_recreate_within_settle_is_a_sync_not_a_delete() -> None:
    # Editors save by deleting and writing anew: the object must never be missing between.
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileDeletedEvent("/data/a.txt"))
    watcher.on_event(FOLDER, FileCreatedEvent("/data/a.txt"))
    clock.now += 3
    watcher.flush()
    assert [op for _, op, _ in jobs] == ["sync"]


def test_directory_deleted_is_one_tree_job() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, DirDeletedEvent("/data/album"))
    clock.now += 3
    watcher.flush()
    assert jobs[0][:2] == ("files/album/", "delete_tree")


def test_stop_flushes_unsettled_hints_into_jobs() -> None:
    watcher, jobs, _ = make()
    watcher.on_event(FOLDER, FileCreatedEvent("/data/a.txt"))
    assert watcher.flush(force=True) == 1 and jobs


class FullObserver:
    def schedule(self, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def start(self) -> None:
        raise AssertionError("not reached")


def test_inotify_limit_is_one_clear_error_and_the_daemon_keeps_going() -> None:
    watcher = Watcher(
        (FOLDER,), lambda jobs: None, settle=1, gate=GATE, observer_factory=FullObserver
    )
    with structlog.testing.capture_logs() as logs:
        watcher.start()
    watcher.stop()
    assert watcher.degraded
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert "sysctl fs.inotify.max_user_watches=" in error["event"]
    assert error["folder"] == "/data"


def test_files_settled_in_one_tick_are_handed_over_in_one_batch() -> None:
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    watcher = Watcher(
        (FOLDER,), calls.append, settle=2.0, gate=GATE, clock=Clock(), admit_path=admit_all
    )
    for i in range(300):  # a burst: each closed after writing, so due at once
        watcher.on_event(FOLDER, FileClosedEvent(f"/data/{i}.jpg"))
    assert watcher.flush() == 300
    assert len(calls) == 1  # one queue transaction for the burst, not 300
    assert sorted(k for k, _, _ in calls[0]) == sorted(f"files/{i}.jpg" for i in range(300))
    assert watcher.flush() == 0 and len(calls) == 1  # nothing handed over twice or empty


def test_a_big_new_directory_is_handed_over_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.events import DirCreatedEvent

    from kcsync import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "WALK_BATCH", 10)
    folder = FolderConfig(tmp_path, "", DEFAULT_EXCLUDES)
    for d in range(5):
        (tmp_path / "new" / str(d)).mkdir(parents=True)
        for i in range(6):
            (tmp_path / "new" / str(d) / f"{i}.txt").write_bytes(b"x")
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    clock = Clock()
    watcher = Watcher((folder,), calls.append, settle=1.0, gate=GATE, clock=clock)
    watcher.on_event(folder, DirCreatedEvent(str(tmp_path / "new")))
    clock.now += 2
    watcher.flush()
    keys = [k for batch in calls for k, _, _ in batch]
    assert sorted(keys) == sorted(f"new/{d}/{i}.txt" for d in range(5) for i in range(6))
    assert len(calls) > 1 and all(len(batch) < 20 for batch in calls)


def refuse_links(folder: FolderConfig, rel: str) -> Admission:
    if rel.startswith("link"):
        return BadEntry(
            f"{folder.path}/{rel}", "symlink points outside the folder", folder.prefix + rel
        )
    return admit_all(folder, rel)


def test_a_path_the_gate_refuses_is_reported_once_and_never_a_job() -> None:
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    watcher = Watcher(
        (FOLDER,),
        jobs.extend,
        settle=2.0,
        gate=GATE,
        clock=Clock(),
        admit_path=refuse_links,
        busy=lambda entry: False,
    )
    with structlog.testing.capture_logs() as logs:
        watcher.on_event(FOLDER, FileClosedEvent("/data/link"))
        watcher.on_event(FOLDER, FileClosedEvent("/data/ok.txt"))
        watcher.flush()
        watcher.flush()
    assert [k for k, _, _ in jobs] == ["files/ok.txt"]
    assert [(e["event"], e["path"]) for e in logs] == [("skipped", "/data/link")]


def test_a_move_to_a_refused_path_deletes_the_old_name() -> None:
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    watcher = Watcher(
        (FOLDER,),
        jobs.extend,
        settle=2.0,
        gate=GATE,
        clock=Clock(),
        admit_path=refuse_links,
        busy=lambda entry: False,
    )
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.txt", "/data/link"))
    watcher.flush()
    assert [(k, op) for k, op, _ in jobs] == [("files/a.txt", "delete")]


def test_a_file_still_open_for_writing_waits_even_when_its_open_was_missed() -> None:
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    writing = {"/data/a.txt"}
    clock = Clock()
    watcher = Watcher(
        (FOLDER,),
        jobs.extend,
        settle=2.0,
        gate=GATE,
        clock=clock,
        admit_path=admit_all,
        busy=lambda entry: entry.path in writing,
    )
    watcher.on_event(FOLDER, FileCreatedEvent("/data/a.txt"))  # no open event seen
    clock.now += 2.1
    watcher.flush()
    assert jobs == [] and watcher.pending() == 1
    writing.clear()
    watcher.flush()
    assert jobs == []  # asked again only after another settle period
    clock.now += 2.1
    watcher.flush()
    assert [k for k, _, _ in jobs] == ["files/a.txt"]


def test_a_new_directory_goes_through_the_gate_and_the_open_check(tmp_path: Path) -> None:
    from watchdog.events import DirCreatedEvent

    folder = FolderConfig(tmp_path / "root", "", DEFAULT_EXCLUDES)
    new = tmp_path / "root" / "new"
    (new / "cache").mkdir(parents=True)
    (new / "done.txt").write_bytes(b"done")
    (new / "x.part").write_bytes(b"part")
    (tmp_path / "secret.txt").write_bytes(b"private")
    (new / "link").symlink_to(tmp_path / "secret.txt")
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    clock = Clock()
    watcher = Watcher((folder,), calls.append, settle=1.0, gate=GATE, clock=clock)
    with open(new / "writing.bin", "wb") as writer:
        writer.write(b"half")
        watcher.on_event(folder, DirCreatedEvent(str(new)))
        clock.now += 2
        with structlog.testing.capture_logs() as logs:
            watcher.flush()
        assert [k for batch in calls for k, _, _ in batch] == ["new/done.txt"]
        assert [(e["event"], e["reason"]) for e in logs] == [
            ("ignored", "symlink points outside the folder")
        ]
        writer.write(b" and the rest")
    clock.now += 2  # the close event is what normally comes next; without it, the settle
    watcher.flush()
    assert [k for batch in calls for k, _, _ in batch] == ["new/done.txt", "new/writing.bin"]


def test_object_key_leaves_the_state_directory_alone() -> None:
    assert object_key(FOLDER, "/data/.kcsync/kcsync.db", ".kcsync") is None
    assert object_key(FOLDER, "/data/.kcsync-notes", ".kcsync") == "files/.kcsync-notes"


def settled(watcher: Watcher, jobs: list[tuple[str, str, dict[str, Any]]], clock: Clock) -> dict:
    clock.now += 10
    watcher.flush()
    return {key: (op, payload.get("src")) for key, op, payload in jobs}


def test_a_chain_of_renames_carries_the_name_in_the_bucket() -> None:
    watcher, jobs, clock = make()
    for src, dest in (("a", "b"), ("b", "c"), ("c", "d")):
        watcher.on_event(FOLDER, FileMovedEvent(f"/data/{src}.jpg", f"/data/{dest}.jpg"))
    assert settled(watcher, jobs, clock) == {
        "files/d.jpg": ("move", "files/a.jpg"),  # copied from the object that exists
        "files/b.jpg": ("delete", None),  # may hold an object from before: settled too
        "files/c.jpg": ("delete", None),
    }
    moved = next(p for k, _, p in jobs if k == "files/d.jpg")
    assert moved["src_path"] == "/data/a.jpg"


def test_swapping_two_files_through_a_temporary_name() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.jpg", "/data/tmp.jpg"))
    watcher.on_event(FOLDER, FileMovedEvent("/data/b.jpg", "/data/a.jpg"))
    watcher.on_event(FOLDER, FileMovedEvent("/data/tmp.jpg", "/data/b.jpg"))
    assert settled(watcher, jobs, clock) == {
        "files/a.jpg": ("move", "files/b.jpg"),
        "files/b.jpg": ("move", "files/a.jpg"),
        "files/tmp.jpg": ("delete", None),
    }


def test_a_file_renamed_and_renamed_back_is_just_a_sync() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.jpg", "/data/b.jpg"))
    watcher.on_event(FOLDER, FileMovedEvent("/data/b.jpg", "/data/a.jpg"))
    assert settled(watcher, jobs, clock) == {
        "files/a.jpg": ("sync", None),
        "files/b.jpg": ("delete", None),
    }


def test_renamed_then_moved_out_deletes_the_name_in_the_bucket() -> None:
    watcher, jobs, clock = make()
    watcher.on_event(FOLDER, FileMovedEvent("/data/a.jpg", "/data/b.jpg"))
    watcher.on_event(FOLDER, FileMovedEvent("/data/b.jpg", "/elsewhere/b.jpg"))
    assert settled(watcher, jobs, clock) == {
        "files/a.jpg": ("delete", None),
        "files/b.jpg": ("delete", None),
    }


def test_rm_rf_is_one_delete_per_object_not_one_per_event() -> None:
    watcher, jobs, clock = make()
    # inotify's order for `rm -rf /data/album`: files, then directories bottom-up.
    for name in ("album/x/1.jpg", "album/x/2.jpg", "album/3.jpg"):
        watcher.on_event(FOLDER, FileDeletedEvent(f"/data/{name}"))
    watcher.on_event(FOLDER, DirDeletedEvent("/data/album/x"))
    watcher.on_event(FOLDER, FileDeletedEvent("/data/album/x/late.jpg"))  # after its dir
    watcher.on_event(FOLDER, DirDeletedEvent("/data/album"))
    watcher.on_event(FOLDER, FileDeletedEvent("/data/other.jpg"))
    assert settled(watcher, jobs, clock) == {
        "files/album/": ("delete_tree", None),
        "files/other.jpg": ("delete", None),
    }


def test_events_lost_are_one_warning_and_a_reconcile_request() -> None:
    lost: list[FolderConfig] = []
    watcher = Watcher((FOLDER,), lambda jobs: None, settle=1.0, gate=GATE, on_lost=lost.append)
    with structlog.testing.capture_logs() as logs:
        watcher.on_event(FOLDER, EventsLostEvent("/data"))
    assert lost == [FOLDER] and watcher.overflows == 1
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert "overflowed" in warning["event"] and warning["overflows"] == 1


def test_overflows_in_a_burst_are_one_warning_but_each_asks_for_a_reconcile() -> None:
    lost: list[FolderConfig] = []
    clock = Clock()
    watcher = Watcher(
        (FOLDER,), lambda jobs: None, settle=1.0, gate=GATE, clock=clock, on_lost=lost.append
    )
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            watcher.on_event(FOLDER, EventsLostEvent("/data"))
        clock.now += 61
        watcher.on_event(FOLDER, EventsLostEvent("/data"))
    assert len(lost) == 6
    assert [e["overflows"] for e in logs if e["log_level"] == "warning"] == [1, 6]


def test_directories_swapped_through_a_temporary_name_are_moves_of_their_files(
    tmp_path: Path,
) -> None:
    from watchdog.events import DirMovedEvent

    root = tmp_path / "root"
    folder = FolderConfig(root, "", DEFAULT_EXCLUDES)
    for d, names in (("d1", ("x1", "x2")), ("d2", ("y1",))):
        (root / d).mkdir(parents=True)
        for n in names:
            (root / d / f"{n}.bin").write_bytes(n.encode())
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    clock = Clock()
    watcher = Watcher((folder,), calls.append, settle=1.0, gate=GATE, clock=clock)
    watcher.on_event(folder, FileModifiedEvent(str(root / "d1" / "x2.bin")))  # pending
    for src, dest in (("d1", "tmp"), ("d2", "d1"), ("tmp", "d2")):
        os.rename(root / src, root / dest)
        watcher.on_event(folder, DirMovedEvent(str(root / src), str(root / dest)))
        # watchdog's own per-file guesses for a moved directory are ignored
        watcher.on_event(
            folder,
            FileMovedEvent(str(root / src / "x"), str(root / dest / "x"), is_synthetic=True),
        )
    clock.now += 2
    watcher.flush()
    jobs = {k: (op, p.get("src")) for batch in calls for k, op, p in batch}
    assert jobs == {
        "d1/y1.bin": ("move", "d2/y1.bin"),
        "d2/x1.bin": ("move", "d1/x1.bin"),
        "d2/x2.bin": ("move", "d1/x2.bin"),  # its pending change moved with it
        "tmp/": ("delete_tree", None),
    }


def test_files_of_a_new_directory_sent_from_their_own_events_are_not_walked_again(
    tmp_path: Path,
) -> None:
    from watchdog.events import DirCreatedEvent

    folder = FolderConfig(tmp_path, "", DEFAULT_EXCLUDES)
    new = tmp_path / "burst"
    new.mkdir()
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    clock = Clock()
    watcher = Watcher(
        (folder,), calls.append, settle=2.0, gate=GATE, clock=clock, busy=lambda e: False
    )
    watcher.on_event(folder, DirCreatedEvent(str(new)))
    (new / "early.bin").write_bytes(b"written before the watch: no event")
    for name in ("a.bin", "b.bin"):
        (new / name).write_bytes(b"x")
        clock.now += 0.1
        watcher.on_event(folder, FileClosedEvent(str(new / name)))
        watcher.flush()
    clock.now += 2.5  # the directory's walk is due
    watcher.flush()
    keys = [k for batch in calls for k, _, _ in batch]
    assert keys == ["burst/a.bin", "burst/b.bin", "burst/early.bin"]


def test_a_recreated_directory_walks_files_sent_before_it_appeared(tmp_path: Path) -> None:
    from watchdog.events import DirCreatedEvent

    folder = FolderConfig(tmp_path, "", DEFAULT_EXCLUDES)
    new = tmp_path / "d"
    new.mkdir()
    calls: list[list[tuple[str, str, dict[str, Any]]]] = []
    clock = Clock()
    watcher = Watcher(
        (folder,), calls.append, settle=2.0, gate=GATE, clock=clock, busy=lambda e: False
    )
    (new / "f.bin").write_bytes(b"old")
    watcher.on_event(folder, FileClosedEvent(str(new / "f.bin")))
    watcher.flush()  # the old f.bin's job
    clock.now += 1
    # `rm -rf d; mkdir d; cp f.bin d/` faster than the new watch: only the directory's event.
    (new / "f.bin").write_bytes(b"new content")
    watcher.on_event(folder, DirCreatedEvent(str(new)))
    clock.now += 2.5
    watcher.flush()
    assert [k for batch in calls for k, _, _ in batch] == ["d/f.bin", "d/f.bin"]


def test_what_is_remembered_for_new_directories_is_forgotten_in_time(tmp_path: Path) -> None:
    watcher, _jobs, clock = make()
    for i in range(50):
        watcher.on_event(FOLDER, FileClosedEvent(f"/data/{i}.txt"))
    watcher.flush()
    assert len(watcher._recent) == 50
    clock.now += 2.0 + 30.0 + 1
    watcher.flush()
    assert watcher._recent == {}
