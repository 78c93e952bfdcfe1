"""Large files as SLOs: layout, overwrite, resume, and a file changing while it is read."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from kcsync import localfs, transfer
from kcsync.errors import FileChangedError
from kcsync.model import LocalEntry
from kcsync.swift.slo import is_segment_of, slo_etag
from tests.e2e.harness import REPO, Env
from tests.faults import FaultProxy

pytestmark = pytest.mark.server
SEG = 256 * 1024


def segments_of(env: Env, name: str) -> list[str]:
    return [s for s in env.names(f"{env.bucket}_segments") if is_segment_of(name, s)]


def test_large_file_is_an_slo_readable_by_swiftclient(env: Env) -> None:
    data = os.urandom(5 * SEG + 1234)
    env.write("big.bin", data)

    result = env.run()

    assert result.code == 0, result.stderr
    assert env.download("files/big.bin") == data
    head = env.head("files/big.bin")
    assert head["x-static-large-object"].lower() == "true"
    assert int(head["content-length"]) == len(data)
    parts = [hashlib.md5(data[i : i + SEG]).hexdigest() for i in range(0, len(data), SEG)]
    assert head["etag"].strip('"') == slo_etag(parts)
    # The identity kcsync can recompute from the file: no whole-file MD5 pass for an SLO.
    assert head["x-object-meta-kcsync-slo-etag"] == slo_etag(parts)
    assert head["x-object-meta-kcsync-segment-size"] == str(SEG)
    assert "x-object-meta-kcsync-md5" not in head
    assert len(segments_of(env, "files/big.bin")) == 6
    assert env.names() == ["files/big.bin"]  # segments live in their own container


def test_overwrite_removes_old_segments_and_delete_removes_the_rest(env: Env) -> None:
    env.write("keep.txt", b"so the folder is not empty (the guard would refuse)")
    env.write("big.bin", os.urandom(3 * SEG))
    assert env.run().code == 0
    old = segments_of(env, "files/big.bin")
    new = os.urandom(4 * SEG + 7)
    env.write("big.bin", new)

    assert env.run().uploaded() == ["files/big.bin"]

    assert env.download("files/big.bin") == new
    current = segments_of(env, "files/big.bin")
    assert len(current) == 5 and not set(old) & set(current)
    (env.data / "big.bin").unlink()
    assert env.run().deleted() == ["files/big.bin"]
    assert segments_of(env, "files/big.bin") == []


def test_large_file_shrunk_below_threshold_leaves_no_segments(env: Env) -> None:
    env.write("big.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    env.write("big.bin", b"small now")

    assert env.run().uploaded() == ["files/big.bin"]
    assert env.download("files/big.bin") == b"small now"
    assert segments_of(env, "files/big.bin") == []


def test_upload_killed_midway_resumes_without_resending_segments(env: Env) -> None:
    data = os.urandom(40 * SEG)
    env.write("big.bin", data)
    token, storage_url = env.backend.token()
    origin = urlunsplit((*urlsplit(storage_url)[:2], "", "", ""))
    # A slow link (0.1 s a request) so the kill surely lands mid-upload on either server.
    with FaultProxy(origin, delay=0.1) as slow:
        env.configure(
            auth={"method": "token", "token": token, "storage_url": slow.proxied(storage_url)},
            workers=1,
        )
        cmd = [sys.executable, "-m", "kcsync.cli", "-c", str(env.config_path), "--once"]
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while len(segments_of(env, "files/big.bin")) < 5:
                assert proc.poll() is None, "finished before it could be killed"
                assert time.monotonic() < deadline, "no segments appeared"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    sent_before = len(segments_of(env, "files/big.bin"))
    assert "files/big.bin" not in env.names(), "a partial upload must not be visible"

    result = env.run(workers=1, auth=env.settings["auth"])

    assert result.code == 0, result.stderr
    # Swift serves segments under 1 MiB at 1/s after the tenth (its SLO rate limit), so
    # the content is checked through the SLO Etag rather than a 30-second download.
    parts = [hashlib.md5(data[i : i + SEG]).hexdigest() for i in range(0, len(data), SEG)]
    assert env.head("files/big.bin")["etag"].strip('"') == slo_etag(parts)
    # Only the missing segments and the manifest were PUT again.
    assert result.requests["PUT"] <= 40 - sent_before + 1
    assert sent_before < 40


def test_segment_damaged_in_transit_is_sent_again(env: Env) -> None:
    data = os.urandom(5 * SEG + 5)  # above the harness's 1 MiB threshold: six segments
    env.write("big.bin", data)
    token, storage_url = env.backend.token()
    origin = urlunsplit((*urlsplit(storage_url)[:2], "", "", ""))
    # Segments are streamed with no ETag header (hashed as they go out), so the server
    # stores whatever arrives; only comparing its answer with our hash catches the damage.
    with FaultProxy(origin, corrupt_first=2, corrupt_targets="_segments/") as proxy:
        result = env.run(
            workers=1,
            auth={"method": "token", "token": token, "storage_url": proxy.proxied(storage_url)},
        )
        assert proxy.corrupted == 2

    assert result.code == 0, result.stderr
    assert env.download("files/big.bin") == data
    parts = [hashlib.md5(data[i : i + SEG]).hexdigest() for i in range(0, len(data), SEG)]
    assert env.head("files/big.bin")["etag"].strip('"') == slo_etag(parts)
    assert len(result.named("segment damaged in transit; sending it again")) == 2
    # Two containers, six segments, the two re-sends, the manifest.
    assert result.requests["PUT"] == 2 + 6 + 2 + 1


def test_file_changing_while_read_gets_no_manifest(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = env.write("grow.bin", os.urandom(6 * SEG))
    env.conn.put_container(env.bucket)
    from kcsync.config import load_config
    from kcsync.daemon import make_remote

    config = load_config(env.configure())
    remote = make_remote(config)
    xfer = transfer.Transfer(
        remote.client,
        env.bucket,
        f"{env.bucket}_segments",
        remote.limits,
        segment_size=SEG,
        segment_workers=2,
    )
    st = path.stat()
    entry = LocalEntry("files/grow.bin", str(path), st.st_size, st.st_mtime_ns, st.st_ino, 0)
    real_open = localfs.open_file

    def open_then_append(e: LocalEntry):  # type: ignore[no-untyped-def]
        handle = real_open(e)
        with open(path, "ab") as f:  # another process appends while we read
            f.write(b"more")
        return handle

    monkeypatch.setattr(localfs, "open_file", open_then_append)
    try:
        with pytest.raises(FileChangedError):
            xfer.put_slo(entry)
    finally:
        xfer.close()
    assert "files/grow.bin" not in env.names()

    # The next run sends the file as it is now.
    result = env.run()
    assert result.code == 0, result.stderr
    assert env.download("files/grow.bin") == path.read_bytes()


def test_orphaned_segments_are_collected_and_live_ones_kept(env: Env) -> None:
    env.write("keep.txt", b"k")
    live = env.write("live.bin", os.urandom(5 * SEG))
    env.write("gone.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    live_segments = segments_of(env, "files/live.bin")
    # Orphans as a killed upload leaves them: segments of an older version of live.bin,
    # and of gone.bin, whose file and manifest then disappear.
    segs = f"{env.bucket}_segments"
    stale = "files/live.bin/1000.000000/5/1/00000000"
    env.conn.put_object(segs, stale, b"x")
    env.conn.delete_object(env.bucket, "files/gone.bin")  # plain delete: segments stay
    (env.data / "gone.bin").unlink()
    gone_segments = segments_of(env, "files/gone.bin")
    assert len(gone_segments) == 5
    # A touched SLO: same content, new mtime. Its live segments must not look stale.
    os.utime(live, ns=(live.stat().st_atime_ns, live.stat().st_mtime_ns + 10**9))

    kept = env.run()  # the default grace period (1 h) protects recent segments
    assert kept.code == 0, kept.stderr
    assert stale in env.names(segs) and segments_of(env, "files/gone.bin") == gone_segments

    collected = env.run(
        large_objects={"threshold": "1MiB", "segment_size": "256KiB", "orphan_grace": "0s"}
    )

    assert collected.code == 0, collected.stderr
    assert segments_of(env, "files/gone.bin") == []
    assert segments_of(env, "files/live.bin") == live_segments  # stale one gone, live kept
    assert env.download("files/live.bin") == live.read_bytes()
