"""Session fixtures: the real object-storage servers the integration tests run against.

Each backend starts once per session on 127.0.0.1 and is stopped by PID at the end.
``--backend swift`` or ``--backend rgw`` runs the server tests against one of them alone.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

BACKENDS = ("swift", "rgw")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="run server tests against this backend only (repeatable; default: all)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("backend") or list(BACKENDS)
        metafunc.parametrize("backend", chosen, indirect=True, scope="session")


@dataclass(frozen=True)
class Backend:
    """A running server and what a test needs to reach it."""

    name: str
    auth_url: str
    user: str
    key: str

    def token(self) -> tuple[str, str]:
        resp = requests.get(
            self.auth_url, headers={"X-Auth-User": self.user, "X-Auth-Key": self.key}, timeout=30
        )
        resp.raise_for_status()
        return resp.headers["X-Auth-Token"], resp.headers["X-Storage-Url"]


_started: dict[str, Backend] = {}
_stoppers: list[object] = []
_lock = threading.Lock()


def _start(name: str) -> Backend:
    with _lock:
        if name not in _started:
            root = Path(tempfile.mkdtemp(prefix=f"kcsync-{name}-"))
            if name == "swift":
                from tests.servers.swift import start_swift

                server = start_swift(root)
            else:
                from tests.servers.rgw import start_rgw

                server = start_rgw(root)  # type: ignore[assignment]
            _stoppers.append(server)
            _started[name] = Backend(name, server.auth_url, server.user, server.key)
        return _started[name]


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield _start(request.param)


@pytest.fixture(scope="session")
def swift_backend() -> Backend:
    """OpenStack Swift alone, for tests of what only it does (or peers that need it)."""
    return _start("swift")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    for server in reversed(_stoppers):
        server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(server.root, ignore_errors=True)  # type: ignore[attr-defined]
