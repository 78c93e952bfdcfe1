"""model.py: the one rule that lets a stat stand for a file's content (IndexEntry.trusts)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from kcsync.model import RACY_WINDOW_NS, IndexEntry, LocalEntry, RemoteSignature, stat_key

MTIME_NS = 1_700_000_000_000_000_000  # a whole second: what a 1-second filesystem stores
CTIME_NS = MTIME_NS + 250_000_000

LOCAL = LocalEntry(key="k", path="/data/k", size=10, mtime_ns=MTIME_NS, inode=7, ctime_ns=CTIME_NS)
# One value per stat field that differs from LOCAL's.
CHANGES = {"size": 11, "mtime_ns": MTIME_NS + 1, "ctime_ns": CTIME_NS + 1, "inode": 8}
# When the recorded content was read, relative to the file's newest timestamp (ctime here).
VERIFIED = {
    "settled": CTIME_NS + 60 * 10**9,
    "window-edge": CTIME_NS + RACY_WINDOW_NS,
    "racy": CTIME_NS + 400_000_000,
    "racy-by-1ns": CTIME_NS + RACY_WINDOW_NS - 1,
    "before-timestamps": MTIME_NS - 10**9,  # clock skew, or a timestamp set into the future
    "legacy-0": 0,  # a row written before verified_ns existed
}
TRUSTED_WHEN_STAT_MATCHES = {"settled", "window-edge", "legacy-0"}


def indexed(local: LocalEntry, verified_ns: int) -> IndexEntry:
    return IndexEntry(
        key=local.key,
        size=local.size,
        mtime_ns=local.mtime_ns,
        inode=local.inode,
        ctime_ns=local.ctime_ns,
        md5="m",
        segment_size=0,
        slo_etag=None,
        remote=RemoteSignature("m", local.size, None),
        verified_ns=verified_ns,
    )


def _cases() -> list[pytest.ParameterSet]:
    """Every subset of changed stat fields, crossed with every verification time."""
    cases = []
    for n in range(len(CHANGES) + 1):
        for fields in itertools.combinations(CHANGES, n):
            for when, verified_ns in VERIFIED.items():
                changed = "+".join(fields) + "-changed" if fields else "same-stat"
                expected = not fields and when in TRUSTED_WHEN_STAT_MATCHES
                cases.append(pytest.param(fields, verified_ns, expected, id=f"{changed}/{when}"))
    return cases


@pytest.mark.parametrize(("fields", "verified_ns", "trusted"), _cases())
def test_trusts(fields: tuple[str, ...], verified_ns: int, trusted: bool) -> None:
    entry = indexed(LOCAL, verified_ns)
    now = dataclasses.replace(LOCAL, **{f: CHANGES[f] for f in fields})
    assert entry.trusts(now) is trusted


@pytest.mark.parametrize(
    ("mtime_ns", "ctime_ns", "verified_ns", "racy"),
    [
        # cp -p / touch -d: mtime a day back, but ctime is when the content arrived.
        (MTIME_NS - 86_400 * 10**9, MTIME_NS, MTIME_NS + 10**9, True),
        (MTIME_NS - 86_400 * 10**9, MTIME_NS, MTIME_NS + RACY_WINDOW_NS, False),
        # An mtime set into the future: racy until a read starts a window after it.
        (MTIME_NS + 10 * 10**9, MTIME_NS, MTIME_NS + 11 * 10**9, True),
        (MTIME_NS + 10 * 10**9, MTIME_NS, MTIME_NS + 10 * 10**9 + RACY_WINDOW_NS, False),
    ],
    ids=["ctime-recent-mtime-old", "ctime-settled", "mtime-future", "mtime-future-settled"],
)
def test_racy_uses_the_newer_of_mtime_and_ctime(
    mtime_ns: int, ctime_ns: int, verified_ns: int, racy: bool
) -> None:
    local = dataclasses.replace(LOCAL, mtime_ns=mtime_ns, ctime_ns=ctime_ns)
    entry = indexed(local, verified_ns)
    assert entry.racy is racy
    assert entry.trusts(local) is not racy


def test_window_covers_the_coarsest_timestamps() -> None:
    # FAT keeps mtime in 2-second steps; the window must exceed one such tick.
    assert RACY_WINDOW_NS > 2 * 10**9


def test_stat_key_is_the_four_fields() -> None:
    assert stat_key(LOCAL) == (10, MTIME_NS, CTIME_NS, 7)
    assert stat_key(indexed(LOCAL, 0)) == stat_key(LOCAL)
