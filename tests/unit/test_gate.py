"""gate.py's rules as tables, and localfs.admit / open_file applying them to real files."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import signal
import stat
from pathlib import Path

import pytest

from kcsync import localfs
from kcsync.config import DEFAULT_EXCLUDES, FolderConfig
from kcsync.errors import FileBusyError, FileChangedError
from kcsync.gate import (
    EXCLUDED,
    NOT_A_NAME,
    OWN_STATE,
    Gate,
    Refused,
    StateDir,
    dir_refusal,
    file_refusal,
    lease_verdict,
    link_refusal,
    name_refusal,
    ours_to_judge,
    relative_name,
    same_file,
    within,
)
from kcsync.localfs import admit, make_gate, open_file, scan
from kcsync.model import BadEntry, LocalEntry

FOLDER = FolderConfig(Path("/data"), "p/", (*DEFAULT_EXCLUDES, "cache", "logs/*.log"))
GATE = Gate(20)
STATE_IN_FOLDER = Gate(1024, StateDir("/data/.state", 1, 2), (("p/", ".state"),))
TOO_LONG = Refused("object name is 21 bytes; the server allows 20")


# -- pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "listed", "gate", "expected"),
    [
        ("a.txt", True, GATE, None),
        ("d/a.txt", False, GATE, None),
        ("x" * 18, True, GATE, None),  # "p/" + 18 = the limit
        ("x" * 19, True, GATE, TOO_LONG),
        ("é" * 9 + "x", True, GATE, Refused("object name is 21 bytes; the server allows 20")),
        ("bad\udcff", True, GATE, Refused("name is not valid UTF-8")),
        ("a.part", True, GATE, EXCLUDED),
        ("cache/a.txt", False, GATE, EXCLUDED),  # under an excluded directory
        ("cache/a.txt", True, GATE, None),  # listed: the walk pruned "cache" already
        ("logs/x.log", False, GATE, EXCLUDED),
        ("../etc/passwd", False, GATE, NOT_A_NAME),
        ("d//a", False, GATE, NOT_A_NAME),
        ("", False, GATE, NOT_A_NAME),
        (".state/kcsync.db", False, STATE_IN_FOLDER, OWN_STATE),
        (".state", False, STATE_IN_FOLDER, OWN_STATE),
        (".statefile", False, STATE_IN_FOLDER, None),
        (".state/kcsync.db", False, GATE, None),
    ],
    ids=[
        "plain",
        "nested",
        "at-limit",
        "over-limit",
        "limit-in-bytes",
        "not-utf8",
        "excluded",
        "under-excluded-dir",
        "listed-checks-last-part-only",
        "path-pattern",
        "dotdot",
        "empty-part",
        "empty",
        "state-file",
        "state-dir",
        "state-like-name",
        "no-state-here",
    ],
)
def test_name_refusal(rel: str, listed: bool, gate: Gate, expected: Refused | None) -> None:
    assert name_refusal(rel, FOLDER.prefix + rel, FOLDER, gate, listed=listed) == expected


@pytest.mark.parametrize(
    ("rel", "state_rel", "ours"),
    [
        ("a.txt", None, True),
        ("d/e/f.jpg", None, True),
        ("a.tmp", None, False),
        ("cache/x.txt", None, False),
        ("d/cache/x.txt", None, False),
        ("logs/a.log", None, False),
        ("logs/a.txt", None, True),
        ("d//x", None, False),
        ("d/../x", None, False),
        ("", None, False),
        (".kcsync/kcsync.db", ".kcsync", False),
        (".kcsync-other", ".kcsync", True),
    ],
    ids=[
        "plain",
        "nested",
        "excluded-name",
        "excluded-dir",
        "excluded-dir-deeper",
        "excluded-path-pattern",
        "path-pattern-no-match",
        "empty-part",
        "dotdot",
        "empty",
        "state",
        "state-like-name",
    ],
)
def test_ours_to_judge(rel: str, state_rel: str | None, ours: bool) -> None:
    assert ours_to_judge(rel, FOLDER.exclude, state_rel) is ours


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [
        ("/data", "/data", True),
        ("/data/a", "/data", True),
        ("/data2/a", "/data", False),
        ("/dat", "/data", False),
        ("/etc/passwd", "/", True),
        ("/data/a", "/data/", True),
    ],
    ids=["itself", "below", "sibling-prefix", "shorter", "root-folder", "trailing-slash"],
)
def test_within(path: str, root: str, inside: bool) -> None:
    assert within(path, root) is inside


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/a.txt", "a.txt"),
        ("/data/d/e", "d/e"),
        ("/data", None),
        ("/data2/a", None),
        ("/a", None),
    ],
    ids=["file", "nested", "root", "sibling", "outside"],
)
def test_relative_name(path: str, expected: str | None) -> None:
    assert relative_name("/data", path) == expected


def _relpath_rule(root: str, path: str) -> str | None:
    rel = os.path.relpath(path, root)
    return None if rel in (".", "..") or rel.startswith("../") else rel


def test_relative_name_fast_path_says_what_relpath_says() -> None:
    # The fast path (a normal root, a path joined onto it) must never differ from the rule
    # it shortcuts, whatever odd spelling a root or a path comes in.
    rng = random.Random(11)
    parts = ["data", "d", "..", ".", "", "data2", "a.txt", ".hidden", "x..y", "...", "d.d"]
    roots = ["/", "/data", "/data/", "//data", "/data/./d", "/data/../data", "data", "/a/b"]
    for _ in range(20_000):
        root = rng.choice(roots)
        lead = rng.choice(["/", "//", "", root, root + "/"])
        path = lead + "/".join(rng.choice(parts) for _ in range(rng.randint(0, 4))) or "/"
        assert relative_name(root, path) == _relpath_rule(root, path), (root, path)


STATE = Gate(1024, StateDir("/data/.state", 1, 2))


@pytest.mark.parametrize(
    ("target", "gate", "expected"),
    [
        ("/data/real.txt", GATE, None),
        ("/etc/passwd", GATE, Refused("symlink points outside the folder", ignored=True)),
        ("/data2/x", GATE, Refused("symlink points outside the folder", ignored=True)),
        (
            "/data/.state/kcsync.db",
            STATE,
            Refused("symlink into kcsync's own state directory", ignored=True),
        ),
    ],
    ids=["inside", "outside", "sibling", "into-state"],
)
def test_link_refusal(target: str, gate: Gate, expected: Refused | None) -> None:
    assert link_refusal(target, "/data", gate) == expected


@pytest.mark.parametrize(
    ("mode", "via_link", "expected"),
    [
        (stat.S_IFREG, False, None),
        (stat.S_IFREG, True, None),
        (stat.S_IFIFO, False, "not a regular file (fifo)"),
        (stat.S_IFSOCK, False, "not a regular file (socket)"),
        (stat.S_IFCHR, False, "not a regular file (character device)"),
        (stat.S_IFBLK, False, "not a regular file (block device)"),
        (stat.S_IFDIR, True, "symlink to something that is not a file"),
        (stat.S_IFIFO, True, "symlink to something that is not a file"),
    ],
    ids=["file", "link-to-file", "fifo", "socket", "chardev", "blockdev", "link-dir", "link-fifo"],
)
def test_file_refusal(mode: int, via_link: bool, expected: str | None) -> None:
    refusal = file_refusal(mode, via_link=via_link)
    assert (refusal.reason if refusal else None) == expected
    # Not files kcsync syncs: reported, but they do not make a run exit 1 (issue 20).
    assert refusal is None or refusal.ignored


@pytest.mark.parametrize(
    ("rel", "gate", "expected"),
    [
        ("photos", GATE, None),
        ("cache", GATE, EXCLUDED),
        ("d/cache", GATE, EXCLUDED),
        ("dir\udcfe", GATE, Refused("name is not valid UTF-8")),
        (".state", STATE_IN_FOLDER, OWN_STATE),
    ],
    ids=["plain", "excluded", "excluded-nested", "not-utf8", "state"],
)
def test_dir_refusal(rel: str, gate: Gate, expected: Refused | None) -> None:
    assert dir_refusal(rel, FOLDER, gate) == expected


@pytest.mark.parametrize(
    ("admitted", "opened", "same"),
    [
        ((5, 100), (5, 100), True),
        ((5, 100), (5, 101), False),  # renamed over: another inode
        ((5, 100), (6, 100), False),  # same inode number on another filesystem
        ((0, 100), (6, 100), True),  # device not recorded
        ((0, 100), (6, 101), False),
    ],
    ids=["same", "other-inode", "other-device", "no-device", "no-device-other-inode"],
)
def test_same_file(admitted: tuple[int, int], opened: tuple[int, int], same: bool) -> None:
    assert same_file(admitted, opened) is same


@pytest.mark.parametrize(
    ("err", "verdict"),
    [
        (None, "free"),
        (errno.EAGAIN, "busy"),
        (errno.EBUSY, "busy"),
        (errno.EACCES, "unknown"),
        (errno.EINVAL, "unknown"),
        (errno.ENOLCK, "unknown"),
    ],
    ids=["granted", "writer", "busy", "not-owner", "no-leases-here", "other"],
)
def test_lease_verdict(err: int | None, verdict: str) -> None:
    assert lease_verdict(err) == verdict


# -- admit: the scan and a single path agree -------------------------------------------------


def make(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> tuple[FolderConfig, Gate]:
    """A folder holding one of everything the gate judges."""
    root = tmp_path / "root"
    make(root, "plain.txt", b"plain")
    make(tmp_path, "secret.txt", b"private")
    (root / "to-outside").symlink_to(tmp_path / "secret.txt")
    (root / "to-inside").symlink_to(root / "plain.txt")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "to-dir").symlink_to(root / "sub")
    make(root, "sub/deep.txt", b"deep")
    make(root, "x.part")
    make(root, "cache/in-excluded.txt")
    os.mkfifo(root / "pipe")
    make(root, "n" * 40)
    state = root / ".kcsync"
    make(state, "kcsync.db", b"sqlite")
    (root / "to-state").symlink_to(state / "kcsync.db")
    folder = FolderConfig(root, "p/", (*DEFAULT_EXCLUDES, "cache"))
    return folder, make_gate((folder,), state, max_name_bytes=30)


def by_rel(folder: FolderConfig, items: list[LocalEntry | BadEntry]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        if isinstance(item, LocalEntry):
            out[item.key.removeprefix(folder.prefix)] = item
        else:
            out[os.path.relpath(item.path, folder.path)] = item.reason
    return out


def test_admit_and_the_scan_say_the_same(tree: tuple[FolderConfig, Gate]) -> None:
    folder, gate = tree
    scanned = by_rel(folder, list(scan(folder, gate)))
    assert scanned == {
        "plain.txt": scanned["plain.txt"],
        "sub/deep.txt": scanned["sub/deep.txt"],
        "to-inside": scanned["to-inside"],
        "to-outside": "symlink points outside the folder",
        "dangling": "broken symlink",
        "to-dir": "symlink to something that is not a file",
        "pipe": "not a regular file (fifo)",
        "n" * 40: "object name is 42 bytes; the server allows 30",
        "to-state": "symlink into kcsync's own state directory",
        # x.part, cache/ and the state directory .kcsync/: not ours, not reported
    }
    for rel, expected in scanned.items():
        got = admit(folder, rel, gate)
        if isinstance(got, BadEntry):
            assert got.reason == expected, rel
        else:
            assert got == expected, rel
    for quiet in ("x.part", "cache/in-excluded.txt", ".kcsync/kcsync.db"):
        assert admit(folder, quiet, gate) is None, quiet


def test_an_admitted_symlink_is_opened_at_its_target(tree: tuple[FolderConfig, Gate]) -> None:
    folder, gate = tree
    entry = admit(folder, "to-inside", gate)
    assert isinstance(entry, LocalEntry) and entry.path == str(folder.path / "plain.txt")
    with open_file(entry) as f:
        assert f.read() == b"plain"


def test_a_path_through_a_directory_symlink_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make(tmp_path, "elsewhere/secret.txt")
    root.mkdir()
    (root / "door").symlink_to(tmp_path / "elsewhere")
    folder = FolderConfig(root, "", ())
    got = admit(folder, "door/secret.txt", Gate(1024))
    assert isinstance(got, BadEntry)
    assert got.reason == "outside the folder once symlinks are resolved"
    assert got.protects == "door/secret.txt"


def test_the_state_directory_is_known_by_identity_too(tmp_path: Path) -> None:
    # A bind mount of the state directory into a folder: another path, the same inode.
    make(tmp_path, "mnt/kcsync.db")
    make(tmp_path, "keep.txt")
    st = (tmp_path / "mnt").stat()
    gate = Gate(1024, StateDir("/var/lib/kcsync", st.st_dev, st.st_ino))
    folder = FolderConfig(tmp_path, "", ())
    assert [e.key for e in scan(folder, gate)] == ["keep.txt"]
    assert admit(folder, "mnt/kcsync.db", gate) is None


# -- open_file: the checks made on the descriptor that is read --------------------------------


def test_a_file_open_for_writing_is_busy_until_closed(tmp_path: Path) -> None:
    path = make(tmp_path, "f.bin", b"half")
    entry = localfs.restat(LocalEntry("f.bin", str(path), 0, 0, 0, 0))
    with open(path, "ab") as writer:
        with pytest.raises(FileBusyError, match="open for writing"):
            open_file(entry)
        assert isinstance(FileBusyError("x"), FileChangedError)  # retried like a change
        writer.write(b" and the rest")
    entry = localfs.restat(entry)
    with open_file(entry) as f:
        assert f.read() == b"half and the rest"


def test_other_readers_do_not_make_a_file_busy(tmp_path: Path) -> None:
    path = make(tmp_path, "f.bin", b"data")
    entry = localfs.restat(LocalEntry("f.bin", str(path), 0, 0, 0, 0))
    with open(path, "rb"), open_file(entry) as f:
        assert f.read() == b"data"


@pytest.mark.parametrize(
    "swap",
    [
        lambda p, other: os.replace(other, p),  # renamed over: a new inode
        lambda p, other: (p.unlink(), p.symlink_to(other)),  # swapped for a symlink
    ],
    ids=["renamed-over", "swapped-for-symlink"],
)
def test_a_file_swapped_after_admission_is_not_read(tmp_path: Path, swap) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path, "f.bin", b"admitted")
    other = make(tmp_path, "other.bin", b"not admitted")
    entry = admit(FolderConfig(tmp_path, "", ()), "f.bin", Gate(1024))
    assert isinstance(entry, LocalEntry)
    swap(path, other)
    with pytest.raises(FileChangedError):
        open_file(entry)


@pytest.mark.parametrize("err", [errno.EACCES, errno.EINVAL], ids=["not-owner", "no-leases"])
def test_a_lease_that_cannot_be_asked_does_not_stop_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    path = make(tmp_path, "f.bin", b"data")
    entry = localfs.restat(LocalEntry("f.bin", str(path), 0, 0, 0, 0))
    real_fcntl = fcntl.fcntl

    def no_lease(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETLEASE:
            raise OSError(err, os.strerror(err))
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_lease)
    with open(path, "ab"), open_file(entry) as f:  # a writer, but nobody can tell
        assert f.read() == b"data"


def test_the_lease_is_taken_with_a_harmless_signal_and_let_go_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lease break signals SIGIO by default, and SIGIO kills the process: a writer opening
    # the file in the instant we hold the lease would take kcsync down.
    path = make(tmp_path, "f.bin", b"data")
    entry = localfs.restat(LocalEntry("f.bin", str(path), 0, 0, 0, 0))
    calls: list[tuple[int, int]] = []
    real_fcntl = fcntl.fcntl

    def spy(fd: int, cmd: int, arg: int = 0) -> int:
        calls.append((cmd, arg))
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", spy)
    open_file(entry).close()
    assert calls == [
        (fcntl.F_SETSIG, signal.SIGURG),
        (fcntl.F_SETLEASE, fcntl.F_RDLCK),
        (fcntl.F_SETLEASE, fcntl.F_UNLCK),
    ]
    assert signal.getsignal(signal.SIGURG) == signal.SIG_DFL  # ignored by default
