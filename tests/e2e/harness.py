"""Drive kcsync through its CLI against a real server, and look at the bucket with the
peers' own client (python-swiftclient), not with kcsync's."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import swiftclient
import yaml

from kcsync.model import RACY_WINDOW_NS
from tests.conftest import Backend

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def requests(self) -> dict[str, int]:
        for event in self.events:
            if event.get("event") == "run finished":
                return dict(event["by_method"])
        raise AssertionError(f"no 'run finished' event:\n{self.stderr}")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    def uploaded(self) -> list[str]:
        return sorted(e["object"] for e in self.named("uploaded"))

    def deleted(self) -> list[str]:
        return sorted(e["object"] for e in self.named("deleted"))


class Env:
    """One test's folder, state, config and bucket."""

    def __init__(self, tmp: Path, backend: Backend) -> None:
        self.backend = backend
        self.root = tmp
        self.data = tmp / "data"
        self.data.mkdir()
        self.state = tmp / "state"
        self.bucket = f"kc-{uuid.uuid4().hex[:12]}"
        self.config_path = tmp / "kcsync.yaml"
        self.settings: dict[str, Any] = {
            "auth": dict(backend.kcsync_auth)
            if backend.kcsync_auth
            else {
                "method": "v1",
                "url": backend.auth_url,
                "user": backend.user,
                "key": backend.key,
            },
            "bucket": self.bucket,
            "folders": [{"path": str(self.data), "prefix": "files/"}],
            "state_dir": str(self.state),
            "workers": 4,
            "large_objects": {"threshold": "1MiB", "segment_size": "256KiB"},
            "retry": {"job_attempts": 2},
        }
        self._conn: swiftclient.Connection | None = None

    # -- local side ------------------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> Path:
        path = self.data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def wait_until_settled(self, timeout: float = 30.0) -> None:
        """Until every file in the folder was last changed longer than the racy window
        ago, so the next run's records are trusted by the runs after it (IndexEntry.racy):
        a test that wants a cheap rerun must not write and sync within the same moment."""
        newest = max((max(st.st_mtime_ns, st.st_ctime_ns) for st in self._stats()), default=0)
        deadline = time.monotonic() + timeout
        while time.time_ns() - newest < RACY_WINDOW_NS:
            assert time.monotonic() < deadline, "files never left the racy window"
            time.sleep(0.05)  # a poll step, bounded by the deadline

    def _stats(self) -> Iterator[os.stat_result]:
        for dirpath, _, names in os.walk(self.data):
            for name in names:
                yield os.lstat(os.path.join(dirpath, name))

    # -- running kcsync ----------------------------------------------------------------------

    def configure(self, **overrides: Any) -> Path:
        settings = {**self.settings, **overrides}
        self.config_path.write_text(yaml.safe_dump(settings))
        self.config_path.chmod(0o600)
        return self.config_path

    def run(self, *args: str, prefix: tuple[str, ...] = (), **overrides: Any) -> Result:
        self.configure(**overrides)
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "kcsync.cli",
            "-c",
            str(self.config_path),
            "--log-format",
            "json",
            *(args or ("--once",)),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        return Result(proc.returncode, proc.stdout, proc.stderr, parse_events(proc.stderr))

    # -- the bucket, as a peer sees it --------------------------------------------------------

    @property
    def conn(self) -> swiftclient.Connection:
        if self._conn is None:
            self._conn = swiftclient.Connection(
                authurl=self.backend.auth_url,
                user=self.backend.user,
                key=self.backend.key,
                auth_version="1",
                retries=2,
            )
        return self._conn

    def names(self, container: str | None = None) -> list[str]:
        try:
            _, items = self.conn.get_container(container or self.bucket, full_listing=True)
        except swiftclient.ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        return [item["name"] for item in items]

    def download(self, name: str) -> bytes:
        _, body = self.conn.get_object(self.bucket, name)
        return bytes(body)

    def head(self, name: str) -> dict[str, str]:
        return dict(self.conn.head_object(self.bucket, name))


def parse_events(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
    return events
