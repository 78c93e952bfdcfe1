"""The daemon through the CLI: watcher -> queue -> workers, reconcile, signals, systemd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.daemon_harness import DaemonProcess, tree_names, wait_for
from tests.e2e.harness import REPO, Env
from tests.faults import FaultProxy

pytestmark = pytest.mark.server


def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(env: Env) -> None:
    daemon = DaemonProcess(env, watchdog_usec=400_000)
    ready = daemon.wait_ready()
    assert "queued" in ready["STATUS"]
    # WATCHDOG_USEC=0.4s: a ping at least every 0.2s.
    pings = [daemon.receive(timeout=5) for _ in range(4)]
    assert any(m.get("WATCHDOG") == "1" for m in pings)
    assert daemon.stop() == 0
    assert {"STOPPING": "1", "STATUS": "stopping"} in daemon.messages


def test_create_modify_delete_reach_the_bucket(env: Env) -> None:
    env.write("keep.txt", b"the folder is never empty")
    with DaemonProcess(env) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        env.write("a.txt", b"one")
        wait_for(lambda: "files/a.txt" in env.names(), "create")
        env.write("a.txt", b"two, longer")
        wait_for(lambda: env.download("files/a.txt") == b"two, longer", "modify")
        (env.data / "a.txt").unlink()
        wait_for(lambda: "files/a.txt" not in env.names(), "delete")
        assert len(daemon.named("uploaded", "files/a.txt")) == 2


def test_rename_is_a_server_side_copy(env: Env) -> None:
    env.write("keep.txt", b"k")
    env.write("old name.jpg", os.urandom(50_000))
    with DaemonProcess(env) as daemon:
        wait_for(lambda: "files/old name.jpg" in env.names(), "first upload")
        os.rename(env.data / "old name.jpg", env.data / "new name.jpg")
        wait_for(lambda: env.names() == ["files/keep.txt", "files/new name.jpg"], "rename")
        assert daemon.named("copied", "files/new name.jpg")
        assert not daemon.named("uploaded", "files/new name.jpg")
        assert env.head("files/new name.jpg")["content-type"] == "image/jpeg"


def test_finished_part_file_is_uploaded_under_its_final_name(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env) as daemon:
        part = env.write("video.mp4.part", os.urandom(30_000))
        os.rename(part, env.data / "video.mp4")
        wait_for(lambda: "files/video.mp4" in env.names(), "final name")
        assert env.download("files/video.mp4") == (env.data / "video.mp4").read_bytes()
        assert not [n for n in env.names() if n.endswith(".part")]
        assert len(daemon.named("uploaded", "files/video.mp4")) == 1


def test_directories_moved_in_and_out(env: Env) -> None:
    env.write("keep.txt", b"k")
    outside = env.root / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "x.txt").write_bytes(b"x")
    (outside / "y.txt").write_bytes(b"y")
    with DaemonProcess(env):
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        os.rename(outside, env.data / "moved")
        expected = ["files/keep.txt", "files/moved/sub/x.txt", "files/moved/y.txt"]
        wait_for(lambda: env.names() == expected, "directory moved in")
        os.rename(env.data / "moved", env.root / "gone")
        wait_for(lambda: env.names() == ["files/keep.txt"], "directory moved out")


def test_burst_of_a_thousand_files_is_coalesced_and_complete(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env, workers=8) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        for i in range(1000):
            path = env.data / "burst" / f"{i:04d}.bin"
            path.parent.mkdir(exist_ok=True)
            with open(path, "wb") as f:  # several writes: several events, one job
                f.write(b"%d" % i)
                f.flush()
                f.write(b"-end")
        wait_for(lambda: len(env.names()) == 1001, "1000 uploads", timeout=120)
        uploads = [e["object"] for e in daemon.named("uploaded")]
        assert len(uploads) == len(set(uploads)) == 1001  # nothing sent twice
        assert env.download("files/burst/0999.bin") == b"999-end"


def test_slowly_written_file_is_uploaded_once_and_complete(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        chunks = [os.urandom(10_000) for _ in range(8)]
        with open(env.data / "slow.bin", "wb") as f:
            for chunk in chunks:  # 8 writes 0.4 s apart: longer than the 0.3 s settle time
                f.write(chunk)
                f.flush()
                time.sleep(0.4)  # the writer is slow on purpose; this is the scenario
        wait_for(lambda: "files/slow.bin" in env.names(), "the upload")
        assert env.download("files/slow.bin") == b"".join(chunks)
        wait_for(lambda: daemon.named("uploaded", "files/slow.bin"), "the log line")
        assert len(daemon.named("uploaded", "files/slow.bin")) == 1


def test_kill_9_mid_burst_then_restart_loses_nothing(env: Env) -> None:
    env.write("keep.txt", b"k")
    daemon = DaemonProcess(env, workers=2)
    daemon.wait_ready()
    for i in range(300):
        env.write(f"b/{i:03d}.bin", b"%d" % i)
    env.write("b/big.bin", os.urandom(6 * 256 * 1024))  # an SLO, likely cut mid-way
    wait_for(lambda: len(daemon.named("uploaded")) >= 20, "some uploads")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    (env.data / "b" / "000.bin").write_bytes(b"changed while down")
    (env.data / "b" / "001.bin").unlink()

    with DaemonProcess(env, workers=4):
        expected = tree_names(env.data)
        wait_for(lambda: env.names() == expected, "everything after restart", timeout=120)
        assert env.download("files/b/000.bin") == b"changed while down"
        assert env.download("files/b/big.bin") == (env.data / "b/big.bin").read_bytes()


def test_sigterm_lets_the_upload_in_flight_finish(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env, workers=2) as daemon:
        wait_for(lambda: "files/keep.txt" in env.names(), "the startup reconcile")
        for i in range(200):
            env.write(f"t/{i:03d}.bin", os.urandom(20_000))
        wait_for(lambda: len(daemon.named("uploaded")) > 5, "uploads to start")
    stopped = daemon.named("stopped")
    assert stopped and stopped[0]["clean"] is True
    sent = {e["object"] for e in daemon.named("uploaded")}
    assert set(env.names()) == sent  # everything visible was finished, nothing partial
    for name in sorted(sent - {"files/keep.txt"})[:5]:
        assert env.download(name) == (env.data / name.removeprefix("files/")).read_bytes()

    rest = env.run()  # what was still queued is picked up by the next run
    assert rest.code == 0, rest.stderr
    assert env.names() == tree_names(env.data)


def test_dead_job_is_shown_by_status_and_retried_by_reconcile(env: Env) -> None:
    env.conn.put_container(env.bucket)
    token, storage_url = env.backend.token()
    origin = urlunsplit((*urlsplit(storage_url)[:2], "", "", ""))
    # The server fails the first object PUT; with one attempt per request and per job, the
    # job is dead at once.
    with FaultProxy(origin, fail_first=1, fail_status=500, fail_methods={"PUT"}) as proxy:
        auth = {"method": "token", "token": token, "storage_url": proxy.proxied(storage_url)}
        retry = {"job_attempts": 1, "request_attempts": 1}
        with DaemonProcess(env, auth=auth, retry=retry) as daemon:
            daemon.wait_reconciled()
            env.write("a.txt", b"a")
            wait_for(lambda: daemon.named("job failed", "files/a.txt"), "the failure")
            status = _status(env)
            assert status.returncode == 0, status.stderr
            assert "dead: files/a.txt (sync, 1 attempt): PUT " in status.stdout
            assert "1 dead" in status.stdout
            assert "files/a.txt" not in env.names()

            os.kill(daemon.proc.pid, signal.SIGHUP)  # reconcile now: dead jobs get retried
            wait_for(lambda: "files/a.txt" in env.names(), "the retry")
            wait_for(lambda: "0 dead" in _status(env).stdout, "status to clear")


def _status(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "status", "-c", str(env.config_path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def test_status_json_while_running(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env) as daemon:
        daemon.wait_reconciled()
        import json

        status = json.loads(_status(env, "--json").stdout)
        assert status["daemon_running"] is True
        assert status["last_reconcile"]["drift"] == 1
        assert status["folders"][0]["objects"] in (0, 1)
    after = json.loads(_status(env, "--json").stdout)
    assert after["daemon_running"] is False
    assert after["folders"][0] == {
        "path": str(env.data),
        "prefix": "files/",
        "objects": 1,
        "bytes": 1,
    }
