"""localfs.remove_if_unchanged: an ingest folder's file goes only as it was read."""

from __future__ import annotations

import os
from pathlib import Path

from kcsync.localfs import remove_if_unchanged, restat
from kcsync.model import LocalEntry


def entry_for(root: Path, rel: str, data: bytes) -> LocalEntry:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = os.stat(path)
    return LocalEntry(
        key=rel,
        path=str(path),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        ctime_ns=st.st_ctime_ns,
        dev=st.st_dev,
    )


def test_unchanged_file_goes_with_the_directories_it_leaves_empty(tmp_path: Path) -> None:
    entry = entry_for(tmp_path, "a/b/c.jpg", b"x")
    (tmp_path / "a" / "other.jpg").write_bytes(b"stays")
    assert remove_if_unchanged(entry, tmp_path) is None
    assert not (tmp_path / "a" / "b").exists()
    assert (tmp_path / "a" / "other.jpg").exists()  # "a" is not empty: it stays


def test_the_root_is_never_removed(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    entry = entry_for(root, "only.jpg", b"x")
    assert remove_if_unchanged(entry, root) is None
    assert root.is_dir() and not any(root.iterdir())


def test_a_file_changed_since_it_was_read_stays(tmp_path: Path) -> None:
    entry = entry_for(tmp_path, "d/c.jpg", b"old")
    with open(entry.path, "r+b") as f:  # same size, new bytes: mtime and ctime move
        f.write(b"new")
    os.utime(entry.path, ns=(entry.mtime_ns, entry.mtime_ns))  # mtime put back: ctime tells
    assert remove_if_unchanged(entry, tmp_path) == "changed since it was read"
    assert Path(entry.path).read_bytes() == b"new"


def test_a_file_replaced_by_rename_stays(tmp_path: Path) -> None:
    entry = entry_for(tmp_path, "c.jpg", b"old")
    (tmp_path / "tmp").write_bytes(b"old")
    os.replace(tmp_path / "tmp", entry.path)
    assert remove_if_unchanged(entry, tmp_path) == "changed since it was read"
    assert Path(entry.path).exists()


def test_a_file_held_open_for_writing_stays(tmp_path: Path) -> None:
    entry = entry_for(tmp_path, "c.jpg", b"x")
    entry = restat(entry)
    with open(entry.path, "ab"):
        why = remove_if_unchanged(entry, tmp_path)
    if os.geteuid() == 0 or os.stat(entry.path).st_uid == os.geteuid():  # leases available
        assert why is not None and "open for writing" in why
        assert Path(entry.path).exists()


def test_already_gone_is_said_so(tmp_path: Path) -> None:
    entry = entry_for(tmp_path, "c.jpg", b"x")
    os.unlink(entry.path)
    assert remove_if_unchanged(entry, tmp_path) == "already gone"
