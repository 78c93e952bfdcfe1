"""localfs.py: scan order, excludes, bad entries, and reading files that may change."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kcsync.config import DEFAULT_EXCLUDES, FolderConfig
from kcsync.errors import FileChangedError, LocalFileError
from kcsync.gate import Gate
from kcsync.localfs import (
    FileSlice,
    FolderUnavailable,
    check_unchanged,
    folder_path_for,
    hash_file,
    is_excluded,
    is_excluded_path,
    printable,
    read_small,
    restat,
    scan,
)
from kcsync.model import EMPTY_MD5, BadEntry, LocalEntry

MAX_NAME = 1024


def make(root: Path, rel: str, data: bytes = b"") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def folder(root: Path, prefix: str = "", exclude: tuple[str, ...] = DEFAULT_EXCLUDES):
    return FolderConfig(path=root, prefix=prefix, exclude=exclude)


def scan_all(cfg: FolderConfig, max_name_bytes: int = MAX_NAME, **kwargs):
    return list(scan(cfg, Gate(max_name_bytes), **kwargs))


def keys(entries) -> list[str]:
    return [e.key for e in entries if isinstance(e, LocalEntry)]


def bad(entries) -> dict[str, BadEntry]:
    return {os.path.basename(e.path): e for e in entries if isinstance(e, BadEntry)}


def entry_for(path: Path, key: str = "k") -> LocalEntry:
    return restat(LocalEntry(key=key, path=str(path), size=0, mtime_ns=0, inode=0, ctime_ns=0))


# "/" is 0x2f: between "-" (0x2d), "." (0x2e) and "0" (0x30). A naive walk that sorts
# directory names without the trailing "/" (or uses os.walk) gets these wrong.
ORDER_TREES = {
    "punctuation": ["a-b", "a.txt", "a/b", "a0", "ab"],
    "file-vs-dir-prefix": ["d/a!", "d/a-b", "d/a.txt", "d/a/b", "d/a/b.txt", "d/a/b-c", "d/a0"],
    "file-named-like-dir": ["e/a", "e/a.txt", "e/a0", "e0", "e-"],
    "nested": ["x/y/z/1", "x/y/z-", "x/y/z.0", "x/y0", "x/y/z/0/0", "x.y", "x-y"],
    "non-ascii": ["é", "e", "z", "가", "😀", "è/x", "E", "ａ", "f/é", "\u00ff/x"],
    "case": ["B", "a", "A", "b", "B0", "C/a"],
    "spaces-and-digits": ["a b", "a b!/c", "a", "a1", "a10", "a2", " lead", "a c/d"],
}


@pytest.mark.parametrize("names", list(ORDER_TREES.values()), ids=list(ORDER_TREES))
def test_scan_yields_global_code_point_order(tmp_path, names):
    for name in names:
        make(tmp_path, name, name.encode())
    entries = scan_all(folder(tmp_path, "p/"))
    got = keys(entries)
    assert got == sorted(got)
    assert got == sorted(f"p/{n}" for n in names)
    # Code point order is the UTF-8 byte order a listing uses.
    assert got == sorted(got, key=lambda k: k.encode("utf-8"))
    assert not bad(entries)


def test_scan_entry_fields(tmp_path):
    path = make(tmp_path, "sub/file.bin", b"12345")
    st = path.stat()
    [entry] = scan_all(folder(tmp_path, "pre/"))
    assert entry == LocalEntry(
        key="pre/sub/file.bin",
        path=str(path),
        size=5,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        ctime_ns=st.st_ctime_ns,
        dev=st.st_dev,
    )


def test_scan_empty_dirs_and_empty_folder(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert scan_all(folder(tmp_path)) == []


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        (
            DEFAULT_EXCLUDES,
            ["cache/x.txt", "keep.txt", "logs/a.log", "logs/deep/b.log", "sub/tmp/y"],
        ),
        (
            (*DEFAULT_EXCLUDES, "*.log"),
            ["cache/x.txt", "keep.txt", "sub/tmp/y"],
        ),
        (
            (*DEFAULT_EXCLUDES, "cache"),
            ["keep.txt", "logs/a.log", "logs/deep/b.log", "sub/tmp/y"],
        ),
        (
            (*DEFAULT_EXCLUDES, "sub/tmp"),
            ["cache/x.txt", "keep.txt", "logs/a.log", "logs/deep/b.log"],
        ),
        (
            (*DEFAULT_EXCLUDES, "logs/*.log"),  # fnmatch's "*" also matches "/"
            ["cache/x.txt", "keep.txt", "sub/tmp/y"],
        ),
        (
            (*DEFAULT_EXCLUDES, "tmp"),  # a base-name pattern matches at any depth
            ["cache/x.txt", "keep.txt", "logs/a.log", "logs/deep/b.log"],
        ),
        (
            (),
            [
                ".x.swp",
                ".~lock",
                "cache/x.txt",
                "dl.crdownload",
                "keep.txt",
                "logs/a.log",
                "logs/deep/b.log",
                "logs/deep/c.part",
                "new.part",
                "sub/tmp/y",
                "w.tmp",
                "~$doc",
            ],
        ),
    ],
    ids=[
        "defaults",
        "base-name-glob",
        "directory-by-name",
        "directory-by-path",
        "path-glob",
        "nested-directory-by-name",
        "nothing-excluded",
    ],
)
def test_scan_excludes(tmp_path, exclude, expected):
    for rel in (
        "keep.txt",
        "new.part",
        "w.tmp",
        ".~lock",
        "~$doc",
        ".x.swp",
        "dl.crdownload",
        "cache/x.txt",
        "logs/a.log",
        "logs/deep/b.log",
        "logs/deep/c.part",
        "sub/tmp/y",
    ):
        make(tmp_path, rel)
    assert keys(scan_all(folder(tmp_path, exclude=exclude))) == expected


def test_scan_never_enters_an_excluded_directory(tmp_path):
    make(tmp_path, "cache/x")
    make(tmp_path, "keep")
    visited: list[str] = []

    def spy(path: str):
        visited.append(path)
        return os.scandir(path)

    assert keys(scan_all(folder(tmp_path, exclude=("cache",)), scandir=spy)) == ["keep"]
    assert visited == [str(tmp_path)]


@pytest.mark.parametrize(
    ("rel", "patterns", "expected"),
    [
        ("a/b.part", DEFAULT_EXCLUDES, True),
        ("a.part/b.txt", ("*.part",), True),
        ("cache/x/y.txt", ("cache",), True),
        ("x/cache/y.txt", ("cache",), True),
        ("notcache/y.txt", ("cache",), False),
        ("cache.txt", ("cache",), False),
        ("a/b/c", ("a/b",), True),
        ("x/a/b", ("a/b",), False),
        ("dir/.~lock#doc", DEFAULT_EXCLUDES, True),
        ("photos/2024/img.jpg", DEFAULT_EXCLUDES, False),
        ("File.PART", ("*.part",), False),  # case-sensitive, like the file system
        ("anything", (), False),
    ],
    ids=[
        "default-in-subdir",
        "under-excluded-dir-name",
        "under-excluded-dir",
        "under-nested-excluded-dir",
        "similar-dir-name",
        "similar-file-name",
        "under-excluded-path",
        "path-pattern-anchored",
        "lock-file",
        "ordinary",
        "case-sensitive",
        "no-patterns",
    ],
)
def test_is_excluded_path(rel, patterns, expected):
    assert is_excluded_path(rel, patterns) is expected


@pytest.mark.parametrize(
    ("rel", "patterns", "expected"),
    [
        ("a/b.part", ("*.part",), True),
        ("a.part/b", ("*.part",), False),  # only the name itself; the scan prunes dirs
        ("a/b", ("a/*",), True),
        ("b", ("a/*",), False),
    ],
    ids=["base-name", "parent-not-considered", "path-pattern", "path-pattern-no-match"],
)
def test_is_excluded(rel, patterns, expected):
    assert is_excluded(rel, patterns) is expected


def test_fifo_is_a_bad_entry(tmp_path):
    make(tmp_path, "ok")
    os.mkfifo(tmp_path / "pipe")
    entries = scan_all(folder(tmp_path))
    assert keys(entries) == ["ok"]
    assert bad(entries)["pipe"].reason == "not a regular file (fifo)"
    assert bad(entries)["pipe"].protects == "pipe"  # its object, if any, is not deleted


def test_non_utf8_name_is_a_bad_entry(tmp_path):
    make(tmp_path, "ok")
    fd = os.open(os.fsencode(tmp_path) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    entries = scan_all(folder(tmp_path, "p/"))
    assert keys(entries) == ["p/ok"]
    [entry] = [e for e in entries if isinstance(e, BadEntry)]
    assert entry.reason == "name is not valid UTF-8"
    assert entry.path == f"{tmp_path}/bad\\xff"
    assert entry.protects == ""  # there is no object name it could stand for


def test_non_utf8_directory_is_a_bad_entry_and_not_entered(tmp_path):
    os.mkdir(os.fsencode(tmp_path) + b"/dir\xfe")
    fd = os.open(os.fsencode(tmp_path) + b"/dir\xfe/inside", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    entries = scan_all(folder(tmp_path))
    assert keys(entries) == []
    assert [e.reason for e in entries] == ["name is not valid UTF-8"]


def test_symlink_outside_the_folder_is_a_bad_entry(tmp_path):
    root = tmp_path / "root"
    outside = make(tmp_path, "secret.txt", b"private")
    make(root, "ok")
    (root / "link").symlink_to(outside)
    # A sibling whose name starts with the folder's: still outside.
    sibling = make(tmp_path, "root2/x", b"x")
    (root / "link2").symlink_to(sibling)
    entries = scan_all(folder(root, "p/"))
    assert keys(entries) == ["p/ok"]
    problems = bad(entries)
    assert problems["link"].reason == "symlink points outside the folder"
    assert problems["link"].protects == "p/link"
    assert problems["link2"].reason == "symlink points outside the folder"


def test_symlink_to_a_file_inside_is_followed(tmp_path):
    target = make(tmp_path, "real/data.bin", b"0123456789")
    (tmp_path / "alias").symlink_to(target)
    (tmp_path / "relative").symlink_to("real/data.bin")
    entries = scan_all(folder(tmp_path))
    assert keys(entries) == ["alias", "real/data.bin", "relative"]
    st = target.stat()
    for entry in entries:
        assert isinstance(entry, LocalEntry)
        assert (entry.size, entry.inode, entry.mtime_ns) == (10, st.st_ino, st.st_mtime_ns)
    # What is opened (with O_NOFOLLOW) is the resolved target, never the link.
    assert entries[0].path == str(target)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("real", "symlink to something that is not a file"),
        (".", "symlink to something that is not a file"),
        ("missing", "broken symlink"),
    ],
    ids=["directory", "loop-to-root", "dangling"],
)
def test_unfollowable_symlinks_inside(tmp_path, target, reason):
    make(tmp_path, "real/data.bin")
    (tmp_path / "link").symlink_to(target)
    entries = scan_all(folder(tmp_path))
    # Links to directories are not walked: no loop, no duplicate names.
    assert keys(entries) == ["real/data.bin"]
    assert bad(entries)["link"].reason == reason
    assert bad(entries)["link"].protects == "link"


@pytest.mark.parametrize(
    ("prefix", "name", "limit", "ok"),
    [
        ("", "x" * 10, 10, True),
        ("", "x" * 11, 10, False),
        ("p/", "x" * 8, 10, True),
        ("p/", "x" * 9, 10, False),  # the prefix counts
        ("", "é" * 5, 10, True),
        ("", "é" * 5 + "x", 10, False),  # bytes, not characters
        ("", "d/" + "x" * 8, 10, True),
        ("", "d/" + "x" * 9, 10, False),  # directories count
    ],
    ids=[
        "at-limit",
        "over-limit",
        "prefix-at-limit",
        "prefix-over-limit",
        "utf8-at-limit",
        "utf8-over-limit",
        "dir-at-limit",
        "dir-over-limit",
    ],
)
def test_name_longer_than_the_server_allows(tmp_path, prefix, name, limit, ok):
    make(tmp_path, name)
    entries = scan_all(folder(tmp_path, prefix), max_name_bytes=limit)
    if ok:
        assert keys(entries) == [prefix + name]
    else:
        assert keys(entries) == []
        [entry] = entries
        assert isinstance(entry, BadEntry)
        assert f"the server allows {limit}" in entry.reason


def test_unreadable_subdirectory_protects_its_prefix(tmp_path):
    make(tmp_path, "a")
    make(tmp_path, "locked/x")
    make(tmp_path, "z")
    locked = str(tmp_path / "locked")

    def scandir(path: str):
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return os.scandir(path)

    entries = scan_all(folder(tmp_path, "p/"), scandir=scandir)
    assert keys(entries) == ["p/a", "p/z"]
    [entry] = [e for e in entries if isinstance(e, BadEntry)]
    assert entry.reason == "cannot read directory: Permission denied"
    assert (entry.protects, entry.protects_prefix) == ("p/locked/", True)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("unreadable", r"cannot be read \(permission denied\)"),
    ],
    ids=["missing", "a-file", "unreadable"],
)
def test_folder_unavailable(tmp_path, setup, message):
    root = tmp_path / "root"
    if setup == "file":
        root.write_bytes(b"")
    elif setup == "unreadable":
        root.mkdir()

    def scandir(path: str):
        raise PermissionError(13, "Permission denied", path)

    with pytest.raises(FolderUnavailable, match=message):
        scan_all(folder(root), scandir=scandir)


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        ("p/", "p/a.txt", "a.txt"),
        ("p/", "p/d/e/f", "d/e/f"),
        ("", "a", "a"),
        ("p/", "p/...", "..."),
        ("p/", "p/.hidden", ".hidden"),
        ("p/", "q/a", None),
        ("p/", "p", None),
        ("p/", "p/", None),
        ("p/", "p/../etc/passwd", None),
        ("p/", "p/a/../../x", None),
        ("p/", "p/..", None),
        ("p/", "p/./a", None),
        ("p/", "p/a/.", None),
        ("p/", "p//a", None),
        ("p/", "p/a/", None),
        ("p/", "p/a//b", None),
        ("", "", None),
        ("", "/etc/passwd", None),
        ("p/", "p/a\x00b", None),
    ],
    ids=[
        "file",
        "nested",
        "no-prefix",
        "three-dots-is-a-name",
        "hidden-file",
        "other-prefix",
        "prefix-without-slash",
        "prefix-itself",
        "dotdot-escape",
        "dotdot-deep",
        "dotdot-alone",
        "dot-component",
        "trailing-dot",
        "empty-first-component",
        "trailing-slash",
        "empty-middle-component",
        "empty-key",
        "absolute",
        "nul",
    ],
)
def test_folder_path_for(tmp_path, prefix, key, expected):
    cfg = folder(tmp_path, prefix)
    got = folder_path_for(cfg, key)
    assert got == (None if expected is None else tmp_path / expected)
    if got is not None:
        assert os.path.commonpath([got, tmp_path]) == str(tmp_path)


def test_folder_path_for_round_trips_scanned_keys(tmp_path):
    for rel in ("a", "d/é/가.txt", "x/y/z"):
        make(tmp_path, rel)
    cfg = folder(tmp_path, "pre/")
    for entry in scan_all(cfg):
        assert isinstance(entry, LocalEntry)
        assert folder_path_for(cfg, entry.key) == Path(entry.path)


DATA = bytes(range(256)) * 41 + b"tail"  # 10500 bytes


@pytest.mark.parametrize(
    "ranges",
    [
        [(0, len(DATA))],
        [(0, 4096), (4096, 4096), (8192, len(DATA) - 8192)],
        [(0, 1), (1, len(DATA) - 1)],
        [(0, len(DATA) - 4), (len(DATA) - 4, 4)],
    ],
    ids=["one-range", "three-ranges", "tiny-first", "tiny-last"],
)
def test_hash_file_with_ranges(tmp_path, ranges):
    entry = entry_for(make(tmp_path, "f", DATA))
    whole, parts = hash_file(entry, ranges)
    assert whole == hashlib.md5(DATA).hexdigest()
    assert parts == [hashlib.md5(DATA[o : o + n]).hexdigest() for o, n in ranges]


@pytest.mark.parametrize(
    ("data", "ranges"),
    [(DATA, None), (DATA, []), (b"", None)],
    ids=["no-ranges", "empty-ranges", "empty-file"],
)
def test_hash_file_whole(tmp_path, data, ranges):
    entry = entry_for(make(tmp_path, "f", data))
    whole, parts = hash_file(entry, ranges)
    assert whole == hashlib.md5(data).hexdigest()
    assert parts == []
    if not data:
        assert whole == EMPTY_MD5


def test_hash_file_over_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("kcsync.localfs.CHUNK", 1000)
    entry = entry_for(make(tmp_path, "f", DATA))
    whole, parts = hash_file(entry, [(0, 2500), (2500, len(DATA) - 2500)])
    assert whole == hashlib.md5(DATA).hexdigest()
    assert parts[1] == hashlib.md5(DATA[2500:]).hexdigest()


def grow(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"more")


def shrink(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(10)


def touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def rewrite_same_size(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(255 - b for b in data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def rewrite_mtime_restored(path: Path) -> None:
    """New bytes of the same size with the old mtime put back (`cp -p`, `rsync -t`): only
    ctime tells."""
    st = path.stat()
    flipped = bytes(255 - b for b in path.read_bytes())

    def change() -> None:
        path.write_bytes(flipped)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    _until_ctime_moves(path, st.st_ctime_ns, change)


def replace_by_rename(path: Path) -> None:
    """Another file of the same size and mtime renamed over this one: only the inode (and
    perhaps ctime) tells."""
    st = path.stat()
    new = path.with_name(path.name + ".new")
    new.write_bytes(bytes(255 - b for b in path.read_bytes()))
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    new.replace(path)


def _until_ctime_moves(path: Path, before_ns: int, change: Callable[[], None]) -> None:
    # The kernel stamps ctime from a coarse clock: a change within the same tick as the
    # file's creation keeps the old ctime, which would test nothing. Repeat until it moves.
    deadline = time.monotonic() + 5.0
    change()
    while path.stat().st_ctime_ns == before_ns:
        assert time.monotonic() < deadline, "ctime never moved"
        change()


CHANGES = [grow, shrink, touch, rewrite_same_size, rewrite_mtime_restored, replace_by_rename]
CHANGE_IDS = [
    "grew",
    "shrank",
    "touched",
    "rewritten-same-size",
    "rewritten-mtime-restored",
    "replaced-by-rename",
]


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
def test_hash_file_detects_a_change(tmp_path, change):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    change(path)
    with pytest.raises(FileChangedError):
        hash_file(entry, [(0, 4096), (4096, len(DATA) - 4096)])


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
def test_read_small_detects_a_change(tmp_path, change):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    assert read_small(entry) == DATA
    change(path)
    with pytest.raises(FileChangedError):
        read_small(entry)


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
def test_check_unchanged(tmp_path, change):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    check_unchanged(entry)
    change(path)
    with pytest.raises(FileChangedError, match="changed while it was read"):
        check_unchanged(entry)


def test_vanished_file_is_a_local_error_not_a_change(tmp_path):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    path.unlink()
    for call in (restat, check_unchanged, read_small, hash_file):
        with pytest.raises(LocalFileError, match="vanished") as info:
            call(entry)
        assert not isinstance(info.value, FileChangedError)


def test_restat_of_something_no_longer_a_file(tmp_path):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(LocalFileError, match="no longer a regular file"):
        restat(entry)


def test_file_slice_reads_its_range(tmp_path):
    entry = entry_for(make(tmp_path, "f", DATA))
    body = FileSlice(entry, 1000, 3000)
    try:
        assert len(body) == 3000
        chunks = [body.read(1024) for _ in range(4)]
        assert [len(c) for c in chunks] == [1024, 1024, 952, 0]
        assert b"".join(chunks) == DATA[1000:4000]
        assert body.read() == b""
    finally:
        body.close()


def test_file_slice_rewind_sends_the_same_bytes_again(tmp_path):
    entry = entry_for(make(tmp_path, "f", DATA))
    body = FileSlice(entry, 4096, 5000)
    try:
        first = body.read(100)
        body.rewind()  # a retried request starts over
        assert body.read() == DATA[4096:9096]
        body.rewind()
        assert body.read(100) == first
        assert body.read(-1) == DATA[4196:9096]
    finally:
        body.close()


def test_file_slice_short_last_segment(tmp_path):
    entry = entry_for(make(tmp_path, "f", DATA))
    body = FileSlice(entry, len(DATA) - 4, 4)
    try:
        assert body.read(1 << 20) == b"tail"
        assert body.read(1) == b""
    finally:
        body.close()


def test_file_slice_close_then_read_reopens(tmp_path):
    entry = entry_for(make(tmp_path, "f", DATA))
    body = FileSlice(entry, 0, 10)
    assert body.read(5) == DATA[:5]
    body.close()
    body.close()  # idempotent
    try:
        assert body.read() == DATA[:10]
    finally:
        body.close()


def test_file_slice_of_a_shrunk_file_raises(tmp_path):
    path = make(tmp_path, "f", DATA)
    entry = entry_for(path)
    body = FileSlice(entry, 0, len(DATA))
    try:
        assert body.read(5) == DATA[:5]
        shrink(path)
        sent = 5
        with pytest.raises(FileChangedError, match="shrank while it was sent"):
            for _ in range(len(DATA)):  # what was already buffered may still come out
                sent += len(body.read(100))
        assert sent < len(DATA)
    finally:
        body.close()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("plain/é", "plain/é"), (os.fsdecode(b"bad\xff"), "bad\\xff")],
    ids=["utf8", "undecodable"],
)
def test_printable(raw, shown):
    assert printable(raw) == shown


def test_file_slice_hashes_what_it_hands_out_since_the_last_rewind(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    body = FileSlice(entry_for(path), 1000, 200_000, hashed=True)
    try:
        body.read(5000)
        body.rewind()  # a retried request: the hash starts over with the bytes
        while body.read(65536):
            pass
        assert body.hexdigest() == hashlib.md5(data[1000:201_000]).hexdigest()
    finally:
        body.close()


def test_file_slice_digest_of_a_half_read_slice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    body = FileSlice(entry_for(path), 0, 100, hashed=True)
    try:
        body.read(10)
        with pytest.raises(ValueError):
            body.hexdigest()  # a digest of part of a segment would name the wrong bytes
    finally:
        body.close()
    unhashed = FileSlice(entry_for(path), 0, 100)
    try:
        unhashed.read()
        with pytest.raises(ValueError):
            unhashed.hexdigest()
    finally:
        unhashed.close()
