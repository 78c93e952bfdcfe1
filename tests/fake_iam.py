"""A stand-in for KakaoCloud IAM (Keystone v3) on loopback, kept for what a real one cannot do.

A real Keystone runs in the tests (tests/servers/keystone.py) and backs every KakaoCloud auth
test it can. This fake remains for three things Keystone cannot be made to do on demand:
answer 503 (an IAM outage, ``fail_next``), answer slowly (``delay``, so concurrent first uses
overlap), and issue tokens on an injected clock (exact refresh arithmetic without sleeping).
It speaks the wire format of DESIGN §6 and nothing more: ``POST /identity/v3/auth/tokens``
with ``Content-Type: application/json`` and an ``application_credential`` body. Valid
credentials get 201, the token in ``X-Subject-Token`` and a Keystone-shaped body with
``token.project.id`` and ``token.expires_at`` (RFC 3339, microseconds, ``Z``). Wrong
credentials get 401, anything malformed 400, both with Keystone's JSON error body.
Every request is recorded so tests can assert on what the client sent and how often.

    with FakeIam(credentials={"key-id": "secret"}, lifetime=43200) as iam:
        iam.url          # http://127.0.0.1:PORT/identity/v3
        iam.post_count   # POSTs to /auth/tokens so far
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKENS_PATH = "/identity/v3/auth/tokens"
DEFAULT_PROJECT_ID = "6f0c1bd7e8a94c3f9d2b5a7e41c8d093"  # 32 hex digits, like a real one
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class IamRequest:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: Mapping[str, str]  # as sent; look up with the exact case or use header()
    body: bytes
    status: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    credential_id: str
    project_id: str
    issued_at: float  # epoch seconds by the server's clock
    expires_at: float
    expires_at_text: str  # exactly what the body said


def rfc3339(epoch: float) -> str:
    """Keystone's form: ``2026-11-24T00:00:00.000000Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeIam:
    """A threaded HTTP server on 127.0.0.1 (port chosen by the kernel) for one ``with`` block.

    ``credentials`` maps application-credential id to secret. ``lifetime`` is the token lifetime
    in seconds; ``clock`` the server's idea of now (inject the same fake clock as the client's to
    make expiry arithmetic exact); ``delay`` holds every answer back that long, so concurrent
    clients overlap.
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        lifetime: float = 43200.0,
        clock: Callable[[], float] = time.time,
        delay: float = 0.0,
    ) -> None:
        self.credentials = dict(credentials)
        self.project_id = project_id
        self.lifetime = lifetime
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: list[IamRequest] = []
        self._tokens: list[IssuedToken] = []
        self._failures: list[int] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeIam:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.iam = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-iam"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        assert self._thread is not None
        self._thread.join()
        server.close_connections()
        server.server_close()  # joins the handler threads (block_on_close)

    def __enter__(self) -> FakeIam:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The identity URL a client is configured with (``.../identity/v3``)."""
        assert self._server is not None, "not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/identity/v3"

    # -- what happened ----------------------------------------------------------------------

    @property
    def requests(self) -> list[IamRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def tokens(self) -> list[IssuedToken]:
        with self._lock:
            return list(self._tokens)

    @property
    def post_count(self) -> int:
        """POSTs to the tokens path, whatever they were answered."""
        return sum(1 for r in self.requests if r.method == "POST" and r.path == TOKENS_PATH)

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` token requests with ``status`` (an outage, a rate limit)."""
        with self._lock:
            self._failures.extend([status] * count)

    # -- the protocol -----------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if path.split("?", 1)[0] != TOKENS_PATH:
            return _error(404, "Not Found", "The resource could not be found.")
        if method != "POST":
            return _error(400, "Bad Request", f"{method} is not how a token is requested here.")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return _error(400, "Bad Request", "Content-Type must be application/json.")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _error(failure, "Injected", "An injected failure.")
        try:
            identity = json.loads(body)["auth"]["identity"]
            methods = identity["methods"]
            credential = identity["application_credential"]
            cred_id, secret = credential["id"], credential["secret"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "Bad Request", "Expecting to find auth.identity in the request.")
        if methods != ["application_credential"] or not all(
            isinstance(v, str) for v in (cred_id, secret)
        ):
            return _error(400, "Bad Request", "Invalid application_credential request.")
        if self.credentials.get(cred_id) != secret:
            return _error(401, "Unauthorized", "The request you have made requires authentication.")
        return self._issue(cred_id)

    def _issue(self, cred_id: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        now = self._clock()
        expires_at = now + self.lifetime
        issued = IssuedToken(
            token="gAAAAAB" + secrets.token_urlsafe(120),
            credential_id=cred_id,
            project_id=self.project_id,
            issued_at=now,
            expires_at=expires_at,
            expires_at_text=rfc3339(expires_at),
        )
        with self._lock:
            self._tokens.append(issued)
        domain = {"id": "default", "name": "kakaocloud"}
        body = {
            "token": {
                "methods": ["application_credential"],
                "user": {"id": "9d2f" + "0" * 28, "name": "tester", "domain": domain},
                "audit_ids": [secrets.token_urlsafe(16)],
                "expires_at": issued.expires_at_text,
                "issued_at": rfc3339(now),
                "project": {"id": self.project_id, "name": "kcsync-test", "domain": domain},
                "is_domain": False,
                "roles": [{"id": "1b7c" + "0" * 28, "name": "member"}],
                "application_credential": {"id": cred_id, "name": "kcsync", "restricted": True},
                "catalog": [],
            }
        }
        return 201, {"X-Subject-Token": issued.token}, body

    def _record(self, request: IamRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _error(status: int, title: str, message: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return status, {}, {"error": {"code": status, "title": title, "message": message}}


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    iam: FakeIam

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they can be joined."""
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        iam = self.server.iam
        headers = dict(self.headers.items())
        length = self.headers.get("Content-Length")
        if length is None and self.command in ("POST", "PUT", "PATCH"):
            status, extra, payload = _error(400, "Bad Request", "Content-Length is required.")
            body = b""
        else:
            body = self.rfile.read(min(int(length or 0), _MAX_BODY))
            status, extra, payload = iam._answer(self.command, self.path, headers, body)
        iam._record(IamRequest(self.command, self.path, headers, body, status))
        if iam.delay:
            iam._stopping.wait(iam.delay)
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
