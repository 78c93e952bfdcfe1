"""A throwaway OpenStack Swift cluster on loopback for tests and manual poking.

One replica, one device, account/container/object/proxy servers with ``workers = 0``; tempauth
signs tokens with a Fernet key so no memcached is needed. Every port is chosen at start, so it can
run next to other servers (the Ceph RGW backend, another Swift).

Run ``python3 -m tests.servers.swift`` from the repo root to get one until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

USER = "test:tester"
KEY = "testing"
# A reseller admin exists only so start-up can create the test account for real: a real
# KakaoCloud account always exists, whereas an autocreated one is faked until its first write.
_ADMIN_USER = "admin:admin"
_ADMIN_KEY = "admin"
_ACCOUNT = "AUTH_test"
_DEVICE = "d1"
_BACKENDS = ("account", "container", "object")
# Module that owns each server's main(); the same entry points as the swift-*-server scripts.
_MAIN_MODULES = {
    "account": "swift.account.server",
    "container": "swift.container.server",
    "object": "swift.obj.server",
    "proxy": "swift.proxy.server",
}
_PROXY_PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk tempurl tempauth"
    " copy slo dlo proxy-logging proxy-server"
)
_EGG_NAMES = {
    "catch_errors": "catch_errors",
    "gatekeeper": "gatekeeper",
    "healthcheck": "healthcheck",
    "proxy-logging": "proxy_logging",
    "listing_formats": "listing_formats",
    "bulk": "bulk",
    "tempurl": "tempurl",
    "copy": "copy",
    "slo": "slo",
    "dlo": "dlo",
}
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 30


class SwiftStartError(RuntimeError):
    """The cluster did not come up; the message carries the tail of every server log."""


@dataclass(frozen=True)
class SwiftServer:
    """A running cluster. ``stop()`` is idempotent; the data under ``root`` is left in place."""

    auth_url: str
    user: str
    key: str
    proxy_url: str
    root: Path
    pids: tuple[int, ...]
    # Popen objects are kept so stop() can reap the children: an unreaped child is a zombie,
    # and a zombie still answers os.kill(pid, 0).
    _procs: tuple[subprocess.Popen[bytes], ...] = field(default=(), repr=False, compare=False)

    def stop(self) -> None:
        """SIGTERM every server, SIGKILL whatever is left after ``STOP_TIMEOUT`` seconds."""
        _stop_procs(self._procs)


def start_swift(root: Path, *, token_life: int = 86400) -> SwiftServer:
    """Lay out configs and rings under ``root``, start the four servers and wait until usable.

    ``token_life`` is tempauth's token lifetime in seconds (Fernet checks it with one-second
    granularity). Raises ``SwiftStartError`` if the cluster is not ready within START_TIMEOUT.
    """
    root = root.resolve()
    deadline = time.monotonic() + START_TIMEOUT
    ports = dict(zip((*_BACKENDS, "proxy"), _free_ports(4), strict=True))
    _write_layout(root, ports, token_life)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in _BACKENDS:
            procs.append(_spawn(root, name))
        procs.append(_spawn(root, "proxy", _ring_code(root / "etc", ports)))
        _wait_until_ready(root, ports, procs, deadline)
    except BaseException:
        _stop_procs(procs)
        raise
    proxy_url = f"http://127.0.0.1:{ports['proxy']}"
    return SwiftServer(
        auth_url=f"{proxy_url}/auth/v1.0",
        user=USER,
        key=KEY,
        proxy_url=proxy_url,
        root=root,
        pids=tuple(p.pid for p in procs),
        _procs=tuple(procs),
    )


@contextlib.contextmanager
def running_swift(root: Path | None = None, *, token_life: int = 86400) -> Iterator[SwiftServer]:
    """Start a cluster for the ``with`` block; a temp ``root`` (if none given) is removed after."""
    tmp = None
    if root is None:
        root = tmp = Path(tempfile.mkdtemp(prefix="kcsync-swift-"))
    try:
        server = start_swift(root, token_life=token_life)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until every port is known, so the kernel cannot hand out one twice.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _write_layout(root: Path, ports: dict[str, int], token_life: int) -> None:
    etc, logs = root / "etc", root / "log"
    for d in (etc, logs, root / "srv" / _DEVICE):
        d.mkdir(parents=True, exist_ok=True)
    # A fixed salt keeps data in a reused root addressable across runs; it only must be non-empty.
    (etc / "swift.conf").write_text(
        "[swift-hash]\n"
        "swift_hash_path_suffix = kcsync-test\n"
        "swift_hash_path_prefix = kcsync\n"
        "\n"
        "[storage-policy:0]\n"
        "name = Policy-0\n"
        "default = yes\n"
    )
    # Servers default to user "swift"; name the current user so nothing tries to drop privileges.
    common = (
        "[DEFAULT]\n"
        "bind_ip = 127.0.0.1\n"
        "bind_port = {port}\n"
        "workers = 0\n"
        f"user = {pwd.getpwuid(os.getuid()).pw_name}\n"
        f"swift_dir = {etc}\n"
        f"devices = {root / 'srv'}\n"
        "mount_check = false\n"
        "disable_fallocate = true\n"
        "log_name = {name}\n"
        "log_level = INFO\n"
    )
    for name in _BACKENDS:
        (etc / f"{name}-server.conf").write_text(
            common.format(port=ports[name], name=f"{name}-server") + "\n[pipeline:main]\n"
            # healthcheck lets start-up poll each backend directly instead of through the proxy.
            f"pipeline = healthcheck {name}-server\n"
            f"\n[app:{name}-server]\nuse = egg:swift#{name}\n"
            "\n[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
        )
    fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    filters = "".join(
        f"\n[filter:{name}]\nuse = egg:swift#{egg}\n" for name, egg in _EGG_NAMES.items()
    )
    (etc / "proxy-server.conf").write_text(
        common.format(port=ports["proxy"], name="proxy-server")
        + f"\n[pipeline:main]\npipeline = {_PROXY_PIPELINE}\n"
        "\n[app:proxy-server]\n"
        "use = egg:swift#proxy\n"
        "allow_account_management = true\n"
        "account_autocreate = true\n"
        "\n[filter:tempauth]\n"
        "use = egg:swift#tempauth\n"
        f"user_{_ADMIN_USER.replace(':', '_')} = {_ADMIN_KEY} .admin .reseller_admin\n"
        f"user_{USER.replace(':', '_')} = {KEY} .admin\n"
        f"token_life = {token_life}\n"
        # A Fernet key makes tokens self-contained, so tempauth needs no memcached.
        f"fernet_key_k1 = {fernet_key}\n"
        "active_fernet_key_id = k1\n" + filters
    )


def _ring_code(etc: Path, ports: dict[str, int]) -> str:
    # Run inside the proxy process ahead of its main(): the proxy is the only reader of rings
    # and imports this code anyway, so it costs nothing there, whereas importing swift into the
    # test process brings in eventlet, whose at-fork hook warns on every later fork() there.
    rings = {str(etc / f"{name}.ring.gz"): ports[name] for name in _BACKENDS}
    return (
        "from swift.common.ring import RingBuilder\n"
        f"for path, port in {rings!r}.items():\n"
        "    b = RingBuilder(6, 1, 1)\n"
        "    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,\n"
        f"               'device': {_DEVICE!r}, 'weight': 1}})\n"
        "    b.rebalance()\n"
        "    b.get_ring().save(path)\n"
    )


def _spawn(root: Path, name: str, prelude: str = "") -> subprocess.Popen[bytes]:
    # `python -c` with the script's own main() runs the same code as swift-<name>-server but
    # always under this interpreter, whatever the bin dir layout (venv, pyenv shims, --user).
    code = f"{prelude}import sys; from {_MAIN_MODULES[name]} import main; sys.exit(main())"
    conf = root / "etc" / f"{name}-server.conf"
    with open(root / "log" / f"{name}.log", "ab") as log:
        # -v adds a stderr log handler, and Swift keeps that fd open when it detaches stdio;
        # without it everything goes to syslog, which is absent here. cwd=root keeps '' on
        # sys.path from shadowing the swift package with this file.
        return subprocess.Popen(
            [sys.executable, "-c", code, str(conf), "-v"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. The servers leave our session, so a test run
    # that is SIGKILLed would otherwise leak them; the kernel SIGTERMs them when the thread that
    # started them exits (so call start_swift from a thread that outlives the cluster).
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _load_prctl() -> Callable[..., int] | None:
    # Looked up in the parent: dlopen in a forked child of a threaded process can deadlock.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_prctl = _load_prctl()


def _wait_until_ready(
    root: Path,
    ports: dict[str, int],
    procs: list[subprocess.Popen[bytes]],
    deadline: float,
) -> None:
    session = requests.Session()
    base = f"http://127.0.0.1:{ports['proxy']}"

    def check(what: str, probe: Callable[[], bool]) -> None:
        last_error = "never answered"
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise SwiftStartError(_failure(root, f"pid {p.pid} exited with {p.returncode}"))
            try:
                if probe():
                    return
                last_error = "not ready"
            except requests.RequestException as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise SwiftStartError(_failure(root, f"timed out waiting for {what}: {last_error}"))
            time.sleep(0.05)

    def healthy(port: int) -> bool:
        return session.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).ok

    # Backends first: a proxy that hits a backend that is still booting counts errors against
    # it, and after enough errors it stops using that (only) node for a minute.
    for name, port in ports.items():
        check(f"{name} healthcheck", functools.partial(healthy, port))

    def auth(user: str, key: str) -> tuple[str, str]:
        r = session.get(
            f"{base}/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key}, timeout=5
        )
        r.raise_for_status()
        return r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]

    def account_ready() -> bool:
        admin_token, _ = auth(_ADMIN_USER, _ADMIN_KEY)
        token, storage_url = auth(USER, KEY)
        put = session.put(f"{base}/v1/{_ACCOUNT}", headers={"X-Auth-Token": admin_token}, timeout=5)
        head = session.head(storage_url, headers={"X-Auth-Token": token}, timeout=5)
        # A real (not autocreated) account answers HEAD with a timestamp.
        return put.ok and head.ok and "X-Timestamp" in head.headers

    check("v1 auth and account", account_ready)
    session.close()


def _failure(root: Path, reason: str) -> str:
    parts = [f"local Swift did not start: {reason}"]
    for log in sorted((root / "log").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        parts.append(f"--- {log} (last {len(lines)} lines) ---")
        parts.extend(lines)
    return "\n".join(parts)


def _stop_procs(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _main() -> None:
    parser = argparse.ArgumentParser(description="Run a local Swift cluster until Ctrl-C.")
    parser.add_argument("--root", type=Path, help="data/config dir (default: a temp dir)")
    parser.add_argument("--token-life", type=int, default=86400)
    args = parser.parse_args()
    # SIGTERM becomes SystemExit so the with-block still stops the servers and removes the dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.monotonic()
    with running_swift(args.root, token_life=args.token_life) as server:
        print(f"started in {time.monotonic() - t0:.2f}s, logs in {server.root / 'log'}")
        print(f"auth_url={server.auth_url}\nuser={server.user}\nkey={server.key}")
        print(f"pids={' '.join(map(str, server.pids))}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    _main()
