"""State files created by root in a service user's state directory go to that user
(store/owner.py): `sudo kcsync status` must not lock the service out of its own state."""

from __future__ import annotations

import os
from pathlib import Path

from kcsync.daemon import LOCK_NAME, state_lock
from kcsync.store.db import Database
from kcsync.store.owner import database_files, hand_over, owner_to_hand_over

SERVICE = (65534, 65534)  # nobody: any owner that is not us


def _service_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() == 0:
        os.chown(state, *SERVICE)
    return state


def _owners(paths: list[Path]) -> set[tuple[int, int]]:
    return {(p.stat().st_uid, p.stat().st_gid) for p in paths}


def test_database_and_its_side_files_keep_the_directory_owner(tmp_path: Path) -> None:
    state = _service_dir(tmp_path)
    db = Database(state / "kcsync.db")
    try:
        db.set_meta("k", "v")
        files = database_files(state / "kcsync.db")
        assert all(p.exists() for p in files)  # WAL mode: -wal and -shm while open
        expected = SERVICE if os.geteuid() == 0 else (os.getuid(), os.getgid())
        assert _owners(files) == {expected}
    finally:
        db.close()


def test_lock_file_keeps_the_directory_owner(tmp_path: Path) -> None:
    state = _service_dir(tmp_path)
    with state_lock(state):
        expected = SERVICE if os.geteuid() == 0 else (os.getuid(), os.getgid())
        assert _owners([state / LOCK_NAME]) == {expected}


def test_nothing_to_hand_over_in_our_own_directory(tmp_path: Path) -> None:
    assert owner_to_hand_over(tmp_path) is None
    assert owner_to_hand_over(tmp_path / "missing") is None


def _someone_else() -> tuple[int, int]:
    """An owner to hand over to: not root when we are root (hand_over acts then), else us
    (anything else would need root to chown to)."""
    return (12345, 12345) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def test_hand_over_skips_missing_files_and_files_of_other_owners(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.write_text("x")
    if os.geteuid() == 0:
        os.chown(mine, *SERVICE)  # not root's: someone else's file is left alone
    before = _owners([mine])
    hand_over([tmp_path / "missing", mine], _someone_else())
    assert _owners([mine]) == before


def test_hand_over_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    # Whoever owns the state directory can leave "kcsync.db-wal" as a link to a file of
    # root's: handing it over must change the link at most, never what it points to.
    target = tmp_path / "shadow"
    target.write_text("root's")
    state = _service_dir(tmp_path)
    link = state / "kcsync.db-wal"
    link.symlink_to(target)
    before = _owners([target])
    hand_over(database_files(state / "kcsync.db"), _someone_else())
    assert _owners([target]) == before
