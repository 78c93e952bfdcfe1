"""The restore directory layer (restorefs.py): no symlink followed, nothing partial under a
real name, a journal that keeps only what was fsynced."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kcsync import restorefs
from kcsync.errors import LocalFileError
from kcsync.restorefs import Partial, RestoreDir, existing, hash_existing, temp_names


def test_directories_are_created_and_symlinks_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    root = RestoreDir(out, create=True)
    (out / "link").symlink_to(outside)
    (out / "file").write_bytes(b"x")
    try:
        with root.directory(("a", "b"), create=True) as fd:
            assert fd is not None
        assert (out / "a" / "b").is_dir()
        for parts in (("link",), ("link", "deeper"), ("file", "x")):
            with (
                pytest.raises(LocalFileError, match="not a directory"),
                root.directory(parts, create=True),
            ):
                pass
        with root.directory(("missing",), create=False) as fd:
            assert fd is None
    finally:
        root.close()
    assert list(outside.iterdir()) == []


def test_existing_tells_files_links_and_directories_apart(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    (tmp_path / "d").mkdir()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert existing(fd, "f").kind == "file" and existing(fd, "f").size == 3
        assert existing(fd, "l").kind == "symlink"
        assert existing(fd, "d").kind == "directory"
        assert existing(fd, "nope").kind == "absent"
        assert hash_existing(fd, "f", (1, 2), whole=True) == (
            hashlib.md5(b"abc").hexdigest(),
            [hashlib.md5(b"a").hexdigest(), hashlib.md5(b"bc").hexdigest()],
        )
    finally:
        os.close(fd)


def test_a_partial_file_is_invisible_until_committed(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        p = Partial(fd, "name.txt", 5, version=None, mode=0o644)
        p.write_at(0, b"hello")
        assert not (tmp_path / "name.txt").exists()
        assert (tmp_path / temp_names("name.txt")[0]).exists()
        st = p.commit(1_000_000_000_123_456_789, sync_directory=True)
    finally:
        os.close(fd)
    assert (tmp_path / "name.txt").read_bytes() == b"hello"
    assert st.st_mtime_ns == 1_000_000_000_123_456_789
    assert (tmp_path / "name.txt").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name.txt"]


def test_a_planted_symlink_under_the_temporary_name_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / temp_names("n")[0]).symlink_to(victim)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        p = Partial(fd, "n", 3, version=None, mode=0o600)
        p.write_at(0, b"new")
        p.commit(None, sync_directory=False)
    finally:
        os.close(fd)
    assert victim.read_bytes() == b"keep me"
    assert (tmp_path / "n").read_bytes() == b"new"


def test_the_journal_keeps_pieces_of_the_same_version_only(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = Partial(fd, "big", 8, version="v1", mode=0o600)
        first.write_at(0, b"abcd")
        first.piece_done(0, ["m0"], 4)
        first.flush()
        first.close()  # killed here: piece 1 never written
        journal = tmp_path / temp_names("big")[1]
        with open(journal, "a") as f:
            f.write("1 torn")  # a line cut short by the kill
        again = Partial(fd, "big", 8, version="v1", mode=0o600)
        assert again.done == {0: ["m0"]}
        again.close()
        other = Partial(fd, "big", 8, version="v2", mode=0o600)  # the object changed
        assert other.done == {}
        other.discard()
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []


def test_pieces_reach_the_journal_only_with_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restorefs, "JOURNAL_EVERY", 8)
    monkeypatch.setattr(restorefs, "JOURNAL_SECONDS", 3600.0)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = Partial(fd, "big", 12, version="v1", mode=0o600)
        first.write_at(0, b"abcd")
        first.piece_done(0, ["m0"], 4)  # below JOURNAL_EVERY: kept in memory only
        assert first.done == {0: ["m0"]}
        first.close()  # killed: the rerun does not count on piece 0
        again = Partial(fd, "big", 12, version="v1", mode=0o600)
        assert again.done == {}
        again.write_at(0, b"abcdefgh")
        again.piece_done(0, ["m0"], 4)
        again.piece_done(1, ["m1"], 4)  # 8 bytes unjournalled: flushed by itself
        again.close()
        third = Partial(fd, "big", 12, version="v1", mode=0o600)
        assert third.done == {0: ["m0"], 1: ["m1"]}
        third.discard()
    finally:
        os.close(fd)


def test_sync_reaches_every_directory_up_to_the_root_and_skips_replaced_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    root = RestoreDir(tmp_path, create=False)
    try:
        synced: list[int] = []
        real_fsync = os.fsync
        (tmp_path / "c").rmdir()
        (tmp_path / "c").symlink_to(tmp_path / "a")  # replaced since the file went in
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(restorefs.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
            root.sync({("a", "b"), ("c",)})
        assert len(synced) == 3  # a/b, a and the root; never through the symlink c
    finally:
        root.close()
