"""What a restore fetches and how it proves the bytes right. Pure: no I/O, no clock.

Every restored file is checked against what the server (or kcsync, when it wrote the
object) said about its content before it is given its real name (DESIGN §3):

- a plain object: the MD5 of the bytes equals the GET's Etag (the server's MD5 of what
  it stores) and, for kcsync's objects, the MD5 kcsync recorded at upload;
- a kcsync SLO: the MD5 of the MD5s of its ranges at the recorded segment size equals the
  SLO's Etag (md5 of the segment MD5s, on both servers);
- another tool's SLO or DLO: each segment's MD5 where the server lists them (Swift's
  stored manifest, a DLO's segment listing), and their combination against the Etag;
- an SLO another tool wrote on RGW, which keeps its manifest to itself: the size only,
  and the report says so.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from kcsync.model import EMPTY_MD5, ObjectFacts
from kcsync.swift.slo import parse_mtime_ns, slo_etag, uniform_ranges

# A piece of a large object is one ranged GET; pieces cover whole segments, so each
# segment's MD5 is taken in the piece that fetched it. Below this, a request per piece
# would cost more than the parallelism brings.
MIN_PIECE = 64 * 1024


@dataclass(frozen=True)
class Expected:
    """What the bytes of one object must hash to, and how that was learnt."""

    size: int
    how: str  # says in the report what the file was checked against
    md5s: tuple[tuple[str, str], ...] = ()  # (whole-file MD5, who says so), all must hold
    sizes: tuple[int, ...] = ()  # segment sizes (sum = size), when segments are checked
    segment_md5s: tuple[str, ...] = ()  # each segment's MD5, when the server tells
    combined: str | None = None  # MD5 of the segment MD5s: the Etag of an SLO or DLO
    problem: str | None = None  # the object contradicts itself: no bytes can be right

    @property
    def verified(self) -> bool:
        return bool(self.md5s) or self.combined is not None or bool(self.segment_md5s)

    @property
    def needs_whole_md5(self) -> bool:
        return bool(self.md5s)


def expect(facts: ObjectFacts, segments: list[tuple[int, str]] | None) -> Expected:
    """What to check the bytes of an object against, from its HEAD or GET headers and,
    for a large object kcsync did not cut, the (size, md5) of its segments where the
    server tells them (None where it does not)."""
    size = facts.size
    if size == 0:
        return Expected(0, "empty", md5s=((EMPTY_MD5, "empty object"),))
    if facts.is_slo:
        if facts.slo_digest and facts.slo_digest != facts.etag:
            return Expected(
                size,
                "kcsync segment digest",
                problem=f"the SLO's Etag {facts.etag} is not the segment digest kcsync "
                f"recorded ({facts.slo_digest}): its manifest was replaced behind kcsync's back",
            )
        if facts.segment_size:
            listed = _md5s_if_uniform(segments, size, facts.segment_size)
            sizes = tuple(n for _, n in uniform_ranges(size, facts.segment_size))
            return Expected(
                size, "kcsync segment digest", sizes=sizes, segment_md5s=listed, combined=facts.etag
            )
    if (facts.is_slo or facts.dlo_manifest is not None) and segments is not None:
        if sum(n for n, _ in segments) != size:
            return Expected(
                size, "segment digests", problem="its segments do not add up to its size"
            )
        return Expected(
            size,
            "segment digests",
            sizes=tuple(n for n, _ in segments),
            segment_md5s=tuple(h for _, h in segments),
            combined=facts.etag or None,
        )
    if facts.is_slo:
        return Expected(size, "size only: the server does not show this SLO's segments")
    if facts.dlo_manifest is not None:
        return Expected(size, "size only: the DLO's segments could not be listed")
    md5s = [(facts.etag, "the server's Etag")] if facts.etag else []
    if facts.md5:
        md5s.append((facts.md5, "the MD5 kcsync recorded at upload"))
    if not md5s:
        return Expected(size, "size only: the server gave no Etag")
    return Expected(size, "MD5", md5s=tuple(md5s))


def _md5s_if_uniform(
    segments: list[tuple[int, str]] | None, size: int, segment_size: int
) -> tuple[str, ...]:
    """The listed segment MD5s when they are cut exactly at ``segment_size``."""
    if segments is None:
        return ()
    if [n for n, _ in segments] != [n for _, n in uniform_ranges(size, segment_size)]:
        return ()
    return tuple(h for _, h in segments)


def check(expected: Expected, whole_md5: str | None, segment_md5s: list[str]) -> str | None:
    """Why the bytes are wrong, or None when every known digest holds."""
    if expected.problem:
        return expected.problem
    for want, who in expected.md5s:
        if whole_md5 != want:
            return f"MD5 {whole_md5} of the bytes received, {want} per {who}"
    if expected.segment_md5s:
        for i, (got, want) in enumerate(zip(segment_md5s, expected.segment_md5s, strict=True)):
            if got != want:
                return f"segment {i}: MD5 {got} of the bytes received, the server lists {want}"
    if (
        expected.combined is not None
        and segment_md5s
        and slo_etag(segment_md5s) != (expected.combined)
    ):
        return (
            f"segment digest {slo_etag(segment_md5s)} of the bytes received, "
            f"Etag {expected.combined}"
        )
    return None


@dataclass(frozen=True, slots=True)
class Piece:
    """One ranged GET of a large object: ``sizes`` are the segments it covers (each
    hashed on its own); empty when no segment is checked."""

    index: int
    offset: int
    length: int
    sizes: tuple[int, ...] = ()


def pieces(size: int, sizes: tuple[int, ...], chunk: int) -> list[Piece]:
    """The ranged GETs for a large object: whole segments grouped up to about ``chunk``
    bytes (a segment larger than ``chunk`` stays one piece: its MD5 needs one stream),
    or plain ``chunk``-sized ranges when no segment is checked."""
    chunk = max(chunk, MIN_PIECE)
    out: list[Piece] = []
    if not sizes:
        count = max(1, math.ceil(size / chunk))
        for i in range(count):
            offset = i * chunk
            out.append(Piece(i, offset, min(chunk, size - offset)))
        return out
    offset, group = 0, list[int]()
    for n in sizes:
        if group and sum(group) + n > chunk:
            out.append(Piece(len(out), offset, sum(group), tuple(group)))
            offset += sum(group)
            group = []
        group.append(n)
    if group:
        out.append(Piece(len(out), offset, sum(group), tuple(group)))
    return out


class SegmentHasher:
    """MD5s of consecutive segments of a byte stream, as it is fed in any chunking."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self._sizes = list(sizes)
        self._i = 0
        self._left = sizes[0] if sizes else 0
        self._md5 = hashlib.md5()
        self.digests: list[str] = []

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view and self._i < len(self._sizes):
            take = view[: self._left]
            self._md5.update(take)
            self._left -= len(take)
            view = view[len(take) :]
            if self._left == 0:
                self.digests.append(self._md5.hexdigest())
                self._i += 1
                self._md5 = hashlib.md5()
                self._left = self._sizes[self._i] if self._i < len(self._sizes) else 0


def mtime_ns_of(facts: ObjectFacts) -> int | None:
    """The file's mtime from X-Object-Meta-Mtime, exactly: kcsync writes nine decimals,
    rclone nine, the swift CLI six (``%f``); anything else float-like is accepted too."""
    raw = (facts.mtime_raw or "").strip()
    if not raw:
        return None
    exact = parse_mtime_ns(raw)
    if exact is not None:
        return exact
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return round(value * 1e9)


def same_as_local(
    expected: Expected,
    local_size: int,
    whole_md5: str | None,
    segment_md5s: list[str],
    *,
    local_mtime_ns: int,
    remote_mtime_ns: int | None,
) -> bool:
    """Whether an existing local file already holds the object (then it is kept as it
    is). Without a digest to compare, equal size and mtime (to the millisecond: the
    swift CLI keeps microseconds) are taken as the same, as ``kcsync sync`` does."""
    if local_size != expected.size or expected.problem:
        return False
    if expected.verified:
        return check(expected, whole_md5, segment_md5s) is None
    return remote_mtime_ns is not None and abs(local_mtime_ns - remote_mtime_ns) <= 1_000_000
