"""`kcsync verify`'s judgements. Pure: no I/O.

The same rules as a sync (plan.py): what the index vouches for is taken on stat and
listing alone (unless ``deep``), the rest is decided by digests. Only the words differ: a
sync would upload, verify says what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kcsync import plan
from kcsync.model import IndexEntry, LocalEntry, RemoteEntry


class Kind(Enum):
    MISSING = "missing in the bucket"
    EXTRA = "extra in the bucket"
    DIFFERS = "content differs"
    NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class Difference:
    kind: Kind
    key: str
    reason: str
    path: str = ""


CHECK = "check"  # first_look: the listing and the index cannot decide; hash and/or HEAD


def first_look(
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    index: IndexEntry | None,
    *,
    deep: bool,
) -> Difference | str | None:
    """None when the object is as it should be, a Difference, or CHECK."""
    key = local.key if local is not None else _name(remote)
    if local is None:
        return None if remote is None else Difference(Kind.EXTRA, key, "no such local file")
    if remote is None:
        return Difference(Kind.MISSING, key, "not in the bucket", local.path)
    trusted = not deep and index is not None and index.trusts(local)
    if trusted and index is not None and index.remote.matches(remote):
        return None
    if plan.needs_head(remote, local):
        return CHECK
    if remote.bytes != local.size:
        return Difference(
            Kind.DIFFERS,
            key,
            f"size {local.size} locally, {remote.bytes} in the bucket",
            local.path,
        )
    if trusted and index is not None and remote.hash == index.md5:
        return None
    return CHECK


def _name(remote: RemoteEntry | None) -> str:
    return remote.name if remote is not None else ""


def after_check(local: LocalEntry, decision: plan.Decision) -> Difference | None:
    """A resolved comparison (plan.resolve) in verify's words."""
    if decision.action is plan.Action.ADOPT:
        if "digest not comparable" in decision.reason:
            return Difference(
                Kind.NOT_COMPARABLE,
                local.key,
                "size and mtime agree, but the server shows no digest of this object's "
                "segments to compare",
                local.path,
            )
        return None
    if "digest not comparable" in decision.reason:
        return Difference(Kind.NOT_COMPARABLE, local.key, decision.reason, local.path)
    return Difference(Kind.DIFFERS, local.key, decision.reason, local.path)


def stored_segments_differ(
    stored: list[tuple[str, int, str] | None], local_md5s: list[str]
) -> str | None:
    """``--deep``: the segments the server actually stores (name, size, md5; None for one
    the manifest names but the server does not have) against the file's ranges."""
    for i, item in enumerate(stored):
        if item is None:
            return f"segment {i} is missing from the segments container"
        name, _, md5 = item
        if i >= len(local_md5s) or local_md5s[i] != md5:
            return f"segment {i} ({name}) holds other bytes than the file"
    if len(stored) != len(local_md5s):
        return f"{len(stored)} segments stored, {len(local_md5s)} expected"
    return None
