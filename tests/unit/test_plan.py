"""plan.py: the pure decisions, one table row per situation."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from kcsync.model import (
    EMPTY_MD5,
    RACY_WINDOW_NS,
    IndexEntry,
    LocalEntry,
    ObjectFacts,
    RemoteEntry,
    RemoteSignature,
)
from kcsync.plan import MTIME_TOLERANCE, Action, decide, needs_head, resolve, use_slo

MD5 = hashlib.md5(b"content").hexdigest()
OTHER_MD5 = hashlib.md5(b"other").hexdigest()
SLO_ETAG = hashlib.md5(b"segments").hexdigest()
SIZE = 7
MTIME_NS = 1_700_000_000_123_456_789

LOCAL = LocalEntry(
    key="p/a.txt", path="/data/a.txt", size=SIZE, mtime_ns=MTIME_NS, inode=42, ctime_ns=MTIME_NS
)
PLAIN = RemoteEntry("p/a.txt", MD5, SIZE, "2024-01-01T00:00:00.000000")
PLAIN_OTHER = RemoteEntry("p/a.txt", OTHER_MD5, SIZE, "2024-01-02T00:00:00.000000")
PLAIN_BIGGER = RemoteEntry("p/a.txt", OTHER_MD5, SIZE + 1, "2024-01-02T00:00:00.000000")
# Swift lists an SLO with md5 of its stored manifest and the real size, plus slo_etag.
SWIFT_SLO = RemoteEntry("p/a.txt", OTHER_MD5, SIZE, "2024-01-01T00:00:00.000000", None, SLO_ETAG)
# RGW lists an SLO with the empty-string hash and the manifest length as bytes.
RGW_SLO = RemoteEntry("p/a.txt", EMPTY_MD5, 300, "2024-01-01T00:00:00.000Z")
DLO = RemoteEntry("p/a.txt", EMPTY_MD5, 0, "2024-01-01T00:00:00.000Z")

INDEX = IndexEntry(
    key="p/a.txt",
    size=SIZE,
    mtime_ns=MTIME_NS,
    inode=42,
    ctime_ns=MTIME_NS,
    md5=MD5,
    segment_size=0,
    slo_etag=None,
    remote=RemoteSignature(MD5, SIZE, None),
    verified_ns=MTIME_NS + 60 * 10**9,  # read a minute after the file was last written
)
# Uploaded half a second after the write: a rewrite in the same tick keeps every stat field.
RACY = dataclasses.replace(INDEX, verified_ns=MTIME_NS + 500_000_000)
# cp -p: mtime set a day back, but ctime says the content arrived just before the upload.
COPIED = dataclasses.replace(LOCAL, mtime_ns=MTIME_NS - 86_400 * 10**9)
COPIED_RACY = dataclasses.replace(RACY, mtime_ns=COPIED.mtime_ns)
# The file was touched since it was indexed (mtime and ctime moved).
TOUCHED = dataclasses.replace(LOCAL, mtime_ns=MTIME_NS + 10**9, ctime_ns=MTIME_NS + 10**9)
# Indexed while the object was an SLO; the bucket now lists a plain object of the same content.
INDEX_WAS_SLO = dataclasses.replace(
    INDEX, segment_size=4, slo_etag=SLO_ETAG, remote=RemoteSignature(OTHER_MD5, 300, "old")
)
INDEX_SWIFT_SLO = dataclasses.replace(
    INDEX, remote=RemoteSignature(SWIFT_SLO.hash, SWIFT_SLO.bytes, SWIFT_SLO.last_modified)
)


@pytest.mark.parametrize(
    ("local", "remote", "index", "mirror", "action", "reason"),
    [
        (None, None, None, True, Action.FORGET, "gone locally and remotely"),
        (None, None, INDEX, True, Action.FORGET, "gone locally and remotely"),
        (None, PLAIN, INDEX, True, Action.DELETE, "file removed"),
        (None, PLAIN, None, True, Action.DELETE, "no such local file"),
        (None, PLAIN, INDEX, False, Action.FORGET, "file removed; keep mode leaves the object"),
        (None, PLAIN, None, False, Action.SKIP, "keep mode"),
        (LOCAL, None, INDEX, True, Action.UPLOAD, "missing from the bucket"),
        (LOCAL, None, None, True, Action.UPLOAD, "new file"),
        (LOCAL, None, None, False, Action.UPLOAD, "new file"),
        (LOCAL, PLAIN, INDEX, True, Action.SKIP, "unchanged"),
        (LOCAL, PLAIN, INDEX, False, Action.SKIP, "unchanged"),
        (LOCAL, SWIFT_SLO, INDEX_SWIFT_SLO, True, Action.SKIP, "unchanged"),
        (
            LOCAL,
            PLAIN,
            INDEX_WAS_SLO,
            True,
            Action.ADOPT,
            "same content under a new listing signature",
        ),
        (LOCAL, PLAIN_OTHER, INDEX, True, Action.CHECK, "object changed in the bucket"),
        (LOCAL, PLAIN_BIGGER, INDEX, True, Action.CHECK, "object changed in the bucket"),
        (LOCAL, SWIFT_SLO, INDEX, True, Action.CHECK, "object changed in the bucket"),
        (LOCAL, RGW_SLO, INDEX, True, Action.CHECK, "object changed in the bucket"),
        (TOUCHED, PLAIN_BIGGER, INDEX, True, Action.UPLOAD, "size differs"),
        (LOCAL, PLAIN_BIGGER, None, True, Action.UPLOAD, "differs from the bucket"),
        (TOUCHED, PLAIN, INDEX, True, Action.CHECK, "file changed"),
        (LOCAL, PLAIN, None, True, Action.CHECK, "not in the index"),
        # Manifest sizes in a listing say nothing about the content: never upload on them.
        (LOCAL, RGW_SLO, None, True, Action.CHECK, "not in the index"),
        (TOUCHED, RGW_SLO, INDEX, True, Action.CHECK, "file changed"),
        (LOCAL, DLO, None, True, Action.CHECK, "not in the index"),
        (LOCAL, SWIFT_SLO, None, True, Action.CHECK, "not in the index"),
    ],
    ids=[
        "gone-both-no-index",
        "gone-both-indexed",
        "mirror-deletes-removed-file",
        "mirror-deletes-foreign-object",
        "keep-forgets-removed-file",
        "keep-leaves-foreign-object",
        "missing-remote-indexed",
        "new-file",
        "new-file-keep-mode",
        "unchanged-plain",
        "unchanged-plain-keep-mode",
        "unchanged-swift-slo",
        "adopt-plain-after-slo",
        "remote-plain-changed",
        "remote-plain-size-changed",
        "remote-became-swift-slo",
        "remote-became-rgw-slo",
        "touched-and-size-differs",
        "unindexed-size-differs",
        "touched-same-size",
        "unindexed-same-size",
        "unindexed-rgw-slo-size-mismatch",
        "touched-rgw-slo",
        "unindexed-dlo",
        "unindexed-swift-slo",
    ],
)
def test_decide(local, remote, index, mirror, action, reason):
    decision = decide(local, remote, index, mirror=mirror)
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize(
    ("local", "remote", "index", "action", "reason"),
    [
        (LOCAL, PLAIN, RACY, Action.CHECK, "stat too recent to trust"),
        (
            LOCAL,
            SWIFT_SLO,
            dataclasses.replace(INDEX_SWIFT_SLO, verified_ns=RACY.verified_ns),
            Action.CHECK,
            "stat too recent to trust",
        ),
        # The listing alone would adopt; a racy stat cannot vouch that the file is index.md5.
        (
            LOCAL,
            PLAIN,
            dataclasses.replace(INDEX_WAS_SLO, verified_ns=RACY.verified_ns),
            Action.CHECK,
            "stat too recent to trust",
        ),
        (LOCAL, PLAIN_OTHER, RACY, Action.CHECK, "stat too recent to trust"),
        (LOCAL, PLAIN_BIGGER, RACY, Action.UPLOAD, "size differs"),
        (TOUCHED, PLAIN, RACY, Action.CHECK, "file changed"),
        # Recorded before the file's timestamps (clock skew, touch -d into the future).
        (
            LOCAL,
            PLAIN,
            dataclasses.replace(INDEX, verified_ns=MTIME_NS - 10**9),
            Action.CHECK,
            "stat too recent to trust",
        ),
        # cp -p: an old mtime, but ctime says the content arrived just before the read.
        (COPIED, PLAIN, COPIED_RACY, Action.CHECK, "stat too recent to trust"),
        # Re-verified outside the window (or written before verified_ns existed): cheap again.
        (
            LOCAL,
            PLAIN,
            dataclasses.replace(RACY, verified_ns=MTIME_NS + RACY_WINDOW_NS),
            Action.SKIP,
            "unchanged",
        ),
        (LOCAL, PLAIN, dataclasses.replace(RACY, verified_ns=0), Action.SKIP, "unchanged"),
    ],
    ids=[
        "racy-plain",
        "racy-swift-slo",
        "racy-no-adopt-from-listing",
        "racy-remote-changed",
        "racy-size-differs",
        "racy-and-touched",
        "verified-before-mtime",
        "racy-by-ctime-mtime-set-back",
        "settled-at-window-edge",
        "legacy-row",
    ],
)
def test_decide_racy_entry_is_hashed_not_skipped(local, remote, index, action, reason):
    decision = decide(local, remote, index, mirror=True)
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize(
    "changed",
    [{"size": SIZE + 1}, {"mtime_ns": MTIME_NS + 1}, {"inode": 43}, {"ctime_ns": MTIME_NS + 1}],
    ids=["size", "mtime_ns", "inode", "ctime_ns"],
)
def test_decide_any_stat_change_defeats_the_hash_cache(changed):
    # The remote still matches the index; only the local stat moved.
    local = dataclasses.replace(LOCAL, **changed)
    decision = decide(local, PLAIN, INDEX, mirror=True)
    assert decision.action is not Action.SKIP
    assert decision.action in (Action.CHECK, Action.UPLOAD)


def test_decide_signature_with_last_modified_must_match_it():
    index = dataclasses.replace(INDEX, remote=RemoteSignature(MD5, SIZE, "2023-12-31T00:00:00"))
    # Same hash and bytes, later last_modified: the object was rewritten with same content.
    decision = decide(LOCAL, PLAIN, index, mirror=True)
    assert decision.action is Action.ADOPT


@pytest.mark.parametrize(
    ("remote", "local_size", "expected"),
    [
        (PLAIN, SIZE, False),
        (PLAIN_BIGGER, SIZE, False),
        (SWIFT_SLO, SIZE, True),
        (RGW_SLO, SIZE, True),
        (DLO, SIZE, True),
        (DLO, 0, True),  # a real empty object looks like a DLO: a HEAD must tell
    ],
    ids=["plain", "plain-other-size", "swift-slo", "rgw-slo", "dlo", "empty-object"],
)
def test_needs_head(remote, local_size, expected):
    assert needs_head(remote, dataclasses.replace(LOCAL, size=local_size)) is expected


def facts(**changes):
    base = ObjectFacts(
        size=SIZE,
        etag=SLO_ETAG,
        mtime=LOCAL.mtime,
        md5=None,
        segment_size=None,
        is_slo=True,
        dlo_manifest=None,
    )
    return dataclasses.replace(base, **changes)


EMPTY_LOCAL = dataclasses.replace(LOCAL, size=0)


@pytest.mark.parametrize(
    ("local", "local_md5", "remote", "head", "segments_match", "strict", "action", "reason"),
    [
        (LOCAL, MD5, PLAIN, None, None, False, Action.ADOPT, "same content"),
        (LOCAL, MD5, PLAIN, None, None, True, Action.ADOPT, "same content"),
        (LOCAL, OTHER_MD5, PLAIN, None, None, False, Action.UPLOAD, "content differs"),
        (LOCAL, OTHER_MD5, PLAIN_BIGGER, None, None, False, Action.UPLOAD, "content differs"),
        (LOCAL, MD5, SWIFT_SLO, None, None, False, Action.UPLOAD, "object vanished"),
        (LOCAL, MD5, RGW_SLO, facts(size=SIZE + 1), None, False, Action.UPLOAD, "size differs"),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(size=SIZE + 1, md5=MD5),
            True,
            False,
            Action.UPLOAD,
            "size differs",
        ),
        (
            EMPTY_LOCAL,
            EMPTY_MD5,
            DLO,
            facts(size=0, mtime=None),
            None,
            True,
            Action.ADOPT,
            "both empty",
        ),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(md5=MD5, mtime=None),
            None,
            True,
            Action.ADOPT,
            "same content (kcsync metadata)",
        ),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(md5=OTHER_MD5),
            True,  # metadata outranks segment digests and mtime
            False,
            Action.UPLOAD,
            "content differs (kcsync metadata)",
        ),
        (
            LOCAL,
            MD5,
            SWIFT_SLO,
            facts(mtime=None),
            True,
            True,
            Action.ADOPT,
            "same content (segment digests)",
        ),
        (
            LOCAL,
            MD5,
            SWIFT_SLO,
            facts(),
            False,  # mtime agrees, but the digests say otherwise
            False,
            Action.UPLOAD,
            "content differs (segment digests)",
        ),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(),
            None,
            True,
            Action.UPLOAD,
            "digest not comparable; checksum mode uploads",
        ),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(),
            None,
            False,
            Action.ADOPT,
            "size and mtime agree; digest not comparable",
        ),
        (
            LOCAL,
            MD5,
            DLO,
            facts(mtime=LOCAL.mtime + MTIME_TOLERANCE / 2),
            None,
            False,
            Action.ADOPT,
            "size and mtime agree; digest not comparable",
        ),
        (
            LOCAL,
            MD5,
            DLO,
            facts(mtime=LOCAL.mtime - MTIME_TOLERANCE * 2),
            None,
            False,
            Action.UPLOAD,
            "mtime differs and digest not comparable",
        ),
        (
            LOCAL,
            MD5,
            RGW_SLO,
            facts(mtime=None),
            None,
            False,
            Action.UPLOAD,
            "mtime differs and digest not comparable",
        ),
    ],
    ids=[
        "plain-same",
        "plain-same-strict",
        "plain-differs",
        "plain-other-size",
        "manifest-vanished",
        "head-size-differs",
        "size-outranks-everything",
        "both-empty",
        "kcsync-md5-same",
        "kcsync-md5-differs",
        "segments-match",
        "segments-differ",
        "strict-no-digest",
        "mtime-agrees",
        "mtime-within-tolerance",
        "mtime-beyond-tolerance",
        "no-mtime-no-digest",
    ],
)
def test_resolve(local, local_md5, remote, head, segments_match, strict, action, reason):
    decision = resolve(local, local_md5, remote, head, segments_match=segments_match, strict=strict)
    assert (decision.action, decision.reason) == (action, reason)


SLO_DIGEST = "d" * 32


@pytest.mark.parametrize(
    ("head", "local_digest", "action", "reason"),
    [
        (facts(slo_digest=SLO_DIGEST, segment_size=4), SLO_DIGEST, Action.ADOPT,
         "same content (kcsync segment digest)"),
        (facts(slo_digest=SLO_DIGEST, segment_size=4), "e" * 32, Action.UPLOAD,
         "content differs (kcsync segment digest)"),
        # A digest never stands in for the size check, nor for an older whole-file MD5
        (facts(slo_digest=SLO_DIGEST, segment_size=4, size=SIZE + 1), SLO_DIGEST, Action.UPLOAD,
         "size differs"),
        (facts(md5=OTHER_MD5, segment_size=4), None, Action.UPLOAD,
         "content differs (kcsync metadata)"),
        # Not computed (the file was hashed whole): the whole-file metadata decides
        (facts(slo_digest=SLO_DIGEST, md5=MD5, segment_size=4), None, Action.ADOPT,
         "same content (kcsync metadata)"),
    ],
    ids=["same", "differs", "size-first", "old-kcsync-md5", "digest-not-taken"],
)  # fmt: skip
def test_resolve_by_segment_digest(head, local_digest, action, reason):
    decision = resolve(
        LOCAL, MD5, RGW_SLO, head, segments_match=None, strict=True, slo_digest=local_digest
    )
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize(
    ("size", "threshold", "expected"),
    [(0, 0, False), (99, 100, False), (100, 100, False), (101, 100, True), (5 * 2**30, 1, True)],
    ids=["empty", "below", "at-threshold", "above", "huge"],
)
def test_use_slo(size, threshold, expected):
    assert use_slo(size, threshold) is expected
