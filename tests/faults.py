"""A fault-injecting TCP proxy on loopback, put in front of a real server's port.

Each accepted client connection gets its own upstream connection. Answers flow back byte for
byte; requests are forwarded byte for byte too, but the proxy reads their framing (request line,
headers, a Content-Length or chunked body) so it can count them and act on single requests:

- ``fail_first=N``: answer the first N requests (of ``fail_methods``, default all) itself with
  ``fail_status`` (plus ``Retry-After`` when ``retry_after`` is given) and ``Connection: close``,
  after reading the whole request body, without forwarding anything. ``fail_status=None`` closes
  the connection instead of answering: a connection error after the body was sent.
- ``drop_first=N``: reset the first N connections as soon as they are accepted.
- ``delay=D``: hold each forwarded request back D seconds (a slow link).
- ``corrupt_first=N``: flip one byte in the body of the first N forwarded requests whose
  target contains ``corrupt_targets`` (damage on the way that TCP did not catch).

    with FaultProxy(server.proxy_url, fail_first=2, retry_after="0") as proxy:
        url = proxy.proxied(storage_url)
        ...
        assert proxy.requests == 3

Storage URLs from v1 auth point at the real port: rewrite them with ``proxied()`` and use a
fixed token, so that auth traffic never goes through the proxy.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

_MAX_HEAD = 64 * 1024
_CHUNK = 64 * 1024
_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class SeenRequest:
    connection: int  # index of the client connection it came on, from 0
    method: str
    target: str
    body_bytes: int  # body bytes read from the client (forwarded or drained)
    fate: str  # "forwarded", "corrupted", "answered 503", "closed", "abandoned" (mid-delay)


class _ProtocolError(Exception):
    pass


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        fail_first: int = 0,
        fail_status: int | None = 503,
        retry_after: str | None = None,
        fail_methods: Collection[str] | None = None,
        drop_first: int = 0,
        delay: float = 0.0,
        corrupt_first: int = 0,
        corrupt_targets: str = "",
    ) -> None:
        parts = urlsplit(upstream if "//" in upstream else f"http://{upstream}")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream needs a host and a port: {upstream!r}")
        self._upstream = (parts.hostname, parts.port)
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.fail_methods = {m.upper() for m in fail_methods} if fail_methods else None
        self.drop_first = drop_first
        self.delay = delay
        self.corrupt_first = corrupt_first
        self.corrupt_targets = corrupt_targets
        self._corrupted = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._seen: list[SeenRequest] = []
        self._connections = 0
        self._requests = 0
        self._faults = 0
        self._drops = 0
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, name="fault-proxy")
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and join every thread the proxy started."""
        if self._accept_thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        self._accept_thread.join(_JOIN_TIMEOUT)
        with self._lock:
            open_socks = list(self._open)
            threads = list(self._threads)
        for sock in open_socks:
            _shutdown(sock)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        assert self._listener is not None
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        alive = [t.name for t in (self._accept_thread, *threads) if t.is_alive()]
        if alive:
            raise RuntimeError(f"fault proxy threads still running: {alive}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "not started"
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def proxied(self, url: str) -> str:
        """``url`` with its scheme and host:port replaced by the proxy's."""
        parts = urlsplit(url)
        host, port = self.address
        return urlunsplit(("http", f"{host}:{port}", parts.path, parts.query, parts.fragment))

    # -- counters ---------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Client connections accepted, dropped ones included."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> int:
        """HTTP requests read from clients, whether forwarded or answered by the proxy."""
        with self._lock:
            return self._requests

    @property
    def faults(self) -> int:
        """Requests the proxy answered (or closed on) itself."""
        with self._lock:
            return self._faults

    @property
    def corrupted(self) -> int:
        """Request bodies the proxy damaged on their way upstream."""
        with self._lock:
            return self._corrupted

    @property
    def drops(self) -> int:
        with self._lock:
            return self._drops

    @property
    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    # -- the work ---------------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            if self._stopping.is_set():
                sock.close()
                raise OSError("fault proxy is stopping")
            self._open.add(sock)

    def _untrack_and_close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _shutdown(sock)
        sock.close()

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready or self._stopping.is_set():
                return
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                number = self._connections
                self._connections += 1
            try:
                self._track(client)
            except OSError:
                return
            self._spawn(self._serve, client, number, name=f"fault-proxy-conn-{number}")

    def _serve(self, client: socket.socket, number: int) -> None:
        upstream: socket.socket | None = None
        pump: threading.Thread | None = None
        try:
            if number < self.drop_first:
                with self._lock:
                    self._drops += 1
                # SO_LINGER 0: close() sends RST, an abrupt "connection reset by peer".
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with self._lock:
                    self._open.discard(client)
                client.close()
                return
            upstream = socket.create_connection(self._upstream, timeout=10)
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(upstream)
            pump = self._spawn(self._pump, upstream, client, name=f"fault-proxy-pump-{number}")
            self._relay_requests(client, upstream, number)
        except (OSError, _ProtocolError):
            pass
        finally:
            if upstream is not None:
                self._untrack_and_close(upstream)
            if pump is not None:
                pump.join(_JOIN_TIMEOUT)
            if client.fileno() != -1:
                self._untrack_and_close(client)

    def _relay_requests(self, client: socket.socket, upstream: socket.socket, number: int) -> None:
        reader = _Reader(client)
        while not self._stopping.is_set():
            head = reader.read_head()
            if head is None:  # the client closed between requests
                return
            method, target, headers = _parse_head(head)
            with self._lock:
                self._requests += 1
                fault = self._faults < self.fail_first and (
                    self.fail_methods is None or method in self.fail_methods
                )
                if fault:
                    self._faults += 1
            if fault:
                body = _pass_body(reader, headers, lambda _: None)
                if self.fail_status is None:
                    fate = "closed"
                else:
                    client.sendall(self._fault_response())
                    fate = f"answered {self.fail_status}"
                self._record(SeenRequest(number, method, target, body, fate))
                return  # the finally of _serve closes the connection: Connection: close
            if self.delay and self._stopping.wait(self.delay):
                self._record(SeenRequest(number, method, target, 0, "abandoned"))
                return
            with self._lock:
                corrupt = (
                    self._corrupted < self.corrupt_first
                    and self.corrupt_targets in target
                    and int(headers.get("content-length", "0") or 0) > 0
                )
                if corrupt:
                    self._corrupted += 1
            upstream.sendall(head)
            sink = _flip_first_byte(upstream.sendall) if corrupt else upstream.sendall
            body = _pass_body(reader, headers, sink)
            self._record(
                SeenRequest(number, method, target, body, "corrupted" if corrupt else "forwarded")
            )

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # The server closed: so does the client side, which ends _relay_requests too.
            _shutdown(dst)

    def _fault_response(self) -> bytes:
        status = self.fail_status
        assert status is not None
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:  # a non-standard code such as Swift's 498
            reason = "Injected"
        body = f"{status} {reason} (injected by the fault proxy)\n".encode()
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if self.retry_after is not None:
            lines.append(f"Retry-After: {self.retry_after}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self._seen.append(seen)


class _Reader:
    """Buffered reads from a socket, enough to find where one request ends."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def _fill(self) -> bool:
        data = self._sock.recv(_CHUNK)
        self._buf += data
        return bool(data)

    def read_head(self) -> bytes | None:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self._buf[: end + 4])
                del self._buf[: end + 4]
                return head
            if len(self._buf) > _MAX_HEAD:
                raise _ProtocolError("request head too long")
            if not self._fill():
                if self._buf.strip():
                    raise _ProtocolError("connection closed inside a request head")
                return None

    def read_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > _MAX_HEAD:
                raise _ProtocolError("line too long")
            if not self._fill():
                raise _ProtocolError("connection closed inside a chunked body")
        line = bytes(self._buf[: end + 2])
        del self._buf[: end + 2]
        return line

    def read_some(self, limit: int) -> bytes:
        if not self._buf and not self._fill():
            raise _ProtocolError("connection closed inside a body")
        data = bytes(self._buf[:limit])
        del self._buf[:limit]
        return data


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise _ProtocolError(f"bad request line {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method.upper(), target, headers


def _pass_body(reader: _Reader, headers: dict[str, str], sink: Callable[[bytes], object]) -> int:
    """Move one request body from ``reader`` to ``sink`` as it arrives; return its length."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = 0
        while True:
            line = reader.read_line()
            sink(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _ProtocolError(f"bad chunk size line {line!r}") from None
            if size == 0:
                while (trailer := reader.read_line()) != b"\r\n":
                    sink(trailer)
                sink(b"\r\n")
                return total
            total += size
            left = size + 2  # the chunk and its CRLF
            while left:
                data = reader.read_some(left)
                sink(data)
                left -= len(data)
    left = total = int(headers.get("content-length", "0") or 0)
    while left:
        data = reader.read_some(min(left, _CHUNK))
        sink(data)
        left -= len(data)
    return total


def _flip_first_byte(sink: Callable[[bytes], object]) -> Callable[[bytes], object]:
    flipped = False

    def send(data: bytes) -> object:
        nonlocal flipped
        if not flipped and data:
            flipped = True
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return sink(data)

    return send


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
