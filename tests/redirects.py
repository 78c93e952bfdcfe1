"""A scripted HTTP server on loopback that records every request it gets.

Used for redirect and auth-retry tests: one instance answers 3xx with a ``Location`` pointing
at another, and the other records what arrived (headers and body), so a test can assert that a
secret or token never reached the redirect target.

    with Recorder() as target, Recorder(answers=[(307, {"Location": target.url + "/x"})]) as hop:
        ...
        assert target.requests == []

``answers`` are used in order, one per request; the last one repeats. HTTP/1.0 (one request per
connection) keeps shutdown simple: no handler thread waits on an idle keep-alive connection.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Mapping[str, str]]
_MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def carries(self, secret: str) -> bool:
        """True when ``secret`` appears anywhere in what arrived."""
        blob = " ".join(f"{k}: {v}" for k, v in self.headers.items()) + " " + self.path
        return secret in blob or secret.encode() in self.body


class Recorder:
    def __init__(self, answers: Sequence[Answer] = ((200, {}),), body: bytes = b"") -> None:
        self._answers = list(answers)
        self._body = body
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Recorder:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.recorder = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="recorder"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        assert self._thread is not None
        self._thread.join()
        server.server_close()  # joins the handler threads (block_on_close)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def _next(self, seen: Seen) -> Answer:
        with self._lock:
            self._seen.append(seen)
            return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    recorder: Recorder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, _MAX_BODY))
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorder = self.server.recorder
        status, extra = recorder._next(Seen(self.command, self.path, headers, body))
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        payload = recorder._body if self.command != "HEAD" else b""
        self.send_header("Content-Length", str(len(recorder._body)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_COPY = _handle
