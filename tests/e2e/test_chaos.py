"""The daemon against the filesystem's moves and deletes, and the kernel dropping events
(issue 17). Every case runs through the CLI against the real servers, with a proxy in
front that counts the requests, and waits on polls with deadlines.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from kcsync.apply import DELETE, MOVE, SYNC, job_payload
from kcsync.config import load_config
from kcsync.daemon import Runtime
from kcsync.progress import Stats
from tests.conftest import Backend
from tests.e2e.daemon_harness import DaemonProcess, wait_for
from tests.e2e.harness import REPO, Env
from tests.faults import FaultProxy

# The filesystem's moves, deletes and lost events, against the two servers; the kakao
# backend is the same Swift behind a gateway, and these tests are long.
pytestmark = [pytest.mark.server, pytest.mark.backends("swift", "rgw")]


@contextlib.contextmanager
def counted(env: Env) -> Iterator[FaultProxy]:
    """Point the config at the server through a proxy that records every request."""
    token, storage_url = env.backend.token()
    origin = urlunsplit((*urlsplit(storage_url)[:2], "", "", ""))
    with FaultProxy(origin) as proxy:
        env.settings["auth"] = {
            "method": "token",
            "token": token,
            "storage_url": proxy.proxied(storage_url),
        }
        yield proxy


def deletes_per_object(proxy: FaultProxy, env: Env) -> collections.Counter[str]:
    marker = f"/{env.bucket}/"
    return collections.Counter(
        unquote(urlsplit(r.target).path.split(marker, 1)[1])
        for r in proxy.seen
        if r.method == "DELETE" and marker in r.target
    )


def tree(env: Env, top: str, count: int, per_dir: int = 100) -> list[str]:
    names = [f"{top}/{i // per_dir:03d}/{i:05d}.txt" for i in range(count)]
    for name in names:
        env.write(name, name.encode())
    return [f"files/{n}" for n in names]


def status(env: Env) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "status", "--json", "-c", str(env.config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=True,
    )
    return dict(json.loads(out.stdout))


def test_rm_rf_of_3000_files_deletes_each_object_once_under_the_default_limit(env: Env) -> None:
    keep = tree(env, "keep", 5)
    doomed = tree(env, "big", 3000)
    # One storage URL (through the counting proxy) for the first run and the daemon.
    with counted(env) as proxy:
        assert env.run(workers=8).code == 0
        with DaemonProcess(env, workers=8) as daemon:
            daemon.wait_reconciled()
            shutil.rmtree(env.data / "big")
            took = wait_for(lambda: env.names() == keep, "the deletes", timeout=600)
        deletes = deletes_per_object(proxy, env)
    assert set(deletes) == set(doomed) and set(deletes.values()) == {1}, "once each"
    assert not [e for e in daemon.named("job failed") if e.get("dead")]
    assert status(env)["dead_jobs"] == []
    print(f"rm -rf 3000: {sum(deletes.values())} DELETEs, converged in {took:.1f}s")


def test_renaming_a_1000_file_directory_copies_and_deletes_each_once(env: Env) -> None:
    keep = tree(env, "keep", 5)
    old = tree(env, "album", 1000)
    with counted(env) as proxy:
        assert env.run(workers=8).code == 0
        with DaemonProcess(env, workers=8) as daemon:
            daemon.wait_reconciled()
            os.rename(env.data / "album", env.data / "album-2026")
            new = sorted(n.replace("files/album/", "files/album-2026/") for n in old)
            # The deadline only detects a hang: how fast it converges is bench/'s to measure.
            took = wait_for(lambda: env.names() == sorted(keep + new), "the rename", timeout=600)
        deletes = deletes_per_object(proxy, env)
    assert len(daemon.named("copied")) == 1000
    assert not daemon.named("uploaded")
    assert set(deletes) == set(old) and set(deletes.values()) == {1}
    assert status(env)["dead_jobs"] == [] and status(env)["refused_deletes"] == {}
    print(f"rename of 1000: {sum(deletes.values())} DELETEs, converged in {took:.1f}s")


def test_rename_chains_and_directory_swaps_converge_before_any_reconcile(env: Env) -> None:
    env.write("a.jpg", os.urandom(20_000))
    for d, names in (("d1", ("x1", "x2")), ("d2", ("y1", "y2"))):
        for n in names:
            env.write(f"{d}/{n}.bin", os.urandom(5000))
    env.write("p.txt", b"the p file")
    env.write("q.txt", b"the q file, longer")
    assert env.run().code == 0
    with DaemonProcess(env) as daemon:
        daemon.wait_reconciled()
        os.rename(env.data / "a.jpg", env.data / "b.jpg")  # a chain, all inside the
        os.rename(env.data / "b.jpg", env.data / "c.jpg")  # settle window
        os.rename(env.data / "d1", env.data / "tmp")  # swap two directories
        os.rename(env.data / "d2", env.data / "d1")
        os.rename(env.data / "tmp", env.data / "d2")
        os.rename(env.data / "p.txt", env.data / "swap")  # and two files
        os.rename(env.data / "q.txt", env.data / "p.txt")
        os.rename(env.data / "swap", env.data / "q.txt")
        local = {
            f"files/{p.relative_to(env.data).as_posix()}": p.read_bytes()
            for p in env.data.rglob("*")
            if p.is_file()
        }

        differs: list[str] = []

        def mirrored() -> bool:
            names = env.names()
            differs[:] = sorted(set(names) ^ set(local)) or [
                k for k, v in local.items() if env.download(k) != v
            ]
            return not differs

        try:
            took = wait_for(mirrored, "the bucket to equal the folder", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still different: {differs}") from None
        assert len(daemon.named("reconcile finished")) == 1  # only the one at start
        assert daemon.named("copied", "files/c.jpg")
        assert not daemon.named("uploaded", "files/c.jpg")
        print(f"chains and swaps converged in {took:.1f}s")


@pytest.fixture
def small_inotify_queue() -> Iterator[None]:
    """A kernel queue of 32 events for the instance the daemon creates (read at
    inotify_init), so a modest burst overflows it as a 40,000-file one does by default."""
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    before = knob.read_text()
    knob.write_text("32")
    try:
        yield
    finally:
        knob.write_text(before)


def test_an_inotify_overflow_is_one_warning_and_a_reconcile_at_once(
    env: Env, small_inotify_queue: None
) -> None:
    env.write("keep.txt", b"k")
    (env.data / "burst").mkdir()
    with DaemonProcess(env, workers=8) as daemon:
        daemon.wait_reconciled()
        Path("/proc/sys/fs/inotify/max_queued_events").write_text("16384")
        names = [f"files/burst/{i:04d}.txt" for i in range(1000)]
        for name in names:
            (env.data / name.removeprefix("files/")).write_bytes(name.encode())
        took = wait_for(
            lambda: env.names() == sorted(["files/keep.txt", *names]), "the burst", timeout=90
        )
        lost = daemon.named(
            "inotify queue overflowed: events were lost; reconciling the folder now"
        )
        assert lost, "the burst did not overflow the queue"
        assert [e["overflows"] for e in lost] == list(range(1, len(lost) + 1))
        assert len(daemon.named("reconcile finished")) >= 2
        print(f"overflow burst of 1000: {len(lost)} warnings, all in the bucket in {took:.1f}s")


@pytest.fixture
def mounted_env(tmp_path: Path, backend: Backend) -> Iterator[tuple[Env, Path]]:
    """An Env whose folder is the mount point of a loop-mounted disk."""
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    env = Env(tmp_path, backend)
    subprocess.run(["mount", "-o", "loop", str(image), str(env.data)], check=True)
    try:
        yield env, image
    finally:
        subprocess.run(["umount", "-l", str(env.data)], check=False)


def test_an_unmounted_disk_deletes_nothing_until_the_operator_approves(
    mounted_env: tuple[Env, Path],
) -> None:
    env, _ = mounted_env
    names = tree(env, "photos", 40, per_dir=10)
    assert env.run().code == 0
    subprocess.run(["umount", str(env.data)], check=True)
    (env.data / "stray.txt").write_bytes(b"left in the mount point")

    refused = env.run()

    assert refused.code == 3, refused.stdout + refused.stderr
    assert "another device than at the last successful run" in refused.stdout
    assert set(names) <= set(env.names())  # nothing deleted
    shown = status(env)["refused_deletes"]
    assert isinstance(shown, dict) and list(shown) == [str(env.data)]
    assert shown[str(env.data)]["count"] == 40
    assert env.run().code == 3  # still refused: a guard does not give up by itself

    approve = subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "approve-deletes", "-c", str(env.config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert approve.returncode == 0 and "approved 40 deletes" in approve.stdout

    approved = env.run()
    assert approved.code == 0, approved.stdout
    assert env.names() == ["files/stray.txt"]
    assert status(env)["refused_deletes"] == {}


def test_a_delete_never_wins_over_a_file_that_exists(env: Env) -> None:
    """A reconcile's delete coalesced over a newer upload of the same path: the job acts
    on what the path is when it runs, so the new content goes up."""
    path = env.write("report.txt", b"first version")
    assert env.run().code == 0
    path.write_bytes(b"second version, written after the reconcile looked")
    rt = Runtime(load_config(env.configure()), Stats(), once=True)
    try:
        outcome = rt.applier.run(
            "files/report.txt",
            DELETE,
            job_payload(path=str(path), remote=None, reason="file removed"),
        )
    finally:
        rt.close()
    assert outcome.action == "uploaded"
    assert env.download("files/report.txt") == path.read_bytes()


def test_a_swap_whose_copy_finds_the_source_rewritten_uploads_the_file(env: Env) -> None:
    """p <-> q swapped through a third name. The sync of p (from the reconcile, or the
    swap's other half) has already sent p's new content and recorded it; q's new content
    is on the server but not yet in the index when p's move runs its copy from q. The copy
    then puts q's new content under p, and the Etag says so: p must be sent again, not
    judged "unchanged" by the index entry the sync just wrote."""
    p = env.write("p.txt", b"the p file")
    q = env.write("q.txt", b"the q file, longer")
    env.wait_until_settled()
    assert env.run().code == 0
    os.rename(p, env.data / "swap")
    os.rename(q, p)
    os.rename(env.data / "swap", q)
    rt = Runtime(load_config(env.configure()), Stats(), once=True)
    try:
        synced = rt.applier.run(
            "files/p.txt", SYNC, job_payload(path=str(p), remote=None, reason="watcher: sync")
        )
        assert synced.action == "uploaded"
        # q's sync, caught between its PUT and its index record.
        env.conn.put_object(env.bucket, "files/q.txt", q.read_bytes())
        moved = rt.applier.run(
            "files/p.txt",
            MOVE,
            {
                **job_payload(path=str(p), remote=None, reason="watcher: move"),
                "src": "files/q.txt",
                "src_path": str(q),
            },
        )
    finally:
        rt.close()
    assert moved.action == "uploaded", moved
    assert env.download("files/p.txt") == p.read_bytes() == b"the q file, longer"
