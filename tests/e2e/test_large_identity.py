"""Large objects: each upload's identity is recorded, never derived (issue 16 §1).

Every test here is an adversary's move against an SLO: another tool's metadata change, a
same-size same-mtime rewrite killed mid-upload, a second config sharing the segments
container, a long name, a tampered resumable segment, and kill -9 at random points.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.harness import REPO, Env
from tests.e2e.test_interop import rclone
from tests.e2e.test_large import (
    SEG,
    all_segments,
    replace_same_size_same_mtime,
    segments_of,
)
from tests.faults import FaultProxy

pytestmark = pytest.mark.server
NO_GRACE = {"threshold": "1MiB", "segment_size": "256KiB", "orphan_grace": "0s"}


@contextlib.contextmanager
def slow_link(env: Env, delay: float) -> Iterator[dict[str, str]]:
    """An auth section that reaches the server through a proxy delaying every request."""
    token, storage_url = env.backend.token()
    origin = urlunsplit((*urlsplit(storage_url)[:2], "", "", ""))
    with FaultProxy(origin, delay=delay) as proxy:
        yield {"method": "token", "token": token, "storage_url": proxy.proxied(storage_url)}


def start(env: Env, **overrides: object) -> subprocess.Popen[bytes]:
    env.configure(**overrides)
    cmd = [sys.executable, "-m", "kcsync.cli", "-c", str(env.config_path), "--once"]
    return subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def set_mtime_keeping_metadata(env: Env, name: str, mtime: str) -> None:
    """What rclone's set-modtime does on Swift: POST every metadata value again with a new
    X-Object-Meta-Mtime (a POST replaces all user metadata)."""
    head = env.head(name)
    meta = {k: v for k, v in head.items() if k.startswith("x-object-meta-")}
    env.conn.post_object(env.bucket, name, {**meta, "x-object-meta-mtime": mtime})


@pytest.mark.parametrize("tool", ["set-modtime", "rclone-touch", "swift-post"])
def test_metadata_changed_by_another_tool_never_deletes_live_segments(env: Env, tool: str) -> None:
    env.write("keep.txt", b"k")
    data = os.urandom(5 * SEG)
    env.write("big.bin", data)
    assert env.run().code == 0
    live = segments_of(env, "files/big.bin")
    before = env.head("files/big.bin")["x-object-meta-mtime"]
    if tool == "set-modtime":
        set_mtime_keeping_metadata(env, "files/big.bin", "1234567890.000000001")
    elif tool == "rclone-touch":
        rclone(env, "touch", "-C", "-t", "2001-02-03T04:05:06", f"t:{env.bucket}/files/big.bin")
    else:  # `swift post -m`: every other metadata value of ours is gone
        env.conn.post_object(env.bucket, "files/big.bin", {"x-object-meta-mtime": "1.5"})
    assert env.head("files/big.bin")["x-object-meta-mtime"] != before

    for _ in range(2):  # the first run looks again, the second trusts what it recorded
        result = env.run(large_objects=NO_GRACE)
        assert result.code == 0, result.stderr
        assert env.download("files/big.bin") == data
        assert sorted(all_segments(env)) == sorted(live)
    assert not result.uploaded()


def test_same_size_same_mtime_rewrite_killed_mid_upload_leaves_the_old_object(env: Env) -> None:
    env.write("keep.txt", b"k")
    path = env.write("disk.img", os.urandom(6 * SEG))
    assert env.run().code == 0
    old = path.read_bytes()
    old_segments = all_segments(env)
    replace_same_size_same_mtime(path)  # `cp -p` of another version

    with slow_link(env, delay=0.2) as auth:
        proc = start(env, workers=1, auth=auth)
        try:
            deadline = time.monotonic() + 60
            while len(all_segments(env)) < len(old_segments) + 2:
                assert proc.poll() is None, "finished before it could be killed"
                assert time.monotonic() < deadline, "no new segments appeared"
                time.sleep(0.01)
        finally:
            kill(proc)

    # Before its manifest, a new upload has written nothing the live object reads.
    assert set(old_segments) <= set(all_segments(env))
    assert env.download("files/disk.img") == old
    result = env.run()
    assert result.code == 0, result.stderr
    assert env.download("files/disk.img") == path.read_bytes() != old
    assert all_segments(env) == segments_of(env, "files/disk.img")  # the old ones went


def test_two_configs_sharing_a_segments_bucket_keep_each_others_segments(
    env: Env, tmp_path: Path
) -> None:
    (tmp_path / "second").mkdir()
    other = Env(tmp_path / "second", env.backend)
    shared = f"{env.bucket}-shared-segs"
    large = {**NO_GRACE, "segments_bucket": shared}
    for e in (env, other):
        e.settings["large_objects"] = large
        e.write("keep.txt", b"k")
        e.write("big.bin", os.urandom(5 * SEG))  # the same object name in both buckets
        assert e.run().code == 0
    assert len(env.names(shared)) == 10
    # Both rewrite their file (their old groups retire and go), then collect with no grace.
    for e in (env, other, env, other):
        e.write("big.bin", os.urandom(5 * SEG + 1))
        assert e.run().code == 0

    for e in (env, other):
        assert e.download("files/big.bin") == (e.data / "big.bin").read_bytes()
    assert len(env.names(shared)) == 12


def test_name_near_the_server_limit_uploads_as_slo(env: Env) -> None:
    info = env.conn.get_capabilities()["swift"]
    limit = int(info.get("max_object_name_length", info.get("max_object_name_size", 1024)))
    if env.backend.name == "kakao":
        # What kcsync sees is the gateway's /info (KakaoCloud's 396), not the peers' Swift's.
        from tests.servers.gateway import INFO

        limit = int(INFO["swift"]["max_object_name_length"])
    # Nested directories: one file name may have at most 255 bytes on this filesystem.
    budget = limit - len("files/")
    parts = []
    while budget > 0:
        take = min(200, budget - 1) if budget > 201 else budget
        parts.append("d" * take)
        budget -= take + 1
    rel = "/".join(parts)
    assert len(("files/" + rel).encode()) <= limit
    data = os.urandom(5 * SEG)
    env.write(rel, data)

    result = env.run()

    assert result.code == 0, result.stdout + result.stderr
    assert env.download("files/" + rel) == data
    assert env.head("files/" + rel)["x-static-large-object"].lower() == "true"


def test_resumed_upload_never_writes_over_a_stored_segment(env: Env) -> None:
    env.write("keep.txt", b"k")
    data = os.urandom(12 * SEG)
    env.write("big.bin", data)
    with slow_link(env, delay=0.1) as auth:
        proc = start(env, workers=1, auth=auth)
        try:
            deadline = time.monotonic() + 60
            while len(all_segments(env)) < 3:
                assert proc.poll() is None, "finished before it could be killed"
                assert time.monotonic() < deadline, "no segments appeared"
                time.sleep(0.01)
        finally:
            kill(proc)
    # Another writer (or bit rot) changes a stored segment of the unfinished upload.
    segs = f"{env.bucket}_segments"
    first = sorted(all_segments(env))[0]
    env.conn.put_object(segs, first, b"\0" * SEG)

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.named("resumed upload does not match the file; starting afresh")
    assert env.download("files/big.bin") == data
    assert first not in all_segments(env)  # the spoiled group was retired and deleted


def test_reupload_killed_at_random_points_always_reads_old_or_new(env: Env) -> None:
    """kill -9 anywhere in a large re-upload: the object is always one whole version."""
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed_note = f"seed {rng.random()}"
    env.write("keep.txt", b"k")
    path = env.write("big.bin", os.urandom(6 * SEG))
    assert env.run().code == 0
    live = path.read_bytes()
    kills = 0
    with slow_link(env, delay=0.03) as auth:
        for round_ in range(6):
            if round_ % 2:
                replace_same_size_same_mtime(path)
            else:
                path.write_bytes(os.urandom(6 * SEG))
            new = path.read_bytes()
            proc = start(env, workers=2, auth=auth)
            # The whole run takes about a second here: kills land before, among and
            # after the segments and the manifest.
            deadline = time.monotonic() + rng.uniform(0.3, 2.0)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            if proc.poll() is None:
                kill(proc)
                kills += 1
            got = env.download("files/big.bin")
            assert got in (live, new), f"a mix of versions after round {round_} ({seed_note})"
            live = got
            # A rerun to the end: the newest version, whatever the kill left.
            result = env.run()
            assert result.code == 0, result.stderr
            assert env.download("files/big.bin") == new
            live = new
    assert kills >= 2, f"the kills never landed mid-run ({seed_note})"
    # A kill between a manifest and the deletes after it leaves retired groups: the
    # collector takes them once they are older than the grace period.
    assert env.run(large_objects=NO_GRACE).code == 0
    assert all_segments(env) == segments_of(env, "files/big.bin")


def test_a_large_file_whose_size_changed_is_not_hashed_before_it_is_sent(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HEAD already says the content differs: a whole-file pass first would read a
    many-GB file twice."""
    from kcsync import apply
    from kcsync.apply import CHECK, job_payload
    from kcsync.config import load_config
    from kcsync.daemon import Runtime
    from kcsync.progress import Stats

    path = env.write("big.bin", os.urandom(5 * SEG))
    assert env.run().code == 0
    listed = {e["name"]: e for e in env.conn.get_container(env.bucket)[1]}["files/big.bin"]
    with path.open("ab") as f:
        f.write(os.urandom(SEG))

    def no_hashing(*args: object, **kwargs: object) -> None:
        raise AssertionError("hashed the whole file before sending it")

    monkeypatch.setattr(apply, "hash_file", no_hashing)
    rt = Runtime(load_config(env.configure()), Stats(), once=True)
    try:
        from kcsync.swift.client import parse_listing_entry

        remote = parse_listing_entry(listed)
        outcome = rt.applier.run(
            "files/big.bin", CHECK, job_payload(path=str(path), remote=remote, reason="changed")
        )
    finally:
        rt.close()
    assert outcome.action == "uploaded"
    assert env.download("files/big.bin") == path.read_bytes()


def test_an_slo_of_the_layout_before_upload_ids_is_recognised_and_replaced_cleanly(
    env: Env,
) -> None:
    """Written as kcsync wrote large files before upload ids (segments named after the
    file's mtime and size, no upload id metadata): no re-upload after the upgrade, the
    segments stay while their manifest is live, and go once it has been replaced."""
    import hashlib
    import json

    from kcsync.swift.slo import format_mtime_meta, legacy_segment_prefix, slo_etag

    env.write("keep.txt", b"k")
    path = env.write("big.bin", os.urandom(5 * SEG))
    data, st = path.read_bytes(), path.stat()
    segs = f"{env.bucket}_segments"
    env.conn.put_container(env.bucket)
    env.conn.put_container(segs)
    prefix = legacy_segment_prefix("files/big.bin", st.st_mtime_ns, len(data), SEG)
    parts, manifest = [], []
    for i in range(5):
        chunk = data[i * SEG : (i + 1) * SEG]
        env.conn.put_object(segs, f"{prefix}{i:08d}", chunk)
        parts.append(hashlib.md5(chunk).hexdigest())
        manifest.append({"path": f"/{segs}/{prefix}{i:08d}", "etag": parts[-1], "size_bytes": SEG})
    env.conn.put_object(
        env.bucket,
        "files/big.bin",
        json.dumps(manifest),
        query_string="multipart-manifest=put",
        headers={
            "X-Object-Meta-Mtime": format_mtime_meta(st.st_mtime_ns),
            "X-Object-Meta-Kcsync-Segment-Size": str(SEG),
            "X-Object-Meta-Kcsync-Slo-Etag": slo_etag(parts),
        },
    )
    legacy = sorted(all_segments(env))

    upgraded = env.run(large_objects=NO_GRACE)

    assert upgraded.code == 0, upgraded.stderr
    assert upgraded.uploaded() == ["files/keep.txt"]  # the large file is recognised
    assert sorted(all_segments(env)) == legacy  # and its live segments stay
    assert env.run(large_objects=NO_GRACE).uploaded() == []
    assert sorted(all_segments(env)) == legacy

    path.write_bytes(os.urandom(5 * SEG + 3))
    replaced = env.run(large_objects=NO_GRACE)

    assert replaced.uploaded() == ["files/big.bin"]
    assert env.download("files/big.bin") == path.read_bytes()
    assert all_segments(env) == segments_of(env, "files/big.bin")  # the old layout's went
