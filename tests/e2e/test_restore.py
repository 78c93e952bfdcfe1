"""`kcsync restore` through the CLI, against both real servers (issue 18).

Each test is one thing a restore must get right: the round trip of a tree kcsync uploaded
(then a sync that sends and reads nothing), the peers' large objects, a kill -9 mid-way,
corrupted objects, hostile names, a planted symlink, and files already in the way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, Env, Result
from tests.e2e.test_interop import rclone, swift_cli
from tests.e2e.test_large import SEG, segments_of
from tests.e2e.test_large_identity import slow_link

pytestmark = pytest.mark.server


def tree(env: Env) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "empty.txt": b"",
        "with space/b c.bin": os.urandom(70_000),
        "사진/큰 파일.bin": os.urandom(6 * SEG + 999),  # an SLO (threshold 1 MiB)
        "deep/er/x.txt": b"x" * 10,
    }
    for i, (rel, data) in enumerate(files.items()):
        path = env.write(rel, data)
        os.utime(path, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_123_456_789 + i))
    return files


def restore(env: Env, to: Path, *args: str) -> Result:
    return env.run("restore", "--to", str(to), *args)


def assert_same_tree(src: Path, dst: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data, rel
        assert (dst / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns, rel
    left = sorted(p.name for p in dst.rglob("*") if p.name.startswith(".kcsync-"))
    assert left == [], left


def test_round_trip_back_up_wipe_restore_verify(env: Env) -> None:
    files = tree(env)
    assert env.run().code == 0
    # What a rerun with nothing to do costs, once the first run's records are out of the
    # files' timestamp tick (the run after it re-reads them once: IndexEntry.racy).
    env.wait_until_settled()
    assert env.run().code == 0
    unchanged = env.run().requests
    out = env.root / "elsewhere"

    elsewhere = restore(env, out)
    assert elsewhere.code == 0, elsewhere.stdout + elsewhere.stderr
    assert_same_tree(env.data, out, files)
    assert "5 restored" in elsewhere.stdout

    # Disaster recovery into the configured folder itself, with the state gone too.
    backup = env.root / "mtimes"
    backup.mkdir()
    (env.data / "사진/큰 파일.bin").rename(backup / "big")
    for p in sorted(env.data.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    for p in sorted(env.state.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    back = restore(env, env.data)
    assert back.code == 0, back.stdout + back.stderr
    assert_same_tree(out, env.data, files)

    # The next sync sends nothing: the index learnt every file. It hashes them once, as
    # their entries were recorded in their own timestamp tick (a write in that tick after
    # the restore would keep the stat: IndexEntry.racy); the sync after that asks nothing
    # more than a rerun with nothing to do (listing, no HEAD of an object), reads no file.
    env.wait_until_settled()
    first = env.run("--once", "--log-level", "debug")
    assert first.code == 0, first.stderr
    assert first.uploaded() == [] and "PUT" not in first.requests
    after = env.run("--once", "--log-level", "debug")
    assert after.code == 0, after.stderr
    assert after.uploaded() == [] and after.named("adopted") == []
    assert after.requests == unchanged, (after.requests, unchanged)
    verify = env.run("verify")
    assert verify.code == 0, verify.stdout
    assert "5 files, 5 as in the bucket" in verify.stdout


def test_restore_is_idempotent_and_keeps_what_differs(env: Env) -> None:
    files = tree(env)
    assert env.run().code == 0
    out = env.root / "out"
    assert restore(env, out).code == 0
    (out / "a.txt").write_bytes(b"local edit")
    (out / "local-only.txt").write_bytes(b"mine")

    dry = restore(env, out, "--dry-run")
    again = restore(env, out)
    kept = (out / "a.txt").read_bytes()
    forced = restore(env, out, "--overwrite")

    assert dry.code == 1 and "kept: a.txt" in dry.stdout, dry.stdout
    assert kept == b"local edit"
    assert again.code == 1, again.stdout
    assert "kept: a.txt: differs from the bucket" in again.stdout
    assert "0 restored" in again.stdout and "4 already there" in again.stdout
    assert forced.code == 0, forced.stdout
    assert (out / "a.txt").read_bytes() == files["a.txt"]
    assert (out / "local-only.txt").read_bytes() == b"mine"  # never deletes


def test_restore_of_rclone_dlo_and_swift_cli_slo(env: Env) -> None:
    src = env.root / "src"
    files = {"dlo.bin": os.urandom(5 * SEG + 77), "small.txt": b"s"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        os.utime(src / rel, ns=(1_500_000_000_987_654_321, 1_500_000_000_987_654_321))
    rclone(env, "copy", "--swift-chunk-size", "256Ki", str(src), f"t:{env.bucket}/files/r")
    assert env.head("files/r/dlo.bin").get("x-object-manifest"), "rclone wrote no DLO"
    slo = env.root / "slo"
    slo.mkdir()
    (slo / "slo.bin").write_bytes(os.urandom(4 * SEG + 5))
    os.utime(slo / "slo.bin", ns=(1_400_000_000_000_001_000, 1_400_000_000_000_001_000))
    swift_cli(
        env, "upload", "--use-slo", "-S", str(SEG), "--object-name", "files/s", env.bucket, "slo"
    )
    out = env.root / "out"

    result = restore(env, out, "--log-level", "debug")

    assert result.code == 0, result.stdout + result.stderr
    for rel, data in files.items():
        assert (out / "r" / rel).read_bytes() == data
        assert (out / "r" / rel).stat().st_mtime_ns == 1_500_000_000_987_654_321
    assert (out / "s/slo.bin").read_bytes() == (slo / "slo.bin").read_bytes()
    assert (out / "s/slo.bin").stat().st_mtime_ns == 1_400_000_000_000_001_000
    checked = {e["object"]: e["checked"] for e in result.named("restored")}
    assert checked["files/r/dlo.bin"] == "segment digests"
    if env.backend.name != "rgw":  # Swift, and Swift behind the KakaoCloud gateway
        assert checked["files/s/slo.bin"] == "segment digests"
    else:  # RGW keeps another tool's SLO manifest to itself, and the log says so
        unverified = result.named("restored-unverified")
        assert [e["object"] for e in unverified] == ["files/s/slo.bin"]
        assert "checked by size only" in result.stdout


def test_kill_9_mid_restore_then_rerun_fetches_only_the_rest(env: Env) -> None:
    data = os.urandom(16 * SEG)
    env.write("big.bin", data)
    assert env.run().code == 0
    out = env.root / "out"
    out.mkdir()

    with slow_link(env, delay=0.3) as auth:
        env.configure(auth=auth, workers=2)
        proc = subprocess.Popen(
            [sys.executable, "-m", "kcsync.cli", "-c", str(env.config_path), "restore",
             "--to", str(out)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while journal_pieces(out) < 3:
                assert proc.poll() is None, "finished before it could be killed"
                assert time.monotonic() < deadline, "no piece was journalled"
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    assert not (out / "big.bin").exists()  # nothing partial under the real name
    kept = journal_pieces(out)
    rerun = restore(env, out)

    assert rerun.code == 0, rerun.stdout + rerun.stderr
    assert (out / "big.bin").read_bytes() == data
    assert [p.name for p in out.iterdir()] == ["big.bin"]
    resumed = rerun.named("restore: resuming")
    assert resumed and resumed[0]["bytes_kept"] >= kept * SEG
    # One GET per piece still missing (16 pieces of one segment), /info, the listing (a
    # page and the empty page that ends it), and on Swift the stored manifest.
    assert rerun.requests["GET"] <= 16 - kept + 4, rerun.requests


def journal_pieces(out: Path) -> int:
    for p in out.glob(".kcsync-*.journal.part"):
        lines = p.read_text().splitlines()[1:]
        return sum(1 for line in lines if line.endswith(" ."))
    return 0


def test_corrupted_objects_are_detected_and_reported(env: Env) -> None:
    env.write("plain.txt", b"the original")
    big = os.urandom(6 * SEG)
    env.write("big.bin", big)
    env.write("fine.txt", b"fine")
    assert env.run().code == 0
    # Bytes replaced behind kcsync's back: the plain object keeps kcsync's recorded MD5
    # and mtime, one segment of the SLO gets other bytes of the same size.
    head = env.head("files/plain.txt")
    meta = {k: v for k, v in head.items() if k.startswith("x-object-meta-")}
    env.conn.put_object(env.bucket, "files/plain.txt", b"the tampered", headers=meta)
    victim = segments_of(env, "files/big.bin")[2]
    env.conn.put_object(f"{env.bucket}_segments", victim, os.urandom(SEG))
    out = env.root / "out"

    result = restore(env, out)

    assert result.code == 1, result.stdout
    assert "failed: files/plain.txt: MD5" in result.stdout, result.stdout
    assert "failed: files/big.bin:" in result.stdout, result.stdout
    assert (out / "fine.txt").read_bytes() == b"fine"
    assert not (out / "plain.txt").exists() and not (out / "big.bin").exists()


HOSTILE = {
    "files/../escape.txt": "'..' path component",
    "files/a/../../escape2.txt": "'..' path component",
    "files/./dot.txt": "'.' path component",
    "files//etc/passwd": "absolute name",
    "files/double//slash.txt": "empty path component",
    "files/ctl\x01char.txt": "control character",
    "files/tab\there.txt": "control character",
    "files/" + "n" * 300 + ".txt": "a path component is 304 bytes",
    "files/clash": "also a directory in the bucket (clash/inside.txt)",
    "files/.kcsync-0123456789abcdef01234567.part": "named like kcsync's own temporary",
}


def test_hostile_names_are_refused_and_the_rest_goes_on(env: Env) -> None:
    env.conn.put_container(env.bucket)
    for name in [*HOSTILE, "files/clash/inside.txt", "files/ok.txt"]:
        env.conn.put_object(env.bucket, name, name.encode("utf-8", "replace"))
    listed = set(env.names())
    out = env.root / "box" / "out"

    result = restore(env, out)

    assert result.code == 1, result.stdout + result.stderr
    for name, why in HOSTILE.items():
        if name not in listed:  # the server itself refused or normalised the name
            continue
        line = next(
            (ln for ln in result.stdout.splitlines() if ln.startswith(f"refused: {name}:")), ""
        )
        assert why in line, (name, result.stdout)
    assert (out / "ok.txt").read_bytes() == b"files/ok.txt"
    assert (out / "clash" / "inside.txt").is_file()
    box = sorted(str(p.relative_to(env.root / "box")) for p in (env.root / "box").rglob("*"))
    # The HTTP client resolves "./" in a URL before it is sent: that one arrives plain.
    plain = ["out/dot.txt"] if "files/dot.txt" in listed else []
    assert box == sorted(["out", "out/clash", "out/clash/inside.txt", "out/ok.txt", *plain]), box
    assert not (env.root / "escape.txt").exists() and not (env.root / "box/escape2.txt").exists()


def test_a_planted_symlink_in_the_directory_is_never_followed(env: Env) -> None:
    env.write("photos/a.jpg", b"jpeg")
    env.write("link.txt", b"object content")
    env.write("ok.txt", b"ok")
    assert env.run().code == 0
    outside = env.root / "etc"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root")
    out = env.root / "out"
    out.mkdir()
    (out / "photos").symlink_to(outside)
    (out / "link.txt").symlink_to(outside / "passwd")

    kept = restore(env, out)
    forced = restore(env, out, "--overwrite")

    assert kept.code == 1, kept.stdout
    assert "failed: files/photos/a.jpg: photos: not a directory" in kept.stdout, kept.stdout
    assert "kept: link.txt: is a symlink" in kept.stdout
    assert (out / "ok.txt").read_bytes() == b"ok"
    assert forced.code == 1  # the directory symlink still stands in the way
    assert not (out / "link.txt").is_symlink()  # the link itself was replaced
    assert (out / "link.txt").read_bytes() == b"object content"
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_bytes() == b"root"


def test_pseudo_directories_become_directories(env: Env) -> None:
    env.conn.put_container(env.bucket)
    env.conn.put_object(env.bucket, "files/empty dir/", b"")
    env.conn.put_object(
        env.bucket, "files/cli dir", b"", headers={"Content-Type": "application/directory"}
    )
    env.conn.put_object(env.bucket, "files/x/y.txt", b"y")
    out = env.root / "out"

    result = restore(env, out)

    assert result.code == 0, result.stdout
    assert (out / "empty dir").is_dir() and (out / "cli dir").is_dir()
    assert (out / "x/y.txt").read_bytes() == b"y"
