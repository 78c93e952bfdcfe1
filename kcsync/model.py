"""The entries a sync compares: a local file, a listing entry, and what we last uploaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

# md5 of zero bytes: what RGW lists as the hash of every SLO manifest, and what
# both servers list for a DLO manifest (and for a genuinely empty object).
EMPTY_MD5 = hashlib.md5(b"").hexdigest()

# How long after a file's last timestamp a read of it must have started before the stat
# may stand for the content ("racily clean", git's Documentation/technical/racy-git.txt).
# A write that lands in the same timestamp tick as the one recorded leaves size, mtime,
# ctime and inode all as they were, so only a read that began a whole tick after the
# file's timestamps can know it saw the last write. Ticks are coarse: FAT keeps mtime in
# 2 s, ext4 with 128-byte inodes (and ext3) in 1 s, and even nanosecond filesystems stamp
# files from the kernel's coarse clock, which lags the wall clock by up to a jiffy. 3 s
# covers FAT's 2 s plus that lag with room for NTP slewing; the price is one more hash of
# a file modified within 3 s of its upload, paid once.
RACY_WINDOW_NS = 3_000_000_000


class StatLike(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def ctime_ns(self) -> int: ...
    @property
    def inode(self) -> int: ...


def stat_key(entry: StatLike) -> tuple[int, int, int, int]:
    """The stat fields that say a file is the same file with the same content, as far as
    a stat can: ctime as well as mtime, since `cp -p`, `touch -d` and `rsync -t` set mtime
    back to an old value but the kernel always moves ctime forward; inode, since a file
    replaced by rename can have the old size and mtime."""
    return (entry.size, entry.mtime_ns, entry.ctime_ns, entry.inode)


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A regular file found under a synced folder."""

    key: str  # full object name: folder prefix + relative path with "/"
    path: str  # absolute path on disk
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    dev: int = 0  # st_dev; with inode, what open_file must find (0: not recorded)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass(frozen=True)
class BadEntry:
    """A file the scan found but cannot sync; reported and skipped."""

    path: str  # printable form (undecodable bytes escaped)
    reason: str
    # Object names this entry may stand for: a mirror must not delete them, since the file
    # or directory may well still exist. "" when there is no valid name (bad encoding).
    protects: str = ""
    protects_prefix: bool = False  # a whole unreadable directory
    ignored: bool = False  # not a file kcsync syncs (gate.Refused.ignored): no exit 1

    @property
    def event(self) -> str:
        """The log event and report word, the same from the scan, the watcher and a job."""
        return "ignored" if self.ignored else "skipped"


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """One entry of a JSON container listing, as both servers describe it (DESIGN §3, §5)."""

    name: str
    hash: str
    bytes: int
    last_modified: str
    content_type: str | None = None
    slo_etag: str | None = None  # Swift only: md5 of segment md5s, unquoted here

    @property
    def may_be_large_object(self) -> bool:
        """True when the listing cannot tell the content: an SLO or DLO manifest.

        Swift marks SLOs with ``slo_etag``. RGW lists SLOs with the empty-string hash and the
        manifest length as bytes; DLOs list as 0 bytes with the empty-string hash on both.
        An empty object also has that hash; callers compare with the local size to tell.
        """
        return self.slo_etag is not None or self.hash == EMPTY_MD5


@dataclass(frozen=True, slots=True)
class RemoteSignature:
    """What a listing said about an object right after we uploaded it.

    ``last_modified`` is None for plain objects: their hash is the content MD5, so hash and
    bytes already identify the content and the PUT response need not be matched to a listing.
    """

    hash: str
    bytes: int
    last_modified: str | None

    def matches(self, remote: RemoteEntry) -> bool:
        return (
            self.hash == remote.hash
            and self.bytes == remote.bytes
            and (self.last_modified is None or self.last_modified == remote.last_modified)
        )


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What kcsync last uploaded (or adopted) for one object name, and the file it came from.

    The stat fields are the hash cache: a file whose size, mtime, inode and ctime are
    unchanged is not read again, unless the entry was recorded too soon after the file's
    timestamps to vouch for its content (see ``trusts``).
    """

    key: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    # Whole-file MD5; "" for kcsync's own SLOs, whose identity is ``slo_etag`` at
    # ``segment_size`` (no whole-file pass is made for them).
    md5: str
    segment_size: int  # 0 for a plain object; 1 for an adopted SLO of unknown layout
    slo_etag: str | None  # md5 of segment md5s, for an SLO
    remote: RemoteSignature
    # Where the live segments of our own SLO are; None when unknown (an SLO adopted from
    # another tool or a lost index): then no segment of this name is ever collected.
    segment_prefix: str | None = None
    # Wall clock (time.time_ns) taken before the content read that produced ``md5`` or
    # ``slo_etag`` began. Before, not after: a write during a long read, in the tick of
    # the recorded mtime, can leave a mixed digest and an unchanged stat; only the start
    # of the read bounds when the last unseen write could have happened. 0: recorded
    # before kcsync kept it (schema 2); such rows stay trusted on a stat match as they were,
    # so an upgrade does not re-read every file. Required, so no new row forgets it.
    verified_ns: int = field(kw_only=True)

    @property
    def holds_slo_digest(self) -> bool:
        """Recorded by identity ``slo_etag`` at ``segment_size`` (kcsync's own SLO), not by
        a whole-file MD5."""
        return not self.md5 and bool(self.slo_etag) and self.segment_size > 1

    @property
    def racy(self) -> bool:
        """Recorded within RACY_WINDOW_NS of the file's own timestamps: a write right after
        the read may have kept every stat field, so the stat cannot vouch for the content.
        A timestamp ahead of the clock (skew, `touch -d` into the future) counts as racy."""
        if not self.verified_ns:
            return False  # legacy row: trusted as before the rule existed
        return self.verified_ns - max(self.mtime_ns, self.ctime_ns) < RACY_WINDOW_NS

    def trusts(self, local: LocalEntry) -> bool:
        """The one rule for "unchanged": the file still holds what this entry recorded,
        without reading it. Every shortcut that skips a read or an upload asks this."""
        return stat_key(self) == stat_key(local) and not self.racy


@dataclass(frozen=True)
class ObjectFacts:
    """What one HEAD (and, for Swift SLOs, the manifest) told about an object."""

    size: int
    etag: str  # unquoted
    mtime: float | None  # X-Object-Meta-Mtime
    md5: str | None  # kcsync's own whole-file MD5 metadata
    segment_size: int | None  # kcsync's own metadata for its SLOs
    is_slo: bool
    dlo_manifest: str | None  # "container/prefix" of a DLO's segments
    # X-Object-Meta-Mtime as stored: it named the segments of SLOs kcsync wrote before
    # upload ids (found again only to retire them once replaced)
    mtime_raw: str | None = None
    # kcsync's SLOs: MD5 of the segment MD5s at ``segment_size`` (their content identity)
    slo_digest: str | None = None
    upload_id: str | None = None  # kcsync's SLOs: the upload whose segments it references

    @property
    def ours(self) -> bool:
        """Written by kcsync: it carries one of kcsync's content digests."""
        return self.md5 is not None or self.slo_digest is not None
