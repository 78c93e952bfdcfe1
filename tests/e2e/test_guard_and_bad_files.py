"""The delete guard, and files that cannot be synced: reported, skipped, the rest goes on."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.harness import Env

pytestmark = pytest.mark.server

# Root reads anything; dropping these capabilities makes a mode-000 file unreadable to it,
# as it is to the service user in production.
NO_DAC = (
    (
        "setpriv",
        "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search",
    )
    if os.geteuid() == 0
    else ()
)


def three_files(env: Env) -> None:
    for name in ("a", "b", "c", "d"):
        env.write(f"{name}.txt", name.encode())


def test_guard_refuses_more_deletes_than_the_limit(env: Env) -> None:
    three_files(env)
    assert env.run().code == 0
    for name in ("a", "b", "c"):
        (env.data / f"{name}.txt").unlink()

    refused = env.run(delete={"mode": "mirror", "max_per_run": 2})

    assert refused.code == 3
    assert "3 deletes exceed delete.max_per_run (2)" in refused.stdout
    assert len(env.names()) == 4
    allowed = env.run(delete={"mode": "mirror", "max_per_run": 3})
    assert allowed.code == 0 and allowed.deleted() == ["files/a.txt", "files/b.txt", "files/c.txt"]


def test_guard_refuses_to_empty_the_bucket_when_the_folder_is_empty(env: Env) -> None:
    three_files(env)
    assert env.run().code == 0
    for path in env.data.iterdir():
        path.unlink()

    result = env.run()

    assert result.code == 3
    assert "folder is empty" in result.stdout
    assert len(env.names()) == 4


def test_missing_folder_deletes_nothing_and_fails(env: Env) -> None:
    three_files(env)
    assert env.run().code == 0
    shutil.rmtree(env.data)

    result = env.run()

    assert result.code == 1
    assert "does not exist" in result.stderr
    assert len(env.names()) == 4


def test_bad_files_are_reported_and_skipped_while_the_rest_syncs(env: Env) -> None:
    env.write("good.txt", b"good")
    env.write("secret.txt", b"unreadable").chmod(0o000)
    os.mkfifo(env.data / "pipe")
    fd = os.open(os.fsencode(env.data) + b"/bad-\xff-name.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    (env.data / "escape").symlink_to("/etc/hostname")
    (env.data / "inside").symlink_to(env.data / "good.txt")
    deep = env.data
    for i in range(6):  # 6 x 200 bytes: a name above Swift's and RGW's limit of 1024
        deep = deep / (f"{i}" * 200)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"too long a name")

    result = env.run(prefix=NO_DAC)

    assert result.code == 1, result.stderr
    assert env.names() == ["files/good.txt", "files/inside"]
    assert env.download("files/inside") == b"good"
    skipped = result.stdout
    assert "secret.txt: " in skipped and "Permission denied" in skipped
    assert "ignored: " + str(env.data / "pipe") + ": not a regular file (fifo)" in skipped
    assert "bad-\\xff-name.txt: name is not valid UTF-8" in skipped
    assert "ignored: " + str(env.data / "escape") + ": symlink points outside the folder" in skipped
    assert "the server allows" in skipped
    # The FIFO and the link out of the folder are not files kcsync syncs: listed as
    # ignored; the three that should sync and cannot are what makes the exit code 1.
    assert "3 skipped" in skipped and "2 ignored" in skipped


def test_an_unreadable_file_is_not_deleted_from_the_bucket(env: Env) -> None:
    three_files(env)
    env.write("sub/x.txt", b"x")
    assert env.run().code == 0
    (env.data / "a.txt").chmod(0o000)
    (env.data / "sub").chmod(0o000)

    result = env.run(prefix=NO_DAC)

    assert result.code == 1
    assert result.deleted() == []
    assert "files/a.txt" in env.names() and "files/sub/x.txt" in env.names()
    (env.data / "sub").chmod(0o755)


def test_broken_symlink_is_reported_not_fatal(env: Env) -> None:
    env.write("stay.txt", b"s")
    (env.data / "gone").symlink_to(env.data / "nowhere")

    result = env.run()

    assert result.code == 1
    assert "gone: broken symlink" in result.stdout
    assert env.names() == ["files/stay.txt"]
