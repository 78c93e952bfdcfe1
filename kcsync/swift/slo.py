"""Static Large Object arithmetic: segment sizes, names and the manifest. Pure, no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class SegmentPlan:
    segment_size: int
    count: int

    def ranges(self, total: int) -> list[tuple[int, int]]:
        """(offset, length) of each segment; the last one may be short."""
        return [
            (i * self.segment_size, min(self.segment_size, total - i * self.segment_size))
            for i in range(self.count)
        ]


def uniform_ranges(total: int, segment_size: int) -> list[tuple[int, int]]:
    """The ranges of a ``total``-byte file cut at ``segment_size``, as kcsync cuts its SLOs."""
    return SegmentPlan(segment_size, math.ceil(total / segment_size)).ranges(total)


class SegmentationError(ValueError):
    pass


def plan_segments(
    total: int, wanted: int, *, max_segments: int, max_segment_size: int, min_segment_size: int = 1
) -> SegmentPlan:
    """Segment size for a file: the configured one, grown when the server's limits demand.

    Servers cap the number of segments in a manifest (Swift/RGW/KakaoCloud: 1000) and the
    size of one object (5 GiB); a big file with a small configured segment size would
    otherwise be refused only after all its segments were sent.
    """
    if total <= 0:
        raise SegmentationError("an empty file is never a large object")
    size = max(wanted, min_segment_size)
    if math.ceil(total / size) > max_segments:
        # Round up to whole MiB so the names stay stable across small size changes.
        size = math.ceil(math.ceil(total / max_segments) / MIB) * MIB
    if size > max_segment_size:
        raise SegmentationError(
            f"{total} bytes need segments of {size} bytes, above the server's "
            f"limit of {max_segment_size} per object"
        )
    return SegmentPlan(segment_size=size, count=math.ceil(total / size))


def format_mtime_meta(mtime_ns: int) -> str:
    """X-Object-Meta-Mtime: float seconds with all nine decimals (negative before 1970:
    bad camera clocks exist). The swift CLI reads it as
    a float; rclone compares nanoseconds and, given fewer digits, rewrites the metadata of
    every object on its first sync."""
    sign = "-" if mtime_ns < 0 else ""
    seconds, rest = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{sign}{seconds}.{rest:09d}"


def parse_mtime_ns(text: str) -> int | None:
    """Nanoseconds from an X-Object-Meta-Mtime value, exactly (no float rounding)."""
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    return sign * (int(whole) * 1_000_000_000 + int((frac + "000000000")[:9]))


def format_mtime(mtime_ns: int) -> str:
    """Float seconds with microseconds: the mtime part of segment names (the swift CLI's
    layout). Truncated, not rounded, from the nanosecond form."""
    return format_mtime_meta(mtime_ns)[:-3]


def segment_prefix(name: str, mtime_ns: int, size: int, segment_size: int) -> str:
    """Segments of one version of a file share this prefix (the swift CLI's layout).

    Deterministic from path, mtime, size and segment size, so a restarted upload finds the
    segments it already sent, and a new version never overwrites the old one's segments
    while the old manifest is still the visible object.
    """
    return f"{name}/{format_mtime(mtime_ns)}/{size}/{segment_size}/"


def segment_name(prefix: str, index: int) -> str:
    return f"{prefix}{index:08d}"


_SEGMENT_TAIL = re.compile(r"^-?\d+(?:\.\d+)?/\d+/\d+/\d{8}$")


def is_segment_of(name: str, segment: str) -> bool:
    """Whether ``segment`` is a segment of object ``name`` in the layout above.

    The tail must be exactly mtime/size/segment_size/index: the segments of another object
    whose name merely starts with ``name/`` (such as ``a/b`` for ``a``) do not match.
    """
    head = f"{name}/"
    return segment.startswith(head) and bool(_SEGMENT_TAIL.match(segment[len(head) :]))


def slo_etag(segment_md5s: list[str]) -> str:
    """The Etag both servers give an SLO: md5 of the concatenated hex segment MD5s."""
    return hashlib.md5("".join(segment_md5s).encode("ascii")).hexdigest()


def manifest_body(segments_container: str, segments: list[tuple[str, str, int]]) -> bytes:
    """Manifest JSON for ``?multipart-manifest=put``.

    Paths start with "/" and carry etag and size_bytes: Swift verifies both, and RGW refuses
    null values (DESIGN §5).
    """
    entries = [
        {"path": f"/{segments_container}/{name}", "etag": etag, "size_bytes": size}
        for name, etag, size in segments
    ]
    return json.dumps(entries, separators=(",", ":")).encode("utf-8")
