"""Session fixtures: the real object-storage servers the integration tests run against.

Each backend starts once per session on 127.0.0.1 and is stopped by PID at the end.
``--backend swift``, ``--backend rgw`` or ``--backend kakao`` runs the server tests against
one of them alone. ``kakao`` is KakaoCloud as its API reference describes it: a real Keystone
(tests/servers/keystone.py), the gateway that enforces the reference's rules
(tests/servers/gateway.py) and Swift behind it; kcsync signs in with an application
credential, while the tests' peers see the same account through v1 auth (servers/kakao.py).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from tests.servers.kakao import KakaoServer
    from tests.servers.keystone import KeystoneServer

BACKENDS = ("swift", "rgw", "kakao")


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
        # @pytest.mark.backends("swift", "rgw"): tests of kcsync against the filesystem,
        # the same on every server, need not run a third time behind the gateway.
        only = metafunc.definition.get_closest_marker("backends")
        if only is not None:
            chosen = [b for b in chosen if b in only.args]
        metafunc.parametrize("backend", chosen, indirect=True, scope="session")


# Fixtures that start servers of a backend, and the backend whose servers they are.
_SERVER_FIXTURES = {"swift_backend": "swift", "kakao_backend": "kakao", "kakao": "kakao",
                    "keystone": "kakao"}  # fmt: skip


_group_of: dict[str, str] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-n`` (pytest-xdist, ``--dist loadgroup``): every test of one backend runs in
    one worker, so each worker starts the servers of its own backend only, and once."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        group = callspec.params.get("backend") if callspec is not None else None
        if group is None:
            names = getattr(item, "fixturenames", ())
            group = next((b for f, b in _SERVER_FIXTURES.items() if f in names), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(str(group)))
            _group_of[item.nodeid] = str(group)


@dataclass(frozen=True)
class Backend:
    """A running server and what a test needs to reach it.

    ``auth_url``, ``user`` and ``key`` are v1 auth for the tests' peers (and for kcsync, unless
    ``kcsync_auth`` gives it an ``auth`` section of its own).
    """

    name: str
    auth_url: str
    user: str
    key: str
    kcsync_auth: Mapping[str, str] | None = field(default=None, repr=False)

    def token(self) -> tuple[str, str]:
        resp = requests.get(
            self.auth_url, headers={"X-Auth-User": self.user, "X-Auth-Key": self.key}, timeout=30
        )
        resp.raise_for_status()
        return resp.headers["X-Auth-Token"], resp.headers["X-Storage-Url"]


_started: dict[str, Backend] = {}
_servers: dict[str, object] = {}
_stoppers: list[object] = []
_lock = threading.RLock()


def _server(name: str) -> object:
    """Start a server once per session: "swift", "rgw", "keystone" or "kakao"."""
    with _lock:
        if name not in _servers:
            root = Path(tempfile.mkdtemp(prefix=f"kcsync-{name}-"))
            server: object
            if name == "swift":
                from tests.servers.swift import start_swift

                server = start_swift(root)
            elif name == "keystone":
                from tests.servers.keystone import start_keystone

                server = start_keystone(root)
            elif name == "rgw":
                from tests.servers.rgw import start_rgw

                # RGW validates Keystone tokens too (tests/test_keystone.py); its own v1
                # users go on working beside them.
                server = start_rgw(root, keystone=_server("keystone"))  # type: ignore[arg-type]
            else:
                from tests.servers.kakao import start_kakao

                root.rmdir()  # the kakao proxies live in the Swift cluster's directory
                server = start_kakao(_server("swift"), _server("keystone"))  # type: ignore[arg-type]
            _stoppers.append(server)
            _servers[name] = server
        return _servers[name]


def _start(name: str) -> Backend:
    with _lock:
        if name not in _started:
            server: Any = _server(name)
            if name == "kakao":
                ks = server.keystone
                _started[name] = Backend(
                    name,
                    server.peer_auth_url,
                    server.peer_user,
                    server.peer_key,
                    kcsync_auth={
                        "method": "kakaocloud",
                        "region": "kr-central-2",
                        "access_key_id": ks.credential.id,
                        "secret": ks.credential.secret,
                        "identity_url": ks.v3,
                        "storage_url": f"{server.gateway_url}/v1/{{project_id}}",
                    },
                )
            else:
                _started[name] = Backend(name, server.auth_url, server.user, server.key)
        return _started[name]


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Undo a test's logs.configure(): structlog would otherwise keep writing to the stream
    that test had, which pytest has closed by the next one (kcsync logs in-process too)."""
    yield
    import structlog

    structlog.reset_defaults()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield _start(request.param)


@pytest.fixture(scope="session")
def swift_backend() -> Backend:
    """OpenStack Swift alone, for tests of what only it does (or peers that need it)."""
    return _start("swift")


@pytest.fixture(scope="session")
def keystone() -> KeystoneServer:
    """The session's Keystone (the one RGW and the kakao backend validate tokens with)."""
    return _server("keystone")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def kakao_backend() -> Backend:
    """The kakao backend alone, for tests of KakaoCloud's own behaviour (auth, temp URLs)."""
    return _start("kakao")


@pytest.fixture(scope="session")
def kakao() -> KakaoServer:
    return _server("kakao")  # type: ignore[return-value]


_seconds_per_backend: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Time spent per backend (setup, call and teardown), summed on the controlling
    process under xdist too: the README says how long each backend takes."""
    # Under xdist a grouped test's id ends in "@swift"; in one process, collection said.
    nodeid, _, group = report.nodeid.partition("@")
    group = group or _group_of.get(nodeid, "")
    if not group and nodeid.startswith(("tests/e2e/", "tests/test_")) and nodeid.endswith("]"):
        # The xdist controller collects nothing: the backend is in the test's id.
        params = nodeid[nodeid.rfind("[") + 1 : -1].split("-")
        group = next((p for p in params if p in BACKENDS), "")
    backend = group if group in BACKENDS else "no server"
    _seconds_per_backend[backend] = _seconds_per_backend.get(backend, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _seconds_per_backend:
        parts = [f"{b} {s / 60:.1f} min" for b, s in sorted(_seconds_per_backend.items())]
        terminalreporter.write_line("test time per backend: " + ", ".join(parts))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    # Latest first: the kakao proxies before the Swift they share, Keystone after both stores.
    for server in reversed(_stoppers):
        server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(server.root, ignore_errors=True)  # type: ignore[attr-defined]
