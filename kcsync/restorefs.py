"""Writing restored files without trusting what is already in the restore directory.

Everything below the directory is reached through directory file descriptors, one
component at a time with O_NOFOLLOW (openat-style, ``dir_fd=``): a symlink planted in the
directory (``DIR/photos -> /etc``) makes that one file fail instead of redirecting the
write, and a component swapped for a symlink between a check and a use (the classic
TOCTOU race of path-based code) is never followed either, because no path is resolved twice.

A file is written under a temporary name in its own directory, checked by the caller,
given its mtime, fsynced, then renamed into place: a killed restore (or a power cut) never
leaves a partial file under a real name. The directory entry itself is made durable later
(``sync_directories``, once per directory at the end of a run): until then a power cut can
only lose the new name, never show a wrong file under it. Large objects keep a journal of
the pieces already written and fsynced beside the temporary file, so a rerun fetches only
the rest.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from kcsync.errors import LocalFileError
from kcsync.restore_names import NAME_MAX, TEMP_PREFIX, TEMP_SUFFIX
from kcsync.restore_plan import SegmentHasher

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_CHUNK = 1024 * 1024
# A large file's journal is brought up to date (one fdatasync of the file, then of the
# journal) once this much more of it has been written, or this long after the last time:
# often enough that a rerun after a kill refetches little (on a slow link too) and the
# kernel's writeback keeps pace with the download instead of the whole file waiting for
# the final fsync; rarely enough that the GETs seldom wait for the disk.
JOURNAL_EVERY = 256 * 1024 * 1024
JOURNAL_SECONDS = 1.0


def temp_names(name: str) -> tuple[str, str]:
    """The temporary file and journal for a file ``name`` in the same directory.

    Fixed per name, so a rerun finds what a killed run left; a digest, so any name fits
    the filesystem's limit; ``.part`` at the end, so ``kcsync sync``'s default excludes
    keep them out of the bucket should a restore run into a synced folder.
    """
    tag = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    return f"{TEMP_PREFIX}{tag}{TEMP_SUFFIX}", f"{TEMP_PREFIX}{tag}.journal{TEMP_SUFFIX}"


@dataclass(frozen=True)
class Existing:
    """What is at a target name now."""

    kind: str  # "absent", "file", "symlink", "directory", "other"
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    ctime_ns: int = 0


class RestoreDir:
    """The restore directory, held open: every path below it is resolved from this fd."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LocalFileError(f"{path}: cannot create: {exc.strerror}") from None
        try:
            # The directory itself is followed if it is a symlink: the user named it.
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = -1  # a dry run into a directory that does not exist yet
        except OSError as exc:
            raise LocalFileError(f"{path}: cannot open: {exc.strerror}") from None
        self.name_max = NAME_MAX
        if self.fd >= 0:
            with suppress(OSError, ValueError):
                self.name_max = int(os.fpathconf(self.fd, "PC_NAME_MAX"))
        # The mode a new file gets, as open(2) with 0o666 would give it. Read once here:
        # os.umask can only be read by setting it, which is not safe once threads run.
        mask = os.umask(0o022)
        os.umask(mask)
        self.file_mode = 0o666 & ~mask

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @contextmanager
    def directory(self, parts: tuple[str, ...], *, create: bool) -> Iterator[int | None]:
        """An fd of the directory ``parts`` below the root (None when it does not exist
        and ``create`` is off). Raises LocalFileError when a component is a symlink or a
        file: never followed, never replaced."""
        if self.fd < 0:
            yield None
            return
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts):
                try:
                    child = _open_dir(part, fd, create=create)
                except FileNotFoundError:
                    yield None
                    return
                except OSError as exc:
                    where = "/".join(parts[: i + 1])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise LocalFileError(
                            f"{where}: not a directory (a symlink or file is in the way; "
                            "symlinks in the restore directory are never followed)"
                        ) from None
                    raise LocalFileError(f"{where}: {exc.strerror}") from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def sync(self, directories: Iterable[tuple[str, ...]]) -> None:
        """fsync these directories and every one above them up to the root (a run may
        have made them): the names renamed into them now survive a power cut."""
        every = {parts[:i] for parts in directories for i in range(len(parts) + 1)}
        # Deepest first: a new directory's own entries, then its name in its parent.
        for parts in sorted(every, key=len, reverse=True):
            try:
                with self.directory(parts, create=False) as fd:
                    if fd is not None:
                        os.fsync(fd)
            except LocalFileError:
                pass  # replaced by a symlink or file since: nothing of ours to make durable


def _open_dir(part: str, parent: int, *, create: bool) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    # FileExistsError: another worker made it meanwhile (or it is a symlink: then the
    # O_NOFOLLOW open just below refuses it).
    with suppress(FileExistsError):
        os.mkdir(part, 0o777, dir_fd=parent)
    return os.open(part, _DIR_FLAGS, dir_fd=parent)


def existing(dir_fd: int | None, name: str) -> Existing:
    if dir_fd is None:
        return Existing("absent")
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return Existing("absent")
    except OSError as exc:
        raise LocalFileError(f"{name}: cannot stat: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        return Existing("symlink")
    if stat.S_ISDIR(st.st_mode):
        return Existing("directory")
    if not stat.S_ISREG(st.st_mode):
        return Existing("other")
    return Existing("file", st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def hash_existing(
    dir_fd: int, name: str, sizes: tuple[int, ...], *, whole: bool
) -> tuple[str | None, list[str]]:
    """Whole-file MD5 (when ``whole``) and the MD5 of each segment of ``sizes`` of an
    existing file, opened without following a symlink, in one read."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        raise LocalFileError(f"{name}: cannot open: {exc.strerror}") from None
    try:
        return _hash_fd(fd, sizes, whole=whole)
    finally:
        os.close(fd)


def _hash_fd(fd: int, sizes: tuple[int, ...], *, whole: bool) -> tuple[str | None, list[str]]:
    md5 = hashlib.md5() if whole else None
    segments = SegmentHasher(sizes)
    offset = 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        offset += len(chunk)
        if md5 is not None:
            md5.update(chunk)
        if sizes:
            segments.update(chunk)
    return (md5.hexdigest() if md5 is not None else None), segments.digests


class Partial:
    """A file being restored under its temporary name in its target directory.

    With ``version`` (large objects) the pieces written and fsynced are recorded in a
    journal: a rerun for the same object version (same Etag, size and listing date, same
    cut into pieces) keeps them; anything else starts the file over.
    """

    def __init__(
        self, dir_fd: int, name: str, size: int, *, version: str | None, mode: int
    ) -> None:
        self._dir = dir_fd
        self.name = name
        self.size = size
        self._temp, self._journal_name = temp_names(name)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._mode = mode
        # Pieces written (and hashed) in this run or vouched for by the journal.
        self.done: dict[int, list[str]] = {}
        # Pieces written but not yet in the journal, and their bytes.
        self._unjournalled: list[tuple[int, list[str]]] = []
        self._unjournalled_bytes = 0
        self._journalled_at = time.monotonic()
        self._fd = self._open_temp()
        self._journal: int | None = None
        try:
            if version is not None:
                self._resume(version)
            else:
                os.ftruncate(self._fd, 0)
            # Sized up front: pieces are written where they belong, in any order.
            os.ftruncate(self._fd, size)
        except OSError as exc:
            self.close()
            raise LocalFileError(f"{name}: cannot prepare: {exc.strerror}") from None

    def _open_temp(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        for _ in range(2):
            try:
                fd = os.open(self._temp, flags, 0o600, dir_fd=self._dir)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise LocalFileError(f"{self.name}: cannot create: {exc.strerror}") from None
                # A symlink planted under our temporary name: remove the link, not its target.
                os.unlink(self._temp, dir_fd=self._dir)
                continue
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)  # a FIFO or device under our name: never written into
            os.unlink(self._temp, dir_fd=self._dir)
        raise LocalFileError(f"{self.name}: something keeps replacing the temporary file")

    def _resume(self, version: str) -> None:
        header = version.replace("\n", " ") + "\n"
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND
        try:
            fd = os.open(self._journal_name, flags, 0o600, dir_fd=self._dir)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            os.unlink(self._journal_name, dir_fd=self._dir)
            fd = os.open(self._journal_name, flags, 0o600, dir_fd=self._dir)
        self._journal = fd
        text = _read_all(fd).decode("utf-8", "replace")
        lines = text.split("\n")
        if lines[0] + "\n" == header and os.fstat(self._fd).st_size == self.size:
            for line in lines[1:]:
                fields = line.split(" ")
                # A line is complete only with its end marker: a torn last line is ignored.
                if len(fields) >= 2 and fields[-1] == "." and fields[0].isdigit():
                    self.done[int(fields[0])] = [f for f in fields[1:-1] if f]
            return
        os.ftruncate(fd, 0)
        os.ftruncate(self._fd, 0)
        _write_all(fd, header.encode("utf-8"))
        os.fsync(fd)

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view = view[n:]
            offset += n

    def piece_done(self, index: int, digests: list[str], length: int) -> None:
        """A piece is written: it counts for this run at once, and reaches the journal
        with the next ``flush`` (due every JOURNAL_EVERY bytes)."""
        with self._lock:
            self.done[index] = digests
            if self._journal is None:
                return
            self._unjournalled.append((index, digests))
            self._unjournalled_bytes += length
            due = (
                self._unjournalled_bytes >= JOURNAL_EVERY
                or time.monotonic() - self._journalled_at >= JOURNAL_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Journal the pieces written since the last flush: fdatasync the file first, so
        the journal never vouches for bytes a power cut could still lose."""
        if self._journal is None or self._fd < 0:
            return
        with self._flush_lock:
            with self._lock:
                batch, self._unjournalled = self._unjournalled, []
                self._unjournalled_bytes = 0
                self._journalled_at = time.monotonic()
            if not batch:
                return
            os.fdatasync(self._fd)
            lines = "".join(" ".join([str(i), *d, "."]) + "\n" for i, d in batch)
            _write_all(self._journal, lines.encode("ascii"))
            os.fdatasync(self._journal)

    def whole_md5(self, sizes: tuple[int, ...] = ()) -> tuple[str, list[str]]:
        """MD5 of the file as written (for a plain object fetched in parallel pieces)."""
        md5, parts = _hash_fd(self._fd, sizes, whole=True)
        assert md5 is not None
        return md5, parts

    def commit(self, mtime_ns: int | None, *, sync_directory: bool) -> os.stat_result:
        """Set the mode and mtime, fsync, rename into place (and fsync the directory when
        ``sync_directory``, else the caller does it later); the final stat."""
        os.fchmod(self._fd, self._mode)
        if mtime_ns is not None:
            os.utime(self._fd, ns=(mtime_ns, mtime_ns))
        # Before the rename: after a power cut the real name holds all of the bytes or
        # is not there. (The fsync is done by a thread that holds no GET slot.)
        os.fsync(self._fd)
        # rename(2) replaces a symlink at the target name itself, never what it points to.
        os.rename(self._temp, self.name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        if sync_directory:
            os.fsync(self._dir)
        st = os.fstat(self._fd)  # after the rename: it updates the file's ctime
        self._drop_journal()
        self.close()
        return st

    def discard(self) -> None:
        """Forget what was written: the next attempt starts from nothing."""
        for name in (self._temp, self._journal_name):
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self._dir)
        self.close()

    def _drop_journal(self) -> None:
        if self._journal is not None:
            with suppress(FileNotFoundError):
                os.unlink(self._journal_name, dir_fd=self._dir)

    def close(self) -> None:
        for fd in (self._fd, self._journal):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fd = -1
        self._journal = None


def drop_leftovers(dir_fd: int, name: str) -> None:
    """A killed run may have renamed a file into place and died before it removed the
    journal: remove what is left of it once the file is known to be complete."""
    for leftover in temp_names(name):
        try:
            os.unlink(leftover, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # a directory of that name, say: not ours to touch


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
