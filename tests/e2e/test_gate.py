"""One gate (DESIGN §4a), through the CLI: the daemon admits what `--once` admits, and
deletes only what the reconcile would delete.

To show the daemon did NOT do something, each test waits for a later observable event
(a marker file uploaded after the action, with one worker so jobs run in queue order)
rather than sleeping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonProcess, wait_for
from tests.e2e.harness import Env

pytestmark = pytest.mark.server


def _upload_marker(env: Env, name: str) -> None:
    env.write(name, name.encode())
    wait_for(lambda: f"files/{name}" in env.names(), f"the marker {name}")


def _skips(daemon: DaemonProcess, path: Path) -> list[dict[str, object]]:
    # A link out of the folder is not a file kcsync syncs: "ignored", not "skipped".
    return [e for e in daemon.named("ignored") if e.get("path") == str(path)]


@pytest.mark.parametrize("how", ["created", "moved-in"])
def test_daemon_never_uploads_a_symlink_to_a_file_outside(env: Env, how: str) -> None:
    env.write("keep.txt", b"k")
    secret = env.root / "secret.txt"
    secret.write_bytes(b"private: not in the synced folder")
    link = env.data / "escape"
    with DaemonProcess(env, workers=1) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        if how == "created":
            link.symlink_to(secret)  # ln -s /outside/secret.txt escape
        else:
            (env.root / "staged").symlink_to(secret)
            os.rename(env.root / "staged", link)  # mv into the watched folder
        wait_for(
            lambda: _skips(daemon, link) or "files/escape" in env.names(),
            "the link to be judged",
        )
        _upload_marker(env, "marker.txt")
        assert "files/escape" not in env.names()
        assert [e["reason"] for e in _skips(daemon, link)] == ["symlink points outside the folder"]


def test_removing_a_directory_keeps_objects_of_excluded_names(env: Env) -> None:
    env.write("keep.txt", b"k")
    env.write("album/a.jpg", b"a")
    env.write("album/b.jpg", b"b")
    with DaemonProcess(env, workers=1):
        wait_for(lambda: len(env.names()) == 3, "the startup reconcile")
        # Names kcsync never uploads (excluded, or under an excluded directory), put there
        # by another tool: the reconcile leaves them alone, so must a deleted directory.
        others = ["files/album/c.jpg.part", "files/album/dl.part/inner.txt"]
        for name in others:
            env.conn.put_object(env.bucket, name, b"another tool's")
        shutil.rmtree(env.data / "album")
        wait_for(
            lambda: not {"files/album/a.jpg", "files/album/b.jpg"} & set(env.names()),
            "the directory's objects to go",
        )
        _upload_marker(env, "marker.txt")  # one worker: the delete job is over
        assert env.names() == [*others, "files/keep.txt", "files/marker.txt"]


@pytest.mark.parametrize("how", ["moved-in", "created"])
def test_a_file_in_a_new_directory_is_not_uploaded_while_open(env: Env, how: str) -> None:
    env.write("keep.txt", b"k")
    first, rest = os.urandom(40_000), os.urandom(40_000)
    staged = env.root / "staged" if how == "moved-in" else env.data / "new"
    with DaemonProcess(env, workers=1) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        staged.mkdir()  # created: written into before its watch may exist
        with open(staged / "big.bin", "wb") as writer:
            writer.write(first)
            writer.flush()
            (staged / "done.txt").write_bytes(b"done")
            if how == "moved-in":
                # One event for the whole directory: its files are found by the walk,
                # both at once, while big.bin is still open here.
                os.rename(staged, env.data / "new")
            wait_for(lambda: "files/new/done.txt" in env.names(), "the new directory's walk")
            _upload_marker(env, "marker.txt")  # one worker: anything queued before is done
            assert "files/new/big.bin" not in env.names()
            writer.write(rest)
        wait_for(lambda: "files/new/big.bin" in env.names(), "the upload after close")
        assert env.download("files/new/big.bin") == first + rest
        wait_for(lambda: daemon.named("uploaded", "files/new/big.bin"), "the log line")
        assert len(daemon.named("uploaded", "files/new/big.bin")) == 1  # never half of it


def test_once_does_not_upload_a_file_open_for_writing(env: Env) -> None:
    env.write("keep.txt", b"k")
    with open(env.data / "growing.bin", "wb") as writer:
        writer.write(b"the first half")
        writer.flush()

        result = env.run()

        assert result.code == 1, result.stderr
        assert "failed: files/growing.bin: " in result.stdout
        assert "open for writing" in result.stdout
        assert env.names() == ["files/keep.txt"]
        writer.write(b", then the rest")

    after = env.run()
    assert after.code == 0, after.stderr
    assert env.download("files/growing.bin") == b"the first half, then the rest"
