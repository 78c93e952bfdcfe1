"""A throwaway one-node Ceph cluster whose radosgw speaks the Swift API on 127.0.0.1.

Debian's Ceph (16.2, pacific) runs here without systemd, a mgr or disks: one mon, one OSD on
memstore (objects live in the OSD's RAM) and one radosgw. Every file the daemons write lives
under the root directory handed to `start_rgw`, and every port is picked at start time, so this
can run beside the Swift test server, or beside another copy of itself.

CI needs: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common

Run `python3 -m tests.servers.rgw` for a cluster to poke at by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from tests.servers.keystone import SERVICE_PROJECT, SERVICE_USER

if TYPE_CHECKING:
    from tests.servers.keystone import KeystoneServer

USER = "test:tester"
KEY = "testing"

# A cold start takes about 2 s here (13 s before `paxos propose interval` was cut); the slack is
# for slow CI machines, and only a failing start ever waits it out.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0

# The OSD listens on 8 ports (public, cluster and two heartbeat messengers, each msgr2 + msgr1);
# the rest is slack in case a later Ceph wants more.
_OSD_PORT_COUNT = 16
_BINARIES = ("ceph", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool")
_APT_HINT = "apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common"


class RgwStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class RgwServer:
    auth_url: str
    user: str
    key: str
    endpoint: str
    root: Path
    # mon, osd, rgw: the order they started in; stop() walks it backwards.
    pids: tuple[int, ...]

    @property
    def storage_url(self) -> str:
        return f"{self.endpoint}/swift/v1"

    def stop(self) -> None:
        _stop_pids(self.pids)


def start_rgw(root: Path, *, keystone: KeystoneServer | None = None) -> RgwServer:
    """Start mon, OSD and radosgw under `root`; return once a container can be created.

    With ``keystone``, radosgw also accepts that Keystone's tokens (at ``/swift/v1``, the
    account being the token's project), beside its own v1 users.
    """
    missing = [name for name in _BINARIES if shutil.which(name) is None]
    if missing:
        raise RgwStartError(f"missing {', '.join(missing)}; install with: {_APT_HINT}")
    starter = _Starter(root.resolve(), keystone)
    try:
        return starter.start()
    except BaseException as exc:
        # Whatever did start must not outlive a failed start, or the next attempt finds
        # its ports taken and the machine a few hundred MB poorer.
        _stop_pids([p.pid for p in starter.procs])
        if isinstance(exc, RgwStartError):
            raise
        if isinstance(exc, Exception):
            raise RgwStartError(f"{exc}\n{starter.log_tails()}") from exc
        raise


@contextlib.contextmanager
def running_rgw(root: Path | None = None) -> Iterator[RgwServer]:
    """Yield a running RgwServer; stop it afterwards and, if we made the root, remove it."""
    made_root = root is None
    # A short path under /tmp because a daemon's admin socket (`ceph daemon ...`) is skipped,
    # with only a log line, when its path would pass 107 bytes; pytest's tmp_path often does.
    top = Path(tempfile.mkdtemp(prefix="kcsync-rgw-")) if root is None else root
    try:
        server = start_rgw(top)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if made_root:
            shutil.rmtree(top, ignore_errors=True)


class _Starter:
    def __init__(self, root: Path, keystone: KeystoneServer | None = None) -> None:
        self.root = root
        self.keystone = keystone
        self.conf = root / "ceph.conf"
        self.log_dir = root / "log"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.deadline = time.monotonic() + START_TIMEOUT
        # /usr/bin/ceph is a script for the system python; a venv's PYTHONPATH would break it.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CEPH"))}

    def start(self) -> RgwServer:
        for sub in ("log", "run", "crash", "mon", "osd/ceph-0", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        base = _free_port_range(3 + _OSD_PORT_COUNT)
        mon_v2, mon_v1, rgw_port, osd_lo = base, base + 1, base + 2, base + 3
        fsid = str(uuid.uuid4())
        mon_addrs = f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]"
        self.conf.write_text(
            _conf_text(self.root, fsid, mon_addrs, osd_lo, osd_lo + _OSD_PORT_COUNT - 1, rgw_port)
            + (_keystone_conf(self.keystone) if self.keystone else "")
        )

        monmap = self.root / "monmap"
        self._run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_addrs, monmap])
        self._run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap])
        self._spawn("mon.a", ["ceph-mon", "-c", self.conf, "-f", "-i", "a"])

        osd_uuid = str(uuid.uuid4())
        # The first ceph command also waits out the mon's startup.
        osd_id = self._ceph(["osd", "create", osd_uuid], connect_timeout=30).strip()
        if osd_id != "0":
            raise RgwStartError(f"expected osd id 0 from a fresh cluster, got {osd_id!r}")
        self._run(["ceph-osd", "-c", self.conf, "--mkfs", "-i", "0", "--osd-uuid", osd_uuid])
        # With `osd crush update on start` off the OSD is placed here, under a host name that
        # does not depend on the machine's.
        self._ceph(["osd", "crush", "add", "osd.0", "1.0", "host=localhost", "root=default"])
        self._spawn("osd.0", ["ceph-osd", "-c", self.conf, "-f", "-i", "0"])
        self._wait("the OSD to come up", self._osd_up)

        # Done before radosgw starts so the two do not race to create the default zone.
        admin: list[str | Path] = ["radosgw-admin", "-c", self.conf]
        self._run([*admin, "user", "create", "--uid=test", "--display-name=test"])
        self._run(
            [
                *admin, "subuser", "create", "--uid=test", f"--subuser={USER}",
                "--access=full", "--key-type=swift", f"--secret-key={KEY}",
            ]
        )  # fmt: skip
        self._spawn("client.rgw", ["radosgw", "-c", self.conf, "-f", "--id", "rgw"])
        endpoint = f"http://127.0.0.1:{rgw_port}"
        server = RgwServer(
            auth_url=f"{endpoint}/auth/v1.0",
            user=USER,
            key=KEY,
            endpoint=endpoint,
            root=self.root,
            pids=tuple(p.pid for p in self.procs),
        )
        self._wait("radosgw to accept a container PUT", lambda: _rgw_ready(server))
        return server

    def _run(self, args: Sequence[str | Path], timeout: float = 60.0) -> str:
        timeout = max(1.0, min(timeout, self.deadline - time.monotonic()))
        cmd = [str(a) for a in args]
        try:
            done = subprocess.run(
                cmd, env=self.env, cwd=self.root, capture_output=True, timeout=timeout,
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RgwStartError(
                f"{' '.join(cmd)} took over {timeout:.0f} s\n{self.log_tails()}"
            ) from exc
        if done.returncode != 0:
            raise RgwStartError(
                f"{' '.join(cmd)} exited {done.returncode}:\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
                f"\n{self.log_tails()}"
            )
        return done.stdout.decode()

    def _ceph(self, args: Sequence[str], connect_timeout: int = 10) -> str:
        return self._run(["ceph", "-c", self.conf, f"--connect-timeout={connect_timeout}", *args])

    def _spawn(self, name: str, args: Sequence[str | Path]) -> None:
        with open(self.log_dir / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in args], env=self.env, cwd=self.root,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C meant for pytest must not kill the daemons
                # before teardown gets to stop them in order.
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        self.names.append(name)

    def _osd_up(self) -> bool:
        stat = json.loads(self._ceph(["osd", "stat", "--format=json"]))
        return bool(stat.get("num_up_osds") == 1)

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        delay = 0.1
        while True:
            for name, proc in zip(self.names, self.procs, strict=True):
                if proc.poll() is not None:
                    raise RgwStartError(
                        f"{name} exited {proc.returncode} while waiting for {what}\n"
                        f"{self.log_tails()}"
                    )
            if ready():
                return
            if time.monotonic() > self.deadline:
                raise RgwStartError(
                    f"gave up after {START_TIMEOUT:.0f} s waiting for {what}\n{self.log_tails()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def log_tails(self, lines: int = 25) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*")):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts)


# The OSD's RAM for objects. A full memstore blocks every write, deletes and the garbage
# collector's included, so a caller that stores a lot (the benchmarks) raises it.
MEMSTORE_BYTES = 2 << 30


def _conf_text(
    root: Path, fsid: str, mon_addrs: str, osd_lo: int, osd_hi: int, rgw_port: int
) -> str:
    return f"""\
[global]
fsid = {fsid}
mon host = {mon_addrs}
# Otherwise the OSD binds 0.0.0.0.
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind port min = {osd_lo}
ms bind port max = {osd_hi}
auth cluster required = none
auth service required = none
auth client required = none
# Without crc, radosgw retries a secure mon connection forever under auth none.
ms mon client mode = crc secure
run dir = {root}/run
crash dir = {root}/crash
log file = {root}/log/$name.log
mon cluster log file = {root}/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
# rgw makes 7 or so pools; the default 32 PGs each is wasted work for one OSD.
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# Each osdmap change (pool create, crush add, ...) otherwise waits out a 1 s batching window;
# radosgw's first start makes about 15 of them.
paxos propose interval = 0.05
# The mon shuts itself down when its disk is 95 % full; a CI disk can be.
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = {root}/mon/$cluster-$id

[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {MEMSTORE_BYTES}
osd crush update on start = false

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw swift versioning enabled = true
# Deleted and overwritten data otherwise stays in the OSD's RAM for two hours.
rgw gc obj min wait = 60
rgw gc processor period = 60
"""


def _keystone_conf(ks: KeystoneServer) -> str:
    # Appended to [client.rgw]. The admin domain is a NAME, and case-sensitive on SQLite.
    return f"""\
rgw keystone url = {ks.url}
rgw keystone api version = 3
rgw keystone admin user = {SERVICE_USER}
rgw keystone admin password = {ks.service_password}
rgw keystone admin project = {SERVICE_PROJECT}
rgw keystone admin domain = Default
rgw keystone accepted roles = member, admin
"""


def _rgw_ready(server: RgwServer) -> bool:
    try:
        auth = requests.get(
            server.auth_url,
            headers={"X-Auth-User": server.user, "X-Auth-Key": server.key},
            timeout=5,
        )
        token = auth.headers.get("X-Auth-Token")
        url = auth.headers.get("X-Storage-Url")
        if auth.status_code != 204 or not token or not url:
            return False
        # A token alone only proves the user exists; the PUT proves the data pools take writes.
        probe = f"{url}/kcsync-readiness-probe"
        put = requests.put(probe, headers={"X-Auth-Token": token}, timeout=10)
        if put.status_code not in (201, 202):
            return False
        # Tests that list the account must not see the probe.
        requests.delete(probe, headers={"X-Auth-Token": token}, timeout=10)
        return True
    except requests.RequestException:
        return False


def _free_port_range(count: int) -> int:
    # The OSD needs a contiguous range, so all our ports come as one block. Ports are free
    # when checked but only taken when the daemons bind them a second or so later; drawing
    # the block from below the kernel's ephemeral range means that servers which ask for
    # port 0 meanwhile (the Swift test server does) can never take one of ours.
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - count > 10000:
        first, last = 10000, low - count
    else:
        first, last = high + 1, 65535 - count
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(first, last)
        ports = range(base, base + count)
        if all(_bindable(p) for p in ports):
            return base
    raise RgwStartError(f"no {count} free consecutive ports in {first}-{last + count}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_pids(pids: Sequence[int]) -> None:
    # rgw before the OSD before the mon: each one's clean shutdown talks to the next.
    for pid in reversed(pids):
        if _gone(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if _wait_gone(pid, STOP_TIMEOUT):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _gone(pid: int) -> bool:
    try:
        # Our own children linger as zombies, which kill(pid, 0) still finds, until reaped.
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == pid
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def main() -> None:
    # SIGTERM, and SIGINT even when a shell started us in the background with it ignored,
    # must unwind through running_rgw() so the daemons are stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    began = time.monotonic()
    with running_rgw() as server:
        print(f"ready in {time.monotonic() - began:.1f} s, files under {server.root}")
        print(f"auth url:    {server.auth_url}")
        print(f"user / key:  {server.user} / {server.key}")
        print(f"storage url: {server.storage_url}")
        print(f"pids:        {' '.join(map(str, server.pids))}")
        print("Ctrl-C stops it.", flush=True)
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)


if __name__ == "__main__":
    main()
