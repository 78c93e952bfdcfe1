"""The local side: scanning folders in listing order, stat, and reading files safely."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import signal
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from kcsync import gate as rules
from kcsync.config import FolderConfig
from kcsync.errors import FileBusyError, FileChangedError, FileVanishedError, LocalFileError
from kcsync.gate import (  # re-exported: the name rules used to live here
    Gate,
    StateDir,
    is_excluded,
    is_excluded_path,
    valid_relative_name,
)
from kcsync.model import BadEntry, LocalEntry, stat_key

__all__ = ["Gate", "is_excluded", "is_excluded_path", "valid_relative_name"]

CHUNK = 1024 * 1024
ScanDir = Callable[[str], "os._ScandirIterator[str]"]


class FolderUnavailable(LocalFileError):
    """The folder itself is missing or unreadable: nothing in it can be judged."""


def printable(path: str) -> str:
    """A path with undecodable bytes shown as \\xNN, safe for logs."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def make_gate(folders: Iterable[FolderConfig], state_dir: Path, *, max_name_bytes: int) -> Gate:
    """The gate for a run: the server's name limit, and where kcsync's own state lives."""
    real_state = os.path.realpath(state_dir)
    try:
        st = os.stat(real_state)
        state = StateDir(real_state, st.st_dev, st.st_ino)
    except OSError:  # not created yet (a dry run): the path alone still recognises it
        state = StateDir(real_state, -1, -1)
    rels = tuple(
        (folder.prefix, rel)
        for folder in folders
        if (rel := rules.relative_name(os.path.realpath(folder.path), real_state)) is not None
    )
    return Gate(max_name_bytes, state, rels)


def scan(
    folder: FolderConfig, gate: Gate, *, scandir: ScanDir = os.scandir
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
        yield from _walk(root, "", folder, gate, real_root, scandir, top=True)
    except FileNotFoundError:
        raise FolderUnavailable(f"{root} does not exist") from None
    except PermissionError:
        raise FolderUnavailable(f"{root} cannot be read (permission denied)") from None


def _walk(
    dirpath: str,
    rel_dir: str,
    folder: FolderConfig,
    gate: Gate,
    real_root: str,
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
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            refusal = _dir_refusal(entry, rel_dir + entry.name, folder, gate)
            if refusal is not None:
                if not refusal.quiet:
                    yield BadEntry(printable(entry.path), refusal.reason, ignored=refusal.ignored)
                continue
        items.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
    items.sort(key=lambda item: item[0])
    for _, entry, is_dir in items:
        rel = rel_dir + entry.name
        if is_dir:
            yield from _walk(entry.path, rel + "/", folder, gate, real_root, scandir)
        elif (admitted := admit(folder, rel, gate, dirent=entry, real_root=real_root)) is not None:
            yield admitted


def _dir_refusal(
    entry: os.DirEntry[str], rel: str, folder: FolderConfig, gate: Gate
) -> rules.Refused | None:
    refusal = rules.dir_refusal(rel, folder, gate)
    # d_ino comes free with the listing; only a match costs a stat (for the device).
    if refusal is None and gate.state is not None and entry.inode() == gate.state.ino:
        st = entry.stat(follow_symlinks=False)
        if rules.is_state_dir(gate, st.st_dev, st.st_ino):
            return rules.OWN_STATE
    return refusal


# What the gate says about one path: sync this entry; report and skip this BadEntry (its
# object, if any, is protected); or None: not ours at all (excluded, kcsync's own state).
Admission = LocalEntry | BadEntry | None


def admit(
    folder: FolderConfig,
    rel: str,
    gate: Gate,
    *,
    dirent: os.DirEntry[str] | None = None,
    real_root: str | None = None,
) -> Admission:
    """The one gate (DESIGN §4a): may the file named ``rel`` under ``folder`` be synced now?

    Inside its folder after resolving symlinks, a regular file, not excluded, not kcsync's
    own state, and a name the server accepts. The reconcile's scan calls it with the
    DirEntry it already has (an unchanged file costs one lstat, as before; realpath only
    for symlinks); the watcher for events, moves and new directories; the applier when a
    job runs, whatever queued it. "Not open for writing" and "still the admitted file" are
    checked by open_file, on the descriptor that is then read.
    """
    key = folder.prefix + rel
    path = dirent.path if dirent is not None else os.path.join(folder.path, rel)
    refusal = rules.name_refusal(rel, key, folder, gate, listed=dirent is not None)
    if refusal is not None:
        return None if refusal.quiet else BadEntry(printable(path), refusal.reason)
    is_link, target = False, path
    try:
        if dirent is None:
            real_root = real_root or os.path.realpath(folder.path)
            # The scan walks only real directories of the folder; a single path may be
            # reached through a directory symlink, or a bind mount of our state directory.
            refusal = _parent_refusal(path, real_root, gate)
            st: os.stat_result | None = os.lstat(path)
            assert st is not None
            is_link = stat.S_ISLNK(st.st_mode)
        else:
            assert real_root is not None
            is_link = dirent.is_symlink()
            st = None if is_link else dirent.stat(follow_symlinks=False)
        if refusal is None and is_link:
            target = os.path.realpath(path)
            refusal = rules.link_refusal(target, real_root, gate)
            if refusal is None:
                st = os.stat(target)
    except FileNotFoundError:
        reason = "broken symlink" if is_link else "vanished"
        return BadEntry(printable(path), reason, protects=key)
    except OSError as exc:
        return BadEntry(printable(path), f"cannot stat: {exc.strerror}", protects=key)
    if refusal is None:
        assert st is not None
        refusal = rules.file_refusal(st.st_mode, via_link=is_link)
    if refusal is not None:
        if refusal.quiet:
            return None
        return BadEntry(printable(path), refusal.reason, protects=key, ignored=refusal.ignored)
    assert st is not None
    # An admitted link is opened (with O_NOFOLLOW) at its resolved target, never as a link.
    return _from_stat(key, target if is_link else path, st)


def _parent_refusal(path: str, real_root: str, gate: Gate) -> rules.Refused | None:
    parent = os.path.realpath(os.path.dirname(path))
    if not rules.within(parent, real_root):
        return rules.Refused("outside the folder once symlinks are resolved")
    if rules.state_holds(gate, parent):
        return rules.OWN_STATE
    st = os.stat(parent)
    return rules.OWN_STATE if rules.is_state_dir(gate, st.st_dev, st.st_ino) else None


def _from_stat(key: str, path: str, st: os.stat_result) -> LocalEntry:
    return LocalEntry(
        key=key,
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        ctime_ns=st.st_ctime_ns,
        dev=st.st_dev,
    )


def restat(entry: LocalEntry) -> LocalEntry:
    """The file's stat now, or LocalFileError if it is gone or unreadable."""
    try:
        st = os.stat(entry.path)
    except FileNotFoundError:
        raise FileVanishedError(f"{printable(entry.path)}: vanished") from None
    except OSError as exc:
        raise LocalFileError(f"{printable(entry.path)}: cannot stat: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LocalFileError(f"{printable(entry.path)}: no longer a regular file")
    return _from_stat(entry.key, entry.path, st)


# A lease break is signalled to the lease holder, by default with SIGIO, whose default
# action kills the process: a writer opening the file in the instant we hold the lease
# would take kcsync down (seen while testing). SIGURG is ignored unless handled.
LEASE_SIGNAL = signal.SIGURG


def open_file(entry: LocalEntry) -> io.BufferedReader:
    """Open an admitted file for reading, with the checks only an open file allows.

    O_NOFOLLOW: a file swapped for a symlink after admission is never followed (an
    admitted symlink carries its resolved target as ``path``). The descriptor must be the
    admitted file (device and inode), or it was replaced in between: FileChangedError,
    retried later. And nobody may hold it open for writing: FileBusyError, so a file still
    being written is never uploaded half done.
    """
    shown = printable(entry.path)
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the scan must not hang a worker.
        fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileVanishedError(f"{shown}: vanished") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileChangedError(f"{shown}: replaced by a symlink") from None
        raise LocalFileError(f"{shown}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not rules.same_file((entry.dev, entry.inode), (st.st_dev, st.st_ino)):
            raise FileChangedError(f"{shown}: replaced since it was examined")
        if held_for_writing(fd):
            raise FileBusyError(f"{shown}: open for writing by another process")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def held_for_writing(fd: int) -> bool:
    """Whether any process holds the file open for writing, asked with a read lease, which
    the kernel grants only while there is no writer. Cannot tell (not the owner without
    CAP_LEASE, a filesystem without leases): False, as before leases were asked."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, LEASE_SIGNAL)
    except OSError:
        return False  # never take a lease whose break would signal SIGIO
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return rules.lease_verdict(exc.errno) == "busy"
    # Released at once: while held, every writer's open() would wait for us to let go.
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def check_unchanged(entry: LocalEntry) -> None:
    """Raise FileChangedError if the file is not as it was when ``entry`` was taken.

    All of size, mtime, ctime and inode: a same-size rewrite whose mtime was set back
    (`cp -p`, `touch -d`) moves ctime, and a file replaced by rename has a new inode.
    """
    now = restat(entry)
    if stat_key(now) != stat_key(entry):
        raise FileChangedError(f"{printable(entry.path)}: changed while it was read")


def read_small(entry: LocalEntry, pace: Callable[[int], None] | None = None) -> bytes:
    """The whole file, for a single PUT. ``pace`` is told the bytes read for sending
    before they are read (the bandwidth limit waits there)."""
    if pace is not None:
        pace(entry.size)
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
        self,
        entry: LocalEntry,
        offset: int,
        length: int,
        *,
        hashed: bool = False,
        pace: Callable[[int], None] | None = None,
    ) -> None:
        self._entry = entry
        self._pace = pace  # told each read's size before it is read (bandwidth limit)
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
        if self._pace is not None:
            self._pace(want)
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


def remove_if_unchanged(entry: LocalEntry, root: Path) -> str | None:
    """Remove an ingest folder's file after its verified upload; None when removed, else
    why it stays. Then remove the directories this left empty, up to ``root`` (never
    ``root`` itself).

    It stays unless it is the very file that was read, unchanged: same device and inode,
    size, mtime_ns and ctime_ns as ``entry`` (taken before the read, and checked after
    it), and nobody holds it open for writing. A file rewritten since is uploaded again
    by its own event or the next reconcile, and removed once that version is verified.
    What remains is the instant between the last check and the unlink: a writer that
    opens the file in it loses what it writes. rclone's `move` has the same window.
    """
    shown = printable(entry.path)
    try:
        st = os.lstat(entry.path)
    except FileNotFoundError:
        return "already gone"
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if (
        not stat.S_ISREG(st.st_mode)
        or stat_key(_from_stat(entry.key, entry.path, st)) != (stat_key(entry))
        or (entry.dev and st.st_dev != entry.dev)
    ):
        return "changed since it was read"
    try:
        with open_file(entry):
            pass  # open_file refuses a file held for writing, or replaced meanwhile
        os.unlink(entry.path)
    except (FileChangedError, FileBusyError) as exc:
        return str(exc).removeprefix(f"{shown}: ")
    except (LocalFileError, OSError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    _prune_empty(Path(entry.path).parent, root)
    return None


def _prune_empty(directory: Path, root: Path) -> None:
    """rmdir upwards while empty; never ``root`` or anything outside it."""
    root = Path(os.path.abspath(root))
    current = Path(os.path.abspath(directory))
    while current != root and root in current.parents:
        try:
            os.rmdir(current)  # fails, and stops the walk, unless it is empty
        except OSError:
            return
        current = current.parent
