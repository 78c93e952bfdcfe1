"""The admission rules (DESIGN §4a): may a path be synced, and is an object name ours to judge.

Pure: localfs.admit gathers the facts (names, stat results, resolved paths, the errno of a
lease probe) and these functions judge them, so every rule is a table test and the scan,
the watcher and the applier cannot drift apart again. Before this module each path had its
own rules, and the daemon uploaded what `--once` refused (a symlink to /etc/passwd).
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import os
import re
import stat
from dataclasses import dataclass
from typing import Literal

from kcsync.config import FolderConfig


@dataclass(frozen=True)
class StateDir:
    """kcsync's own state directory: its database must never be uploaded or judged."""

    path: str  # symlinks resolved
    dev: int
    ino: int


@dataclass(frozen=True)
class Gate:
    """What the rules need beyond the folder: the server's name limit and our state."""

    max_name_bytes: int
    state: StateDir | None = None
    # (folder prefix, the state directory's name relative to that folder) for each folder
    # that contains it. Normally empty: the config refuses such a state_dir (DESIGN §4a),
    # this is defence in depth for a folder reached through a symlink made later.
    state_rels: tuple[tuple[str, str], ...] = ()

    def state_rel(self, folder: FolderConfig) -> str | None:
        return next((rel for prefix, rel in self.state_rels if prefix == folder.prefix), None)


@dataclass(frozen=True)
class Refused:
    """Why a path may not be synced. ``quiet``: not ours at all (an excluded name, our own
    state), so nothing is reported and its object is not protected either."""

    reason: str
    quiet: bool = False
    # Not a file kcsync syncs at all (a FIFO, a device, a symlink out of the folder): named
    # in the report and the log, but no reason for a non-zero exit. Counted as a failure it
    # made every run exit 1 until the user excluded it, for a file they never meant to back
    # up; files that should be synced and cannot be (unreadable, a bad name) still count.
    ignored: bool = False


EXCLUDED = Refused("excluded", quiet=True)
OWN_STATE = Refused("kcsync's own state", quiet=True)
NOT_A_NAME = Refused("not a file name under the folder", quiet=True)


# -- names ----------------------------------------------------------------------------------


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


def relative_name(root: str, path: str) -> str | None:
    """``path``'s name under ``root`` with "/" separators, or None for the root itself or a
    path outside it. Lexical only: symlinks are judged by admission, not here."""
    # The watcher asks this for every event of a burst and every file of a new directory,
    # with paths watchdog and os.walk build by joining names onto the root: when both are
    # already normal, the name is the rest of the string. os.path.relpath (two abspaths and
    # a split) was a sixth of the daemon's CPU in a burst. Anything else takes relpath.
    if os.sep == "/" and _normal_absolute(root):
        base = root if root.endswith("/") else root + "/"
        if path.startswith(base):
            rel = path[len(base) :]
            parts = rel.split("/")
            if "" not in parts and "." not in parts and ".." not in parts:
                return rel
    rel = os.path.relpath(path, root)
    if rel == "." or rel == ".." or rel.startswith(".." + os.sep):
        return None
    return rel.replace(os.sep, "/")


@functools.lru_cache(maxsize=64)
def _normal_absolute(root: str) -> bool:
    return root.startswith("/") and os.path.normpath(root) == root


def within(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it; both already resolved. A sibling whose name starts
    with the root's ("/data2" next to "/data") is outside."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _under(rel: str, state_rel: str | None) -> bool:
    return state_rel is not None and (rel == state_rel or rel.startswith(state_rel + "/"))


def ours_to_judge(rel: str, exclude: tuple[str, ...], state_rel: str | None = None) -> bool:
    """Whether an object name (relative to its folder's prefix) is one a file of the folder
    could have been synced to: only those are ever deleted, by the reconcile's mirror and
    by a directory deleted under the daemon alike. Anything else (excluded, including under
    an excluded directory; kcsync's state; a name no file can have) another tool put there."""
    return (
        valid_relative_name(rel)
        and not is_excluded_path(rel, exclude)
        and not _under(rel, state_rel)
    )


def name_refusal(
    rel: str,
    key: str,
    folder: FolderConfig,
    gate: Gate,
    *,
    listed: bool,
) -> Refused | None:
    """The rules on the name alone. ``listed``: ``rel`` ends in a name a directory listing
    gave, under directories the scan has already admitted on its way down, so it cannot
    be empty, "." or "..", and only its last component is matched against the excludes.
    (The scan pays for no more than it must: it runs for every unchanged file.)"""
    try:
        key_bytes = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
        return Refused("name is not valid UTF-8")
    if listed:
        if is_excluded(rel, folder.exclude):
            return EXCLUDED
    elif not valid_relative_name(rel):
        return NOT_A_NAME
    elif is_excluded_path(rel, folder.exclude):
        return EXCLUDED
    if gate.state_rels and _under(rel, gate.state_rel(folder)):
        return OWN_STATE
    if key_bytes > gate.max_name_bytes:
        return Refused(f"object name is {key_bytes} bytes; the server allows {gate.max_name_bytes}")
    return None


def dir_refusal(rel: str, folder: FolderConfig, gate: Gate) -> Refused | None:
    """Whether the scan should leave a directory out (and everything under it)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return Refused("name is not valid UTF-8")
    if is_excluded(rel, folder.exclude):
        return EXCLUDED
    return OWN_STATE if _under(rel, gate.state_rel(folder)) else None


# -- what the name stands for ---------------------------------------------------------------


def state_holds(gate: Gate, real_path: str) -> bool:
    return gate.state is not None and within(real_path, gate.state.path)


def is_state_dir(gate: Gate, dev: int, ino: int) -> bool:
    """A directory that is our state directory, by identity: a bind mount of it into a
    folder has another path but the same device and inode."""
    return gate.state is not None and (gate.state.dev, gate.state.ino) == (dev, ino)


def link_refusal(target: str, real_root: str, gate: Gate) -> Refused | None:
    """A symlink is followed only to a file inside its folder: anything else could upload
    files the user never put there (`ln -s /etc/passwd`), or loop on a directory link."""
    if not within(target, real_root):
        return Refused("symlink points outside the folder", ignored=True)
    if state_holds(gate, target):
        return Refused("symlink into kcsync's own state directory", ignored=True)
    return None


def file_refusal(mode: int, *, via_link: bool) -> Refused | None:
    if stat.S_ISREG(mode):
        return None
    if via_link:
        return Refused("symlink to something that is not a file", ignored=True)
    return Refused(f"not a regular file ({kind(mode)})", ignored=True)


def kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


# -- when the file is opened ----------------------------------------------------------------


def same_file(admitted: tuple[int, int], opened: tuple[int, int]) -> bool:
    """(st_dev, st_ino) of what was admitted and of what was opened. A device of 0 means
    "not recorded" (an entry built by hand): the inode must still match."""
    (dev, ino), (now_dev, now_ino) = admitted, opened
    return ino == now_ino and (dev == 0 or dev == now_dev)


LeaseVerdict = Literal["free", "busy", "unknown"]


def lease_verdict(err: int | None) -> LeaseVerdict:
    """What a read-lease attempt (F_SETLEASE F_RDLCK) says about writers. The kernel grants
    it only while no process holds the file open for writing, so EAGAIN means "someone is
    still writing". EACCES (not the owner, no CAP_LEASE) and EINVAL (a filesystem without
    leases, such as NFS or FUSE) cannot tell: proceed, as before leases were asked."""
    if err is None:
        return "free"
    if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
        return "busy"
    return "unknown"
