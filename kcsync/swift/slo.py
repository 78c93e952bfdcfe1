"""Static Large Object arithmetic: segment sizes, names and the manifest. Pure, no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass

MIB = 1024 * 1024
# Bucket names up to this many bytes are used as they are in segment names.
MAX_TAG = 64
_GROUP = re.compile(r"^([^/]+)/([0-9a-f]{32})/$")
_SEGMENT = re.compile(r"^([^/]+/[0-9a-f]{32}/)\d{8}$")


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
    """Float seconds with microseconds: the mtime part of legacy segment names (the swift
    CLI's layout). Truncated, not rounded, from the nanosecond form."""
    return format_mtime_meta(mtime_ns)[:-3]


def bucket_tag(bucket: str) -> str:
    """The part of a segment name that says which bucket's object it belongs to.

    The bucket name itself when short (every KakaoCloud bucket name is), otherwise its MD5:
    a segment name must fit the server's name limit whatever the bucket is called.
    """
    if len(bucket.encode("utf-8")) <= MAX_TAG and "/" not in bucket:
        return bucket
    return hashlib.md5(bucket.encode("utf-8")).hexdigest()


def new_upload_id() -> str:
    """A fresh identity for one SLO upload: 128 random bits, 32 hex digits."""
    return uuid.uuid4().hex


def group_prefix(tag: str, upload_id: str) -> str:
    """Where the segments of one SLO upload live: ``{bucket tag}/{upload id}/``.

    Built from the upload's recorded identity, never from the file's mtime or size, so a
    new upload can never write into the segments of the object that is live (a ``cp -p``
    copy has the same size and mtime), and the name is at most 64 + 1 + 32 + 1 + 8 bytes
    whatever the object is called (KakaoCloud takes names of up to 396 bytes).
    """
    return f"{tag}/{upload_id}/"


def upload_id_of(prefix: str) -> str | None:
    """The upload id in a group prefix of the layout above; None for the legacy layout."""
    match = _GROUP.match(prefix)
    return match.group(2) if match else None


def segment_name(prefix: str, index: int) -> str:
    return f"{prefix}{index:08d}"


def group_of(segment: str) -> str | None:
    """The group prefix of a segment named in the upload-id layout, or None."""
    match = _SEGMENT.match(segment)
    return match.group(1) if match else None


def legacy_segment_prefix(name: str, mtime_ns: int, size: int, segment_size: int) -> str:
    """Where kcsync before upload ids put the segments of one version of a file:
    ``name/mtime/size/segment_size/``. Derived from the stat, so it is only ever used to
    find the segments of an SLO written that way, never to name new ones."""
    return f"{name}/{format_mtime(mtime_ns)}/{size}/{segment_size}/"


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
