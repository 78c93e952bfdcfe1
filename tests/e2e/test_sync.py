"""End-to-end: `kcsync --once` through the CLI against each real backend."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from kcsync import cli, localfs
from tests.e2e.harness import Env, parse_events

pytestmark = pytest.mark.server


def sample_tree(env: Env) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty": b"",
        "dir/b.bin": os.urandom(70_000),
        "dir/sub/c.jpg": os.urandom(3000),
        "a-b/x": b"sorts between a.txt and a/...",
        "space and %?#&+.txt": b"odd characters",
        "사진/여름.txt": "한글".encode(),
        "emoji 🎉.txt": b"party",
    }
    for rel, data in files.items():
        env.write(rel, data)
    return files


def test_first_sync_uploads_every_file_byte_identical_for_swiftclient(env: Env) -> None:
    files = sample_tree(env)

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.uploaded() == sorted(f"files/{rel}" for rel in files)
    assert env.names() == sorted(f"files/{rel}" for rel in files)
    for rel, data in files.items():
        assert env.download(f"files/{rel}") == data, rel
    head = env.head("files/dir/b.bin")
    assert head["x-object-meta-kcsync-md5"] == hashlib.md5(files["dir/b.bin"]).hexdigest()
    mtime = (env.data / "dir/b.bin").stat().st_mtime
    assert abs(float(head["x-object-meta-mtime"]) - mtime) < 1e-5
    assert head["content-type"] == "application/octet-stream"
    assert env.head("files/dir/sub/c.jpg")["content-type"] == "image/jpeg"
    assert "8 uploaded" in result.stdout


def test_rerun_without_changes_reads_no_file_and_sends_only_listings(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_tree(env)
    env.write("big.bin", os.urandom(1_300_000))  # an SLO, whose listing entry differs
    env.wait_until_settled()  # else the first run's records are racy and get re-read
    assert env.run().code == 0
    opened: list[str] = []
    real_open = localfs.open_file

    def counting_open(entry: localfs.LocalEntry):  # type: ignore[no-untyped-def]
        opened.append(entry.path)
        return real_open(entry)

    monkeypatch.setattr(localfs, "open_file", counting_open)
    env.configure()
    capsys.readouterr()

    code = cli.main(["-c", str(env.config_path), "--once", "--log-format", "json"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert opened == []
    (finished,) = [e for e in parse_events(captured.err) if e.get("event") == "run finished"]
    by_method = finished["by_method"]
    # auth + /info + one listing page (+ the empty page that ends it); one container HEAD.
    assert by_method.get("PUT", 0) == 0 and by_method.get("DELETE", 0) == 0
    assert by_method.get("HEAD", 0) == 1
    assert "9 unchanged" in captured.out


def test_edit_uploads_only_the_changed_file(env: Env) -> None:
    sample_tree(env)
    assert env.run().code == 0
    env.write("dir/b.bin", b"new content")
    os.utime(env.data / "a.txt")  # touched, same content: re-hashed, not re-sent

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.uploaded() == ["files/dir/b.bin"]
    assert env.download("files/dir/b.bin") == b"new content"
    assert env.run().uploaded() == []


def test_mirror_mode_deletes_objects_of_removed_files(env: Env) -> None:
    sample_tree(env)
    assert env.run().code == 0
    (env.data / "a.txt").unlink()
    (env.data / "dir/sub/c.jpg").unlink()

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.deleted() == ["files/a.txt", "files/dir/sub/c.jpg"]
    assert "files/a.txt" not in env.names()
    assert "files/dir/b.bin" in env.names()


def test_keep_mode_never_deletes(env: Env) -> None:
    sample_tree(env)
    assert env.run().code == 0
    (env.data / "a.txt").unlink()

    result = env.run(delete={"mode": "keep"})

    assert result.code == 0, result.stderr
    assert result.deleted() == []
    assert env.download("files/a.txt") == b"alpha\n"


def test_objects_outside_the_prefix_are_never_touched(env: Env) -> None:
    env.conn.put_container(env.bucket)
    env.conn.put_object(env.bucket, "other/keep.txt", b"not ours")
    env.write("a.txt", b"a")

    result = env.run()

    assert result.code == 0, result.stderr
    assert env.names() == ["files/a.txt", "other/keep.txt"]


def test_excluded_names_are_neither_uploaded_nor_deleted(env: Env) -> None:
    env.write("keep.txt", b"k")
    env.write("upload.part", b"half")
    env.write("cache/big.tmp", b"t")
    env.write("cache/x.txt", b"x")
    env.conn.put_container(env.bucket)
    env.conn.put_object(env.bucket, "files/cache/old.txt", b"remote only, excluded dir")
    folders = [{"path": str(env.data), "prefix": "files/", "exclude": ["cache"]}]

    result = env.run(folders=folders)

    assert result.code == 0, result.stderr
    assert env.names() == ["files/cache/old.txt", "files/keep.txt"]


def test_dry_run_prints_the_plan_and_changes_nothing(env: Env) -> None:
    sample_tree(env)
    assert env.run().code == 0
    env.write("new.txt", b"n")
    (env.data / "a.txt").unlink()
    before = env.names()

    result = env.run("--once", "--dry-run")

    assert result.code == 0, result.stderr
    assert "would upload: files/new.txt (new file)" in result.stdout
    assert "would delete: files/a.txt (file removed)" in result.stdout
    assert env.names() == before
    assert env.run().uploaded() == ["files/new.txt"]


def test_dry_run_on_a_missing_bucket_creates_nothing(env: Env) -> None:
    env.write("a.txt", b"a")

    result = env.run("--once", "--dry-run")

    assert result.code == 0, result.stderr
    assert "would upload: files/a.txt" in result.stdout
    assert env.bucket not in [c["name"] for c in env.conn.get_account()[1]]


def test_paging_covers_more_than_one_listing_page(env: Env) -> None:
    # Both servers cap a page at 1000 (RGW silently), so 1,050 names take two pages.
    for i in range(1050):
        env.write(f"n/{i:05d}", b"%d" % i)

    first = env.run(workers=8)
    second = env.run()

    assert first.code == 0, first.stderr
    assert len(first.uploaded()) == 1050
    assert len(env.names()) == 1050
    assert second.code == 0 and second.uploaded() == []
    assert second.requests.get("GET", 0) >= 3  # auth/info aside, several listing pages


def test_lost_state_is_rebuilt_without_uploading_again(env: Env) -> None:
    sample_tree(env)
    env.write("big.bin", os.urandom(1_500_000))
    assert env.run().code == 0
    shutil.rmtree(env.state)
    env.wait_until_settled()  # so the rebuilt records are trusted by the run after

    rebuilt = env.run("--once", "--log-level", "debug")  # per-file "adopted" lines
    after = env.run()

    assert rebuilt.code == 0, rebuilt.stderr
    assert rebuilt.uploaded() == []
    assert len(rebuilt.named("adopted")) == 9
    assert "9 already present" in rebuilt.stdout
    # Only the manifest (and the empty object) need a HEAD: plain listings decide the rest.
    assert rebuilt.requests.get("HEAD", 0) <= 1 + 2
    assert after.requests.get("HEAD", 0) == 1 and after.uploaded() == []
    reasons = {e["object"]: e["reason"] for e in rebuilt.named("adopted")}
    assert reasons["files/big.bin"] == "same content (kcsync segment digest)"


def test_lost_state_and_a_rewritten_large_file_of_the_same_size_and_mtime(env: Env) -> None:
    """Only the content tells: the segment digest must be recomputed from the file."""
    env.write("keep.txt", b"k")
    path = env.write("big.bin", os.urandom(1_500_000))
    assert env.run().code == 0
    stat = path.stat()
    shutil.rmtree(env.state)
    path.write_bytes(os.urandom(1_500_000))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.uploaded() == ["files/big.bin"]
    assert env.download("files/big.bin") == path.read_bytes()


def test_an_overwritten_remote_object_is_restored(env: Env) -> None:
    env.write("a.txt", b"mine")
    assert env.run().code == 0
    env.conn.put_object(env.bucket, "files/a.txt", b"someone else's")

    result = env.run()

    assert result.uploaded() == ["files/a.txt"]
    assert env.download("files/a.txt") == b"mine"


def test_a_deleted_remote_object_is_uploaded_again(env: Env) -> None:
    env.write("a.txt", b"mine")
    assert env.run().code == 0
    env.conn.delete_object(env.bucket, "files/a.txt")

    assert env.run().uploaded() == ["files/a.txt"]
    assert env.download("files/a.txt") == b"mine"


def test_two_folders_with_their_own_prefixes(env: Env, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_bytes(b"o")
    env.write("a.txt", b"a")
    folders = [
        {"path": str(env.data), "prefix": "one"},
        {"path": str(other), "prefix": "two/"},
    ]

    result = env.run(folders=folders)

    assert result.code == 0, result.stderr
    assert env.names() == ["one/a.txt", "two/o.txt"]
