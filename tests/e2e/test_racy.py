"""End-to-end: a stat is trusted only when it can vouch for the content (issue 16 §2).

Run on an ext4 made with 128-byte inodes, whose timestamps are whole seconds: a rewrite of
the same size within the second of the upload keeps size, mtime, ctime and inode.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcsync import cli
from kcsync.model import LocalEntry
from kcsync.transfer import Transfer, Uploaded
from tests.conftest import Backend
from tests.e2e.harness import Env, parse_events

# Timestamps of a filesystem against kcsync's index: the same on every server, so not a
# third time behind the gateway, whose slower runs (under the parallel suite) left no cycle
# inside one timestamp second.
pytestmark = [pytest.mark.server, pytest.mark.backends("swift", "rgw")]

ATTEMPTS = 8  # write/run/rewrite cycles before giving up on staying within one second


@pytest.fixture
def coarse_env(tmp_path: Path, backend: Backend) -> Iterator[Env]:
    """An Env whose folder lives on a loop-mounted ext4 with 1-second timestamps."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-I", "128", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        env = Env(tmp_path, backend)
        env.data.rmdir()
        env.data = mnt / "data"
        env.data.mkdir()
        env.settings["folders"] = [{"path": str(env.data), "prefix": "files/"}]
        yield env
    finally:
        # Even when the test failed: a leftover mount would pin the loop device and the
        # tmp dir. -l detaches at once should a straggling process still hold a file.
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def stat_of(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def wait_for_second_start(limit: float = 0.2, timeout: float = 5.0) -> None:
    """Until the wall clock is early in a second: the cycle below must fit inside one."""
    deadline = time.monotonic() + timeout
    while time.time() % 1.0 > limit:
        assert time.monotonic() < deadline, "the clock never reached the start of a second"
        time.sleep(0.005)  # a poll step, bounded by the deadline above


def test_same_size_rewrite_in_the_upload_second_is_uploaded_and_reruns_stay_cheap(
    coarse_env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = coarse_env
    path = env.data / "note.txt"
    env.configure()
    old = new = b""
    for attempt in range(ATTEMPTS):
        # In-process, so one run fits inside a second (no interpreter start-up); it is
        # the same CLI entry point the subprocess runs use.
        wait_for_second_start()
        old = f"version {attempt}: old".encode()
        new = f"version {attempt}: NEW".encode()
        assert len(old) == len(new)
        path.write_bytes(old)
        before = stat_of(path)
        code = cli.main(["-c", str(env.config_path), "--once", "--log-format", "json"])
        assert code == 0, capsys.readouterr().err
        with path.open("r+b") as f:  # in place: the inode stays
            f.write(new)
        if stat_of(path) == before:
            break
    else:
        pytest.fail(f"no write/run/rewrite cycle stayed within one second in {ATTEMPTS}")
    assert env.download("files/note.txt") == old  # uploaded before the rewrite
    assert stat_of(path) == before  # a stat alone cannot tell the rewrite

    rerun = env.run("--once", "--log-level", "debug")

    assert rerun.code == 0, rerun.stderr
    assert env.download("files/note.txt") == new
    assert rerun.uploaded() == ["files/note.txt"]

    # The upload just made is racy too (the file's second is not over by much): the next
    # run hashes the file again, finds it unchanged and sends nothing...
    env.wait_until_settled()
    recheck = env.run("--once", "--log-level", "debug")
    assert recheck.code == 0, recheck.stderr
    assert [e["object"] for e in recheck.named("adopted")] == ["files/note.txt"]
    assert recheck.requests.get("PUT", 0) == 0
    # ...and, re-verified outside the window, the one after reads nothing and sends only
    # listings (and the container HEAD), as a no-change run always did.
    cheap = env.run("--once", "--log-level", "debug")
    assert cheap.code == 0, cheap.stderr
    assert cheap.named("adopted") == [] and cheap.uploaded() == []
    assert cheap.requests.get("PUT", 0) == 0 and cheap.requests.get("HEAD", 0) == 1
    assert "1 unchanged" in cheap.stdout
    assert env.download("files/note.txt") == new


def test_file_changed_after_its_upload_is_queued_again_in_the_same_run(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env.write("a.bin", b"first content")
    final = b"the content at the end, longer"
    real_put = Transfer.put
    rewrites: list[bool] = []

    def put_then_rewrite(
        self: Transfer, entry: LocalEntry, known_md5: str | None = None
    ) -> Uploaded:
        result = real_put(self, entry, known_md5)
        if not rewrites:
            # The writer strikes after the PUT was verified and before the index records
            # it: the transfer's own checks have all passed.
            path.write_bytes(final)
            rewrites.append(True)
        return result

    monkeypatch.setattr(Transfer, "put", put_then_rewrite)
    env.configure()

    code = cli.main(["-c", str(env.config_path), "--once", "--log-format", "json"])

    err = capsys.readouterr().err
    assert code == 0, err
    assert rewrites == [True]
    assert env.download("files/a.bin") == final
    events = parse_events(err)
    failed = [e for e in events if e.get("event") == "job failed"]
    assert len(failed) == 1 and "changed" in failed[0]["error"] and not failed[0]["dead"]
    # Uploaded twice: the first content (recorded with its own stat), then the final one.
    assert [e["object"] for e in events if e.get("event") == "uploaded"] == ["files/a.bin"] * 2
