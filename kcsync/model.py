"""The entries a sync compares: a local file, a listing entry, and what we last uploaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# md5 of zero bytes: what RGW lists as the hash of every SLO manifest, and what
# both servers list for a DLO manifest (and for a genuinely empty object).
EMPTY_MD5 = hashlib.md5(b"").hexdigest()


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
    unchanged is not read again.
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

    @property
    def holds_slo_digest(self) -> bool:
        """Recorded by identity ``slo_etag`` at ``segment_size`` (kcsync's own SLO), not by
        a whole-file MD5."""
        return not self.md5 and bool(self.slo_etag) and self.segment_size > 1

    def stat_matches(self, local: LocalEntry) -> bool:
        return (
            self.size == local.size
            and self.mtime_ns == local.mtime_ns
            and self.inode == local.inode
            and self.ctime_ns == local.ctime_ns
        )


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
