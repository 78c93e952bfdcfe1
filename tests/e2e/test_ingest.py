"""Ingest folders (after_upload: delete, rclone's `move`): each file leaves the disk once
its upload is verified, and never takes its object with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.e2e.daemon_harness import DaemonProcess, wait_for
from tests.e2e.harness import REPO, Env, parse_events

pytestmark = pytest.mark.server


def inbox(env: Env) -> list[dict[str, object]]:
    return [{"path": str(env.data), "prefix": "files/", "after_upload": "delete"}]


def test_once_moves_files_into_the_bucket_and_leaves_the_objects(env: Env) -> None:
    small = os.urandom(5000)
    big = os.urandom(1536 * 1024)  # an SLO (threshold 1 MiB)
    env.write("2024/06/a.jpg", small)
    env.write("2024/06/big.raw", big)
    env.write("top.txt", b"top")
    (env.data / "empty-before").mkdir()  # not ours to remove: nothing was uploaded from it
    first = env.run("--once", folders=inbox(env))
    assert first.code == 0, first.stderr
    assert env.names() == ["files/2024/06/a.jpg", "files/2024/06/big.raw", "files/top.txt"]
    assert env.download("files/2024/06/a.jpg") == small
    assert env.download("files/2024/06/big.raw") == big
    assert sorted(e["object"] for e in first.named("removed after upload")) == env.names()
    # The files and the directories they left empty are gone; the root stays, as does a
    # directory that was empty already.
    assert sorted(p.name for p in env.data.iterdir()) == ["empty-before"]

    # The next run sees the files gone: the objects stay, nothing is sent or deleted.
    second = env.run("--once", folders=inbox(env))
    assert second.code == 0, second.stderr
    assert not second.uploaded() and not second.deleted()
    assert len(env.names()) == 3


def test_a_file_rewritten_during_its_upload_stays_until_its_final_version_is_in(
    env: Env,
) -> None:
    first = os.urandom(2 * 1024 * 1024)
    final = os.urandom(2 * 1024 * 1024 + 7)
    path = env.write("photo.raw", first)
    env.configure(folders=inbox(env), bandwidth={"limit": "512KiB"})
    # 2 MiB at 512 KiB/s: about four seconds, in 256 KiB segments.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kcsync.cli",
            "-c",
            str(env.config_path),
            "--log-format",
            "json",
            "--once",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        segments = f"{env.bucket}_segments"
        wait_for(lambda: bool(env.names(segments)), "the first segment", timeout=60)
        path.write_bytes(final)  # rewritten while its segments go out
        assert path.exists()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr
    events = parse_events(stderr)
    failed = [e for e in events if e.get("event") == "job failed"]
    assert failed and "changed" in failed[0]["error"]  # that upload got no manifest
    uploads = [e for e in events if e.get("event") == "uploaded"]
    assert len(uploads) == 1 and uploads[0]["bytes"] == len(final)
    assert env.download("files/photo.raw") == final
    # Removed only as the version the bucket holds.
    assert [e["object"] for e in events if e.get("event") == "removed after upload"] == [
        "files/photo.raw"
    ]
    assert not path.exists()


def test_daemon_removes_after_upload_and_a_reconcile_keeps_the_objects(env: Env) -> None:
    env.write("keep/.placeholder-dir-marker", b"")  # there at start: the first reconcile
    with DaemonProcess(env, folders=inbox(env)) as daemon:
        daemon.wait_reconciled()
        wait_for(lambda: not (env.data / "keep").exists(), "the startup file removed")
        data = {f"drop/{i}.jpg": os.urandom(2000 + i) for i in range(5)}
        for rel, content in data.items():
            env.write(rel, content)
        wait_for(lambda: not (env.data / "drop").exists(), "the files and their directory")
        assert env.data.is_dir()
        wanted = sorted(["files/keep/.placeholder-dir-marker", *(f"files/{r}" for r in data)])
        wait_for(lambda: env.names() == wanted, "every object")
        for rel, content in data.items():
            assert env.download(f"files/{rel}") == content
        daemon.proc.send_signal(signal.SIGHUP)  # a reconcile over the now empty folder
        daemon.wait_reconciled(2)
        assert env.names() == wanted
        assert not daemon.named("deleted")
        assert len(daemon.named("removed after upload")) == 6
