"""A network in user space: a TCP proxy that adds round-trip time and a bandwidth cap.

  python3 -m bench.netem --upstream 127.0.0.1:PORT --rtt-ms 60 [--rate-mbit 100] [--window-mib 4]

The kernel here has no netem, so the benchmark's clients reach the server through this proxy.
It prints ``port N`` once it listens, and on SIGTERM one JSON line of counters.

The model, per direction of every connection:

- every chunk read (up to 256 KiB, asyncio's read size) *departs* when the link lets it: a
  token bucket shared by all connections of that direction (no cap: at once); reading that
  connection pauses until then, so a sender feels the link as back-pressure;
- it *arrives* half an RTT after it departed, never before the chunk ahead of it (a
  connection's bytes stay in order), and is written to the other side then;
- a connection's first request bytes cannot arrive before one full RTT after the accept plus
  the half RTT: the TCP handshake a real link would have cost;
- a chunk counts against the connection's window (``--window-mib``) from when it is read
  until a full RTT after it departed (its ACK coming back), so one stream moves at most a
  window per RTT, as TCP does; reading stops while the window is full.

No per-byte Python work: chunks are passed on as the bytes objects asyncio hands over.

Upstream connections come from ``--source`` (127.0.0.2 by default), so the server's access log
tells proxied requests from direct ones (bench/measure.py counts them by client address).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
SOURCE = "127.0.0.2"  # upstream connections come from here (the server's log tells them apart)
# Slack when checking whether a chunk is due: asyncio may fire a timer this early.
_EARLY = 1e-6


@dataclass(frozen=True)
class Link:
    rtt: float  # seconds, both directions together
    rate: float = 0.0  # bytes/s per direction, shared by all connections; 0 = no cap
    window: int = 4 * MiB  # bytes a connection may have in flight per direction

    @property
    def one_way(self) -> float:
        return self.rtt / 2

    def describe(self) -> str:
        cap = f"{self.rate * 8 / 1e6:g} Mbit/s" if self.rate else "unlimited"
        return f"RTT {self.rtt * 1000:g} ms, {cap}"


class TokenBucket:
    """Bytes per second with a small burst. A reservation may overdraw it (a chunk is never
    split): the debt is paid by whoever comes next, so the long-run rate holds exactly."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def reserve(self, n: int, now: float) -> float:
        """Take ``n`` bytes at ``now``; the time at which they may leave (>= now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return now if self.tokens >= 0 else now - self.tokens / self.rate


def arrival(depart: float, one_way: float, not_before: float, previous: float) -> float:
    """When a chunk that left at ``depart`` reaches the other end: after the propagation
    delay, not before the connection is up, and never ahead of the chunk before it."""
    return max(depart + one_way, not_before, previous)


class Direction:
    """One direction of one connection: the chunks in flight, written out in order when due."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        link: Link,
        bucket: TokenBucket | None,
        not_before: float,
        stats: dict[str, int],
        key: str,
    ) -> None:
        self.loop, self.link, self.bucket = loop, link, bucket
        self.not_before, self.last = not_before, 0.0
        self.stats, self.key = stats, key
        self.queue: deque[tuple[float, bytes | None]] = deque()  # None: end of stream
        self.in_flight = 0
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.dst_full = False  # dst's write buffer is above its high-water mark
        self.held: set[str] = set()  # why reading src is paused: "link", "window"
        self.timer: asyncio.TimerHandle | None = None
        self.ended = False
        self.on_done: list[Direction] = []

    # -- the sending side --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        now = self.loop.time()
        depart = self.bucket.reserve(len(data), now) if self.bucket else now
        self.last = arrival(depart, self.link.one_way, self.not_before, self.last)
        self.queue.append((self.last, data))
        self.in_flight += len(data)
        self.stats[self.key] += len(data)
        # The window frees a full RTT after departure (the ACK); ``credit`` is scheduled
        # from the write, which happens half an RTT after departure.
        if depart > now:
            self._hold("link")
            self.loop.call_at(depart, self._release, "link")
        if self.in_flight >= self.link.window:
            self._hold("window")
        self._schedule()

    def end(self) -> None:
        """The sender closed (or lost) its side: pass that on once the data before it is out."""
        if self.ended:
            return
        self.ended = True
        now = self.loop.time()
        self.last = arrival(now, self.link.one_way, self.not_before, self.last)
        self.queue.append((self.last, None))
        self._schedule()

    def _hold(self, why: str) -> None:
        if not self.held and self.src is not None and not self.src.is_closing():
            self.src.pause_reading()
        self.held.add(why)

    def _release(self, why: str) -> None:
        self.held.discard(why)
        if not self.held and self.src is not None and not self.src.is_closing():
            self.src.resume_reading()

    def _credit(self, n: int) -> None:
        self.in_flight -= n
        if "window" in self.held and self.in_flight < self.link.window:
            self._release("window")

    # -- the receiving side ------------------------------------------------------------------

    def attach(self, dst: asyncio.Transport) -> None:
        self.dst = dst
        self._schedule()

    def full(self, full: bool) -> None:
        self.dst_full = full
        if not full:
            self._schedule()

    def _schedule(self) -> None:
        if self.timer is None and self.queue and self.dst is not None and not self.dst_full:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time() + _EARLY
        dst = self.dst
        if dst is None:  # that side is gone: nothing left to deliver to
            self.queue.clear()
            return
        while self.queue and self.queue[0][0] <= now and not self.dst_full:
            _, data = self.queue.popleft()
            if data is None:
                self._finish(dst)
                return
            dst.write(data)
            self.loop.call_later(self.link.one_way, self._credit, len(data))
        self._schedule()

    def _finish(self, dst: asyncio.Transport) -> None:
        if dst.can_write_eof() and not dst.is_closing():
            dst.write_eof()
        else:
            dst.close()
        self.queue.clear()
        for other in self.on_done:
            if other.ended and not other.queue:
                # Both directions are over: nothing more can pass either way.
                for t in (self.src, self.dst):
                    if t is not None:
                        t.close()


class Side(asyncio.Protocol):
    """One socket of a proxied connection: what it reads goes ``out``; ``inbound`` writes
    into it."""

    def __init__(self, out: Direction, inbound: Direction) -> None:
        self.out, self.inbound = out, inbound

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Room for a few chunks before back-pressure: the window is what limits a stream.
        transport.set_write_buffer_limits(high=2 * MiB)
        self.out.src = transport
        self.inbound.attach(transport)

    def data_received(self, data: bytes) -> None:
        self.out.feed(data)

    def eof_received(self) -> bool:
        self.out.end()
        return True  # keep writing the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.out.end()
        self.inbound.queue.clear()
        self.inbound.dst = None
        if self.out.dst is not None and exc is not None:
            self.out.dst.close()

    def pause_writing(self) -> None:
        self.inbound.full(True)

    def resume_writing(self) -> None:
        self.inbound.full(False)


class Proxy:
    def __init__(self, link: Link, upstream: tuple[str, int], source: str) -> None:
        self.link, self.upstream, self.source = link, upstream, source
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        burst = max(64 * 1024, link.rate * 0.005)  # 5 ms of the link, at least 64 KiB
        up, down = (TokenBucket(link.rate, burst, now) for _ in "ud") if link.rate else (None,) * 2
        self.buckets = (up, down)
        self.stats = {"connections": 0, "bytes_up": 0, "bytes_down": 0}

    def accept(self) -> Side:
        self.stats["connections"] += 1
        now = self.loop.time()
        # The handshake's round trip, then half a one for the first request bytes to arrive.
        first = now + self.link.rtt + self.link.one_way
        up = Direction(self.loop, self.link, self.buckets[0], first, self.stats, "bytes_up")
        down = Direction(self.loop, self.link, self.buckets[1], 0.0, self.stats, "bytes_down")
        up.on_done, down.on_done = [down], [up]
        client = Side(up, down)
        self.loop.create_task(self._connect(up, down, client))
        return client

    async def _connect(self, up: Direction, down: Direction, client: Side) -> None:
        host, port = self.upstream
        try:
            await self.loop.create_connection(
                lambda: Side(down, up), host, port, local_addr=(self.source, 0)
            )
        except OSError:
            if up.src is not None:
                up.src.close()


async def serve(link: Link, upstream: tuple[str, int], source: str, port: int) -> None:
    proxy = Proxy(link, upstream, source)
    server = await proxy.loop.create_server(proxy.accept, "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        proxy.loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    print(json.dumps(proxy.stats), flush=True)


# -- the harness's handle on it ----------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    port: int
    pid: int
    counters: dict[str, float] = field(default_factory=dict)  # filled in when it stops

    def cpu(self) -> float:
        """CPU seconds (user + system) the proxy has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(link: Link, upstream: tuple[str, int], log: Path) -> Iterator[Running]:
    """The proxy as a child process (its CPU is its own and visible), stopped on exit; its
    final counters are appended to ``log``."""
    argv = [sys.executable, "-m", "bench.netem", "--upstream", f"{upstream[0]}:{upstream[1]}",
            "--rtt-ms", f"{link.rtt * 1000:g}", "--rate-mbit", f"{link.rate * 8 / 1e6:g}",
            "--window-mib", f"{link.window / MiB:g}"]  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=repo)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"netem did not start: {line!r}")
        handle = Running(int(line.split()[1]), proc.pid)
        yield handle
    finally:
        with contextlib.suppress(OSError, NameError):
            handle.counters["cpu_s"] = handle.cpu()
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        with open(log, "a") as f:
            f.write(f"{link.describe()}: {out.strip()}\n")
        with contextlib.suppress(ValueError, IndexError, NameError):
            handle.counters.update(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(prog="python3 -m bench.netem", description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    p.add_argument("--rtt-ms", type=float, required=True)
    p.add_argument("--rate-mbit", type=float, default=0.0, help="per direction; 0 = no cap")
    p.add_argument("--window-mib", type=float, default=4.0, help="in flight per connection")
    p.add_argument("--source", default=SOURCE, help="address upstream connections use")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    link = Link(a.rtt_ms / 1000, a.rate_mbit * 1e6 / 8, int(a.window_mib * MiB))
    asyncio.run(serve(link, (host, int(port)), a.source, a.port))


if __name__ == "__main__":
    main()
