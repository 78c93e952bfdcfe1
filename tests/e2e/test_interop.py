"""Interop with the peers users switch from: python-swiftclient's `swift` CLI and rclone.

Trees they uploaded must be recognised as in sync (nothing uploaded again), and what kcsync
uploads must read back byte-identical through them.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Env

pytestmark = pytest.mark.server
SEG = 256 * 1024


def mixed_tree(env: Env) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "dir/b.bin": os.urandom(50_000),
        "dir/큰 파일.bin": os.urandom(3 * SEG + 100),  # above kcsync's threshold too
        "big.bin": os.urandom(5 * SEG),
    }
    for rel, data in files.items():
        env.write(rel, data)
    return files


def swift_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    b = env.backend
    swift = Path(sys.executable).with_name("swift")
    cmd = [str(swift) if swift.exists() else "swift"]
    return subprocess.run(
        [*cmd, "-A", b.auth_url, "-U", b.user, "-K", b.key, *args],
        capture_output=True,
        text=True,
        cwd=env.root,
        timeout=300,
        check=True,
    )


def rclone(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    b = env.backend
    remote_env = {
        "RCLONE_CONFIG_T_TYPE": "swift",
        "RCLONE_CONFIG_T_USER": b.user,
        "RCLONE_CONFIG_T_KEY": b.key,
        "RCLONE_CONFIG_T_AUTH": b.auth_url,
        "RCLONE_CONFIG_T_AUTH_VERSION": "1",
    }
    return subprocess.run(
        ["rclone", "--config", "/dev/null", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **remote_env},
        timeout=300,
        check=True,
    )


def test_tree_uploaded_by_swift_cli_with_slo_is_already_in_sync(env: Env) -> None:
    files = mixed_tree(env)
    swift_cli(
        env, "upload", "--use-slo", "-S", str(SEG), "--object-name", "files", env.bucket, "data"
    )
    assert sorted(env.names()) == sorted(f"files/{r}" for r in files)
    env.wait_until_settled()  # so the adopted records are trusted by the second run

    first = env.run("--once", "--log-level", "debug")  # per-file "adopted" lines
    second = env.run()

    assert first.code == 0, first.stderr
    assert first.uploaded() == []
    assert len(first.named("adopted")) + len(first.named("adopted-unverified")) == 4
    if env.backend.name == "rgw":
        # RGW keeps SLO manifests to itself: size and mtime are all that can be compared,
        # and the log says so instead of re-uploading blindly.
        assert len(first.named("adopted-unverified")) == 2
    else:
        assert first.named("adopted-unverified") == []
    assert second.uploaded() == [] and second.requests.get("HEAD", 0) == 1


def test_swift_cli_slo_with_different_content_is_replaced(env: Env) -> None:
    env.write("big.bin", os.urandom(5 * SEG))
    swift_cli(
        env, "upload", "--use-slo", "-S", str(SEG), "--object-name", "files", env.bucket, "data"
    )
    new = os.urandom(5 * SEG)
    path = env.write("big.bin", new)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))

    result = env.run()

    assert result.uploaded() == ["files/big.bin"]
    assert env.download("files/big.bin") == new


def test_objects_uploaded_by_kcsync_read_back_through_the_swift_cli(env: Env) -> None:
    files = mixed_tree(env)
    assert env.run().code == 0
    out = env.root / "restore"

    swift_cli(env, "download", env.bucket, "-D", str(out), "--prefix", "files/")

    for rel, data in files.items():
        assert (out / "files" / rel).read_bytes() == data, rel


def test_tree_uploaded_by_rclone_is_already_in_sync_and_kcsync_objects_read_back(
    env: Env,
) -> None:
    files = {"a.txt": b"alpha", "dir/b.bin": os.urandom(80_000), "c d.txt": b"space"}
    for rel, data in files.items():
        env.write(rel, data)
    rclone(env, "copy", str(env.data), f"t:{env.bucket}/files")

    result = env.run("--once", "--log-level", "debug")  # per-file "adopted" lines

    assert result.code == 0, result.stderr
    assert result.uploaded() == []
    assert len(result.named("adopted")) == 3

    # And the other way: a kcsync upload is in sync for rclone too (same nanosecond mtime:
    # nothing to transfer, no metadata rewritten), and reads back byte-identical.
    env.write("dir/fresh.txt", b"fresh")
    assert env.run().uploaded() == ["files/dir/fresh.txt"]
    check = rclone(env, "sync", "-v", str(env.data), f"t:{env.bucket}/files")
    assert "Updated modification time" not in check.stderr, check.stderr
    assert "Copied" not in check.stderr, check.stderr
    env.write("big.bin", os.urandom(5 * SEG))
    env.write("dir/new.txt", b"new")
    assert env.run().uploaded() == ["files/big.bin", "files/dir/new.txt"]
    out = env.root / "rclone-restore"
    rclone(env, "copy", f"t:{env.bucket}/files", str(out))
    cmp = filecmp.dircmp(env.data, out)
    assert not cmp.left_only and not cmp.right_only
    for rel in ("big.bin", "dir/new.txt", "a.txt", "dir/b.bin"):
        assert (out / rel).read_bytes() == (env.data / rel).read_bytes(), rel
    shutil.rmtree(out)
