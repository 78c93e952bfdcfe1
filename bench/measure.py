"""Running a child and measuring it: wall, CPU and peak RSS from wait4, requests from the
server's access log."""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "OPTIONS"})
# radosgw: ... beast: 0x..: 127.0.0.1 - user [date] "PUT /swift/v1/b/o HTTP/1.1" 201 3000
# The number after the status is the body size for a PUT.
_LAUNCHER = Path(__file__).with_name("launch.py")
_BEAST = re.compile(r' beast: \S+ (\S+) .*?"([A-Z]+) (\S+) HTTP/[\d.]+" (\d+) (\d+|-)')


@dataclass
class Traffic:
    """Client requests seen by the server, by method, and bytes received in PUT bodies."""

    by_method: dict[str, int] = field(default_factory=dict)
    writes: int = 0  # object PUT/POST/DELETE (not container PUTs)
    put_bytes: int = 0
    put_bytes_by_container: dict[str, int] = field(default_factory=dict)
    # Requests by client address: scenario W's proxy connects from its own (127.0.0.2).
    clients: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_method.values())


class AccessLog:
    """The part of a server log written since ``mark()``, parsed into Traffic.

    Swift: proxy-logging lines with a client address (subrequests log ``-`` and are skipped);
    bytes_recvd is field 10. RGW: beast access lines.
    """

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self._offset = 0

    def mark(self) -> None:
        """Start counting here, once the lines of earlier requests (the harness's own clean-up;
        RGW logs asynchronously) are written."""
        self._offset = self._settle()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _settle(self) -> int:
        """The log's size once it stops growing (a line is written after each response)."""
        size, deadline = self._size(), time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if (now := self._size()) == size:
                break
            size = now
        return size

    def read(self) -> Traffic:
        size = self._settle()
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            text = f.read(size - self._offset).decode(errors="replace")
        self._offset = size
        methods: Counter[str] = Counter()
        clients: Counter[str] = Counter()
        traffic = Traffic()
        for line in text.splitlines():
            parsed = self._parse(line)
            if parsed is None:
                continue
            client, method, path, body = parsed
            methods[method] += 1
            clients[client] += 1
            # /v1/AUTH_x/container/object or /swift/v1/container/object: an object has 5+ parts
            if method in ("PUT", "POST", "DELETE") and len(path.split("?")[0].split("/")) > 4:
                traffic.writes += 1
            if method == "PUT":
                traffic.put_bytes += body
                container = _container(path)
                traffic.put_bytes_by_container[container] = (
                    traffic.put_bytes_by_container.get(container, 0) + body
                )
        traffic.by_method = dict(methods)
        traffic.clients = dict(clients)
        return traffic

    def _parse(self, line: str) -> tuple[str, str, str, int] | None:
        """(client address, method, path, PUT body bytes) of a client request line."""
        if self.kind == "swift":
            if not line.startswith("proxy-server: "):
                return None
            f = line.split(" ")[1:]
            if len(f) < 18 or f[0] == "-" or f[3] not in METHODS:
                return None
            return f[1], f[3], f[4], int(f[10]) if f[10].isdigit() else 0
        m = _BEAST.search(line)
        if m is None or m.group(2) not in METHODS:
            return None
        return m.group(1), m.group(2), m.group(3), int(m.group(5)) if m.group(5).isdigit() else 0


def _container(path: str) -> str:
    # Swift: /v1/AUTH_x/container/obj; RGW: /swift/v1/container/obj. Both: the 4th part.
    parts = path.split("?")[0].split("/")
    return parts[3] if len(parts) > 3 else ""


@dataclass
class Sample:
    """One measured run of one tool."""

    wall: float
    cpu: float
    rss_mb: float
    code: int
    traffic: Traffic | None = None
    self_requests: dict[str, int] | None = None  # kcsync's own count ("run finished")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int | None:
        return self.traffic.total if self.traffic else None


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    logs: Path,
    kill_when: Callable[[], bool] | None = None,
    poll: float = 0.02,
    timeout: float = 3600.0,
) -> Sample:
    """Run ``cmd`` to completion (or until ``kill_when()`` says SIGKILL, or ``timeout``
    seconds) and measure it.

    The child is started by bench/launch.py, which reports its wait4 rusage (see there why).
    stdout/stderr go to files under ``logs`` (``out``/``err``).
    """
    logs.mkdir(parents=True, exist_ok=True)
    result = logs / "rusage"
    for stale in (result, Path(f"{result}.ready")):
        stale.unlink(missing_ok=True)
    argv = [sys.executable, "-S", "-I", str(_LAUNCHER), str(result), *cmd]
    with open(logs / "out", "wb") as out, open(logs / "err", "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        try:
            while kill_when is not None and proc.poll() is None:
                if kill_when() or time.monotonic() > deadline:
                    _kill(proc, result)
                    break
                time.sleep(poll)
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # A stuck run (a full RGW memstore blocks writes forever) ends as exit code -9.
            _kill(proc, result)
        proc.wait()
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"launcher failed ({proc.returncode}): {tail(logs / 'err')}")
    wall, utime, stime, maxrss, code = result.read_text().split()
    return Sample(
        wall=float(wall),
        cpu=float(utime) + float(stime),
        rss_mb=int(maxrss) / 1024,
        code=int(code),
        self_requests=_run_finished(logs / "err"),
    )


def _kill(proc: subprocess.Popen[bytes], result: Path) -> None:
    """Have the launcher SIGKILL the command, once its handler is in place."""
    ready = Path(f"{result}.ready")
    deadline = time.monotonic() + 10
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)


def _run_finished(err: Path) -> dict[str, int] | None:
    """by_method of kcsync's ``run finished`` event, if the child was kcsync."""
    try:
        lines = err.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if '"run finished"' in line:
            try:
                return {str(k): int(v) for k, v in json.loads(line)["by_method"].items()}
            except (ValueError, KeyError):
                return None
    return None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
