"""The local side: scanning folders in listing order, stat, and reading files safely."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from kcsync.config import FolderConfig
from kcsync.errors import FileChangedError, LocalFileError
from kcsync.model import BadEntry, LocalEntry, stat_key

CHUNK = 1024 * 1024
ScanDir = Callable[[str], "os._ScandirIterator[str]"]


class FolderUnavailable(LocalFileError):
    """The folder itself is missing or unreadable: nothing in it can be judged."""


def printable(path: str) -> str:
    """A path with undecodable bytes shown as \\xNN, safe for logs."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@functools.lru_cache(maxsize=64)
def _matchers(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One compiled regex for the base-name patterns and one for the path patterns: a scan
    of 10^6 names would otherwise run every fnmatch pattern on every one of them."""

    def combined(group: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(fnmatch.translate(p) for p in group)) if group else None

    return (
        combined([p for p in patterns if "/" not in p]),
        combined([p for p in patterns if "/" in p]),
    )


def is_excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    """Patterns match the base name, or the whole relative path when they contain '/'."""
    by_name, by_path = _matchers(patterns)
    if by_name is not None and by_name.match(rel.rsplit("/", 1)[-1]):
        return True
    return by_path is not None and by_path.match(rel) is not None


def scan(
    folder: FolderConfig, *, max_name_bytes: int, scandir: ScanDir = os.scandir
) -> Iterator[LocalEntry | BadEntry]:
    """Every file under the folder, in the order a listing returns object names.

    Within a directory, a subdirectory sorts as "name/": all names under it start so, which
    makes this depth-first walk yield full names in global code point (= UTF-8 byte) order
    while holding only one directory's entries per level, never the whole tree.
    """
    root = str(folder.path)
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise FolderUnavailable(f"{root} is not a directory")
        real_root = os.path.realpath(root)
        yield from _walk(root, "", folder, real_root, max_name_bytes, scandir, top=True)
    except FileNotFoundError:
        raise FolderUnavailable(f"{root} does not exist") from None
    except PermissionError:
        raise FolderUnavailable(f"{root} cannot be read (permission denied)") from None


def _walk(
    dirpath: str,
    rel_dir: str,
    folder: FolderConfig,
    real_root: str,
    max_name_bytes: int,
    scandir: ScanDir,
    top: bool = False,
) -> Iterator[LocalEntry | BadEntry]:
    try:
        with scandir(dirpath) as it:
            entries = list(it)
    except OSError as exc:
        if top:
            raise
        yield BadEntry(
            printable(dirpath),
            f"cannot read directory: {exc.strerror}",
            protects=folder.prefix + rel_dir,
            protects_prefix=True,
        )
        return
    items: list[tuple[str, os.DirEntry[str], bool]] = []
    for entry in entries:
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            yield BadEntry(printable(entry.path), "name is not valid UTF-8")
            continue
        rel = rel_dir + entry.name
        if is_excluded(rel, folder.exclude):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        items.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
    items.sort(key=lambda item: item[0])
    for _, entry, is_dir in items:
        rel = rel_dir + entry.name
        if is_dir:
            yield from _walk(entry.path, rel + "/", folder, real_root, max_name_bytes, scandir)
        else:
            yield _file_entry(entry, folder.prefix + rel, real_root, max_name_bytes)


def _file_entry(
    entry: os.DirEntry[str], key: str, real_root: str, max_name_bytes: int
) -> LocalEntry | BadEntry:
    shown = printable(entry.path)
    if len(key.encode("utf-8")) > max_name_bytes:
        return BadEntry(
            shown,
            f"object name is {len(key.encode('utf-8'))} bytes; the server allows {max_name_bytes}",
        )
    try:
        if entry.is_symlink():
            # Follow a link only to a file inside the folder: anything else could upload
            # files the user never put there (or loop forever on a directory link).
            target = os.path.realpath(entry.path)
            if not os.path.exists(target):
                return BadEntry(shown, "broken symlink", protects=key)
            if os.path.commonpath([target, real_root]) != real_root:
                return BadEntry(shown, "symlink points outside the folder", protects=key)
            st = os.stat(target)
            if not stat.S_ISREG(st.st_mode):
                return BadEntry(shown, "symlink to something that is not a file", protects=key)
        else:
            st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return BadEntry(shown, "vanished while scanning", protects=key)
    except OSError as exc:
        return BadEntry(shown, f"cannot stat: {exc.strerror}", protects=key)
    if not stat.S_ISREG(st.st_mode):
        # protects: a file replaced by a FIFO or socket must not cost its object.
        return BadEntry(shown, f"not a regular file ({_kind(st.st_mode)})", protects=key)
    return _from_stat(key, entry.path, st)


def _from_stat(key: str, path: str, st: os.stat_result) -> LocalEntry:
    return LocalEntry(
        key=key,
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        ctime_ns=st.st_ctime_ns,
    )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def restat(entry: LocalEntry) -> LocalEntry:
    """The file's stat now, or LocalFileError if it is gone or unreadable."""
    try:
        st = os.stat(entry.path)
    except FileNotFoundError:
        raise LocalFileError(f"{printable(entry.path)}: vanished") from None
    except OSError as exc:
        raise LocalFileError(f"{printable(entry.path)}: cannot stat: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LocalFileError(f"{printable(entry.path)}: no longer a regular file")
    return _from_stat(entry.key, entry.path, st)


def open_file(entry: LocalEntry) -> io.BufferedReader:
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the scan must not hang a worker.
        fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LocalFileError(f"{printable(entry.path)}: vanished") from None
    except OSError as exc:
        raise LocalFileError(f"{printable(entry.path)}: cannot open: {exc.strerror}") from None
    return os.fdopen(fd, "rb")


def check_unchanged(entry: LocalEntry) -> None:
    """Raise FileChangedError if the file is not as it was when ``entry`` was taken.

    All of size, mtime, ctime and inode: a same-size rewrite whose mtime was set back
    (`cp -p`, `touch -d`) moves ctime, and a file replaced by rename has a new inode.
    """
    now = restat(entry)
    if stat_key(now) != stat_key(entry):
        raise FileChangedError(f"{printable(entry.path)}: changed while it was read")


def read_small(entry: LocalEntry) -> bytes:
    with open_file(entry) as f:
        data = f.read(entry.size + 1)
    if len(data) != entry.size:
        raise FileChangedError(f"{printable(entry.path)}: changed while it was read")
    check_unchanged(entry)
    return data


def hash_file(
    entry: LocalEntry, ranges: list[tuple[int, int]] | None = None, *, whole_md5: bool = True
) -> tuple[str, list[str]]:
    """Whole-file MD5 (or "" without ``whole_md5``) and, if ``ranges`` are given, the MD5
    of each range, in one read."""
    whole = hashlib.md5()
    parts: list[str] = []
    bounds = ranges or []
    with open_file(entry) as f:
        done = 0
        for offset, length in bounds or [(0, entry.size)]:
            part = hashlib.md5()
            left = length
            assert offset == done, "ranges must be contiguous from 0"
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise FileChangedError(f"{printable(entry.path)}: shrank while it was read")
                if whole_md5:
                    whole.update(chunk)
                part.update(chunk)
                left -= len(chunk)
            done += length
            parts.append(part.hexdigest())
        if f.read(1):
            raise FileChangedError(f"{printable(entry.path)}: grew while it was read")
    check_unchanged(entry)
    return whole.hexdigest() if whole_md5 else "", parts if ranges else []


class FileSlice:
    """``length`` bytes of a file from ``offset``, as a request body that can be re-sent.

    A file that is shorter than expected raises FileChangedError mid-request: the server
    then gets less than Content-Length and stores nothing. With ``hashed`` it keeps the MD5
    of what it handed out since the last rewind, so the bytes are hashed as they are sent
    and the server's ETag can be checked afterwards, with no pass over the file first.
    """

    def __init__(
        self, entry: LocalEntry, offset: int, length: int, *, hashed: bool = False
    ) -> None:
        self._entry = entry
        self._offset = offset
        self._length = length
        self._left = length
        self._file: IO[bytes] | None = None
        self._hashed = hashed
        self._md5 = hashlib.md5()

    def __len__(self) -> int:
        return self._length

    def rewind(self) -> None:
        if self._file is None:
            self._file = open_file(self._entry)
        self._file.seek(self._offset)
        self._left = self._length
        self._md5 = hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        if self._file is None:
            self.rewind()
        assert self._file is not None
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._file.read(want)
        if not data:
            raise FileChangedError(f"{printable(self._entry.path)}: shrank while it was sent")
        self._left -= len(data)
        if self._hashed:
            self._md5.update(data)
        return data

    def hexdigest(self) -> str:
        """MD5 of the whole range once it has all been read."""
        if not self._hashed or self._left:
            raise ValueError("the slice was not read through with hashing on")
        return self._md5.hexdigest()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def folder_path_for(folder: FolderConfig, key: str) -> Path | None:
    """The local path an object name maps to, or None if it cannot be one of ours.

    Names with empty, "." or ".." components never come from a scan; refusing them here
    keeps a crafted name from pointing outside the folder.
    """
    if not key.startswith(folder.prefix):
        return None
    rel = key[len(folder.prefix) :]
    if not valid_relative_name(rel):
        return None
    return folder.path.joinpath(*rel.split("/"))


def is_excluded_path(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether an object's relative name, or any directory above it, is excluded.

    The scan never enters an excluded directory, so a listing entry below one must be
    recognised as excluded too, or a mirror would delete it.
    """
    head, _, _ = rel.rpartition("/")
    return is_excluded(rel, patterns) or (bool(head) and _dir_excluded(head, patterns))


@functools.lru_cache(maxsize=4096)
def _dir_excluded(rel_dir: str, patterns: tuple[str, ...]) -> bool:
    # Listings come in name order, so neighbours share directories: cached per directory.
    return is_excluded_path(rel_dir, patterns)


def valid_relative_name(rel: str) -> bool:
    """A name a file under a folder can have: no empty, "." or ".." parts, no NUL."""
    if not rel or "\x00" in rel:
        return False
    return not any(p in ("", ".", "..") for p in rel.split("/"))
