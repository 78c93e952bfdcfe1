"""Large files as SLOs: layout, overwrite, resume, and a file changing while it is read."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from kcsync import localfs, transfer
from kcsync.errors import FileChangedError
from kcsync.model import LocalEntry
from kcsync.store.db import Database
from kcsync.store.segments import SegmentLedger
from kcsync.swift.slo import bucket_tag, group_prefix, slo_etag
from tests.e2e.harness import REPO, Env
from tests.faults import FaultProxy

pytestmark = pytest.mark.server
SEG = 256 * 1024


def all_segments(env: Env) -> list[str]:
    return env.names(f"{env.bucket}_segments")


def segments_of(env: Env, name: str) -> list[str]:
    """The segments the object's own metadata says it references."""
    upload = env.head(name)["x-object-meta-kcsync-upload"]
    prefix = group_prefix(bucket_tag(env.bucket), upload)
    return [s for s in all_segments(env) if s.startswith(prefix)]


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
    assert segments_of(env, "files/big.bin") == all_segments(env)
    assert len(all_segments(env)) == 6
    # Named after the bucket and the upload's own id, never the file's name or stat.
    assert all(s.startswith(f"{env.bucket}/") for s in all_segments(env))
    assert env.names() == ["files/big.bin"]  # segments live in their own container


def test_overwrite_removes_old_segments_and_delete_removes_the_rest(env: Env) -> None:
    env.write("keep.txt", b"so the folder is not empty (the guard would refuse)")
    env.write("big.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    old = segments_of(env, "files/big.bin")
    new = os.urandom(4 * SEG + 7)
    env.write("big.bin", new)

    assert env.run().uploaded() == ["files/big.bin"]

    assert env.download("files/big.bin") == new
    current = segments_of(env, "files/big.bin")
    assert len(old) == 5 and len(current) == 5 and not set(old) & set(current)
    assert all_segments(env) == current  # the old version's went once it was replaced
    (env.data / "big.bin").unlink()
    assert env.run().deleted() == ["files/big.bin"]
    assert all_segments(env) == []


def test_large_file_shrunk_below_threshold_leaves_no_segments(env: Env) -> None:
    env.write("big.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    env.write("big.bin", b"small now")

    assert env.run().uploaded() == ["files/big.bin"]
    assert env.download("files/big.bin") == b"small now"
    assert all_segments(env) == []


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
            while len(all_segments(env)) < 5:
                assert proc.poll() is None, "finished before it could be killed"
                assert time.monotonic() < deadline, "no segments appeared"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    sent_before = len(all_segments(env))
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


def in_process_transfer(env: Env, tmp: Path) -> transfer.Transfer:
    """The uploader itself, in this process, so a test can act between its reads."""
    from kcsync.config import load_config
    from kcsync.daemon import make_remote

    env.conn.put_container(env.bucket)
    config = load_config(env.configure())
    remote = make_remote(config)
    ledger = SegmentLedger(Database(tmp / "ledger.db"), env.bucket, f"{env.bucket}_segments")
    return transfer.Transfer(
        remote.client,
        env.bucket,
        f"{env.bucket}_segments",
        remote.limits,
        ledger,
        segment_size=SEG,
        segment_workers=2,
    )


def entry_of(path: Path, key: str) -> LocalEntry:
    st = path.stat()
    return LocalEntry(key, str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def replace_same_size_same_mtime(path: Path) -> None:
    """What `cp -p` or `rsync -t` of another version does: new bytes, same size and mtime."""
    st = path.stat()
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(os.urandom(st.st_size))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


@pytest.mark.parametrize("change", ["append", "replace-same-size-same-mtime"])
def test_file_changing_while_read_gets_no_manifest(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    path = env.write("grow.bin", os.urandom(6 * SEG))
    xfer = in_process_transfer(env, tmp_path)
    entry = entry_of(path, "files/grow.bin")
    real_open = localfs.open_file
    changed: list[bool] = []

    def open_then_change(e: LocalEntry):  # type: ignore[no-untyped-def]
        handle = real_open(e)
        if not changed:  # another process changes the file while we read it
            changed.append(True)
            if change == "append":
                with open(path, "ab") as f:
                    f.write(b"more")
            else:
                replace_same_size_same_mtime(path)
        return handle

    monkeypatch.setattr(localfs, "open_file", open_then_change)
    try:
        with pytest.raises(FileChangedError):
            xfer.put_slo(entry)
    finally:
        xfer.close()
    assert "files/grow.bin" not in env.names()

    # The next run sends the file as it is now.
    monkeypatch.undo()
    result = env.run()
    assert result.code == 0, result.stderr
    assert env.download("files/grow.bin") == path.read_bytes()


def test_orphaned_segments_are_collected_and_live_and_foreign_ones_kept(env: Env) -> None:
    env.write("keep.txt", b"k")
    live = env.write("live.bin", os.urandom(5 * SEG))
    env.write("gone.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    live_segments = segments_of(env, "files/live.bin")
    gone_segments = segments_of(env, "files/gone.bin")
    # Segments kcsync never recorded: another tool's, or another kcsync's sharing the
    # container. Their names prove nothing, so they are never collected.
    segs = f"{env.bucket}_segments"
    foreign = [f"{env.bucket}/{'ab' * 16}/00000000", "files/live.bin/1000.000000/5/1/00000000"]
    for name in foreign:
        env.conn.put_object(segs, name, b"x")
    # gone.bin's manifest is deleted by another tool (a plain delete leaves the segments),
    # and its file goes too.
    env.conn.delete_object(env.bucket, "files/gone.bin")
    (env.data / "gone.bin").unlink()
    # A touched SLO: same content, new mtime. Its live segments must not look stale.
    os.utime(live, ns=(live.stat().st_atime_ns, live.stat().st_mtime_ns + 10**9))

    kept = env.run()  # the default grace period (1 h) protects recent segments
    assert kept.code == 0, kept.stderr
    assert set(gone_segments) <= set(all_segments(env))

    collected = env.run(
        large_objects={"threshold": "1MiB", "segment_size": "256KiB", "orphan_grace": "0s"}
    )

    assert collected.code == 0, collected.stderr
    assert sorted(all_segments(env)) == sorted(live_segments + foreign)
    assert segments_of(env, "files/live.bin") == live_segments
    assert env.download("files/live.bin") == live.read_bytes()
