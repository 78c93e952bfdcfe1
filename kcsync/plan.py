"""What to do with one path, given the local file, the listing entry and the index entry.

Pure functions only: no I/O, no clock. The rules follow DESIGN §3 and hold on OpenStack
Swift and Ceph RGW alike, whose listings disagree about large objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kcsync.model import EMPTY_MD5, IndexEntry, LocalEntry, ObjectFacts, RemoteEntry, stat_key

# swift CLI and rclone keep microseconds of mtime; filesystems may keep nanoseconds.
MTIME_TOLERANCE = 1e-3


class Action(Enum):
    SKIP = "skip"  # in sync, nothing to record
    UPLOAD = "upload"  # send the file
    CHECK = "check"  # the listing cannot decide: hash the file and/or HEAD the object
    ADOPT = "adopt"  # the object already holds this content: record it in the index
    DELETE = "delete"  # the file is gone: delete the object (mirror mode)
    FORGET = "forget"  # drop the index entry, touch nothing remote


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    index: IndexEntry | None,
    *,
    mirror: bool,
) -> Decision:
    """First pass, from the listing and the index alone (no file read, no HEAD)."""
    if local is None:
        if remote is None:
            return Decision(Action.FORGET, "gone locally and remotely")
        if mirror:
            return Decision(Action.DELETE, "file removed" if index else "no such local file")
        if index is not None:
            return Decision(Action.FORGET, "file removed; keep mode leaves the object")
        return Decision(Action.SKIP, "keep mode")
    if remote is None:
        return Decision(Action.UPLOAD, "missing from the bucket" if index else "new file")
    if index is not None and index.trusts(local):
        if index.remote.matches(remote):
            return Decision(Action.SKIP, "unchanged")
        if _plain(remote, local) and remote.hash == index.md5 and remote.bytes == index.size:
            return Decision(Action.ADOPT, "same content under a new listing signature")
        return Decision(Action.CHECK, "object changed in the bucket")
    if _plain(remote, local) and remote.bytes != local.size:
        return Decision(Action.UPLOAD, "size differs" if index else "differs from the bucket")
    if index is None:
        return Decision(Action.CHECK, "not in the index")
    if stat_key(index) == stat_key(local):
        # Same stat, recorded within a timestamp tick of it: a same-size rewrite in that
        # tick looks exactly like this, so the content must be read (IndexEntry.racy).
        return Decision(Action.CHECK, "stat too recent to trust")
    return Decision(Action.CHECK, "file changed")


def needs_head(remote: RemoteEntry, local: LocalEntry) -> bool:
    """Whether the listing entry is a manifest (or may be), so only a HEAD tells the content."""
    return not _plain(remote, local)


def resolve(
    local: LocalEntry,
    local_md5: str,
    remote: RemoteEntry,
    facts: ObjectFacts | None,
    *,
    segments_match: bool | None,
    strict: bool,
    slo_digest: str | None = None,
) -> Decision:
    """Second pass for a CHECK, once the file's MD5 (and, for manifests, a HEAD) is known.

    ``segments_match`` is whether the file's ranges hash to the segment MD5s the server
    reported for a foreign SLO or DLO; None when the server does not tell them (RGW).
    ``slo_digest`` is the MD5 of the file's range MD5s at ``facts.segment_size``, taken
    when the object is a kcsync SLO carrying its digest (then ``local_md5`` may be "").
    """
    if _plain(remote, local):
        if remote.hash == local_md5 and remote.bytes == local.size:
            return Decision(Action.ADOPT, "same content")
        return Decision(Action.UPLOAD, "content differs")
    if facts is None:
        return Decision(Action.UPLOAD, "object vanished")
    if facts.size != local.size:
        return Decision(Action.UPLOAD, "size differs")
    if facts.size == 0:
        return Decision(Action.ADOPT, "both empty")
    if facts.slo_digest is not None and slo_digest is not None:
        if facts.slo_digest == slo_digest:
            return Decision(Action.ADOPT, "same content (kcsync segment digest)")
        return Decision(Action.UPLOAD, "content differs (kcsync segment digest)")
    if facts.md5 is not None:
        if facts.md5 == local_md5:
            return Decision(Action.ADOPT, "same content (kcsync metadata)")
        return Decision(Action.UPLOAD, "content differs (kcsync metadata)")
    if segments_match is not None:
        if segments_match:
            return Decision(Action.ADOPT, "same content (segment digests)")
        return Decision(Action.UPLOAD, "content differs (segment digests)")
    if strict:
        return Decision(Action.UPLOAD, "digest not comparable; checksum mode uploads")
    if facts.mtime is not None and abs(facts.mtime - local.mtime) <= MTIME_TOLERANCE:
        return Decision(Action.ADOPT, "size and mtime agree; digest not comparable")
    return Decision(Action.UPLOAD, "mtime differs and digest not comparable")


def _plain(remote: RemoteEntry, local: LocalEntry | None = None) -> bool:
    """A listing entry whose hash is the content MD5.

    Swift marks SLOs with ``slo_etag``; RGW lists its SLOs, and both servers list DLOs,
    with the empty-string hash. That hash is also a real empty object's, so an empty-hash
    entry always gets a HEAD before it is trusted (cheap: such entries are rare).
    """
    if remote.slo_etag is not None:
        return False
    return remote.hash != EMPTY_MD5


def use_slo(size: int, threshold: int) -> bool:
    return size > threshold
