"""Run `kcsync` (the daemon) as a child process, as systemd would: with a NOTIFY_SOCKET
the test listens on, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.harness import REPO, Env, parse_events


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Poll until ``predicate`` holds; return the seconds it took. Fails at the deadline."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


class DaemonProcess:
    def __init__(self, env: Env, *, watchdog_usec: int | None = None, **overrides: Any) -> None:
        self.env = env
        self.log_path = env.root / f"daemon-{time.monotonic_ns()}.log"
        self.socket_path = env.root / f"notify-{time.monotonic_ns()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.socket_path))
        self.messages: list[dict[str, str]] = []
        settings = {"daemon": {"settle": "0.3s", "reconcile_interval": "1h"}, **overrides}
        env.configure(**settings)
        child_env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(self.socket_path)}
        if watchdog_usec:
            child_env["WATCHDOG_USEC"] = str(watchdog_usec)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kcsync.cli",
                "-c",
                str(env.config_path),
                "--log-format",
                "json",
            ],
            env=child_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def receive(self, timeout: float = 30.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines())
        self.messages.append(message)
        return message

    def wait_ready(self) -> dict[str, str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = self.receive(timeout=max(0.1, deadline - time.monotonic()))
            if message.get("READY") == "1":
                return message
        raise AssertionError("no READY=1")

    def events(self) -> list[dict[str, Any]]:
        return parse_events(self.log_path.read_text())

    def named(self, name: str, obj: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("event") == name and (obj is None or e.get("object") == obj)
        ]

    def wait_reconciled(self, count: int = 1) -> None:
        wait_for(lambda: len(self.named("reconcile finished")) >= count, "a reconcile")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._log.close()
        self.sock.setblocking(False)
        while True:  # what it said on the way out (STOPPING) is still in the socket
            try:
                self.receive(timeout=0)
            except (BlockingIOError, TimeoutError):
                break
        self.sock.close()
        return code

    def __enter__(self) -> DaemonProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        code = self.stop()
        if exc[0] is None:
            assert code == 0, self.log_path.read_text()[-3000:]


def tree_names(root: Path, prefix: str = "files/") -> list[str]:
    return sorted(
        prefix + str(p.relative_to(root)).replace(os.sep, "/")
        for p in root.rglob("*")
        if p.is_file()
    )
