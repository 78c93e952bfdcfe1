"""`kcsync verify` through the CLI, against both real servers (issue 18): each kind of
difference is caught, nothing is changed, and --deep catches what the cheap pass cannot."""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.harness import Env
from tests.e2e.test_large import SEG, segments_of

pytestmark = pytest.mark.server


def synced(env: Env) -> bytes:
    env.write("same.txt", b"same")
    env.write("changed-remote.txt", b"original")
    env.write("gone-remote.txt", b"soon gone")
    big = os.urandom(5 * SEG)
    env.write("big.bin", big)
    assert env.run().code == 0
    return big


def test_verify_reports_each_kind_of_difference_and_changes_nothing(env: Env) -> None:
    synced(env)
    clean = env.run("verify")
    assert clean.code == 0, clean.stdout
    assert "4 files, 4 as in the bucket" in clean.stdout
    env.write("new-local.txt", b"not uploaded")  # missing in the bucket
    env.conn.put_object(env.bucket, "files/extra.txt", b"only remote")  # extra
    env.conn.put_object(env.bucket, "files/changed-remote.txt", b"tampered")  # differs
    env.conn.delete_object(env.bucket, "files/gone-remote.txt")  # missing
    os.mkfifo(env.data / "pipe")  # not comparable: not a regular file
    before = sorted(env.names())

    text = env.run("verify")
    machine = env.run("verify", "--json")

    assert text.code == 1 and machine.code == 1
    lines = set(text.stdout.splitlines())
    assert "missing in the bucket: files/new-local.txt: not in the bucket" in lines
    assert "missing in the bucket: files/gone-remote.txt: not in the bucket" in lines
    assert "extra in the bucket: files/extra.txt: no such local file" in lines
    assert any(ln.startswith("content differs: files/changed-remote.txt: ") for ln in lines)
    assert any(ln.startswith("not comparable: files/pipe: not a regular file") for ln in lines)
    report = json.loads(machine.stdout)
    assert report["ok"] is False
    assert report["counts"] == {"missing": 2, "extra": 1, "differs": 1, "not_comparable": 1}
    kinds = {d["key"]: d["kind"] for d in report["differences"]}
    assert kinds["files/changed-remote.txt"] == "differs"
    assert sorted(env.names()) == before  # nothing uploaded, nothing deleted
    assert not (env.data / "extra.txt").exists()


def test_deep_catches_a_segment_replaced_with_same_size_and_mtime(env: Env) -> None:
    synced(env)
    # Another segment of the same size under the live manifest: the object's listing
    # entry, size, mtime and Etag are all unchanged, only the bytes are not.
    victim = segments_of(env, "files/big.bin")[1]
    env.conn.put_object(f"{env.bucket}_segments", victim, os.urandom(SEG))

    cheap = env.run("verify")
    deep = env.run("verify", "--deep")

    assert cheap.code == 0, cheap.stdout  # the index and the listing vouch: not read
    assert deep.code == 1, deep.stdout
    assert f"content differs: files/big.bin: segment 1 ({victim}) holds other bytes" in (
        deep.stdout
    )


def test_deep_rereads_files_the_index_vouches_for(env: Env) -> None:
    synced(env)
    path = env.data / "same.txt"
    st = path.stat()
    path.write_bytes(b"SAME")  # same size, mtime put back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    deep = env.run("verify", "--deep")

    assert deep.code == 1
    assert "content differs: files/same.txt: content differs" in deep.stdout
