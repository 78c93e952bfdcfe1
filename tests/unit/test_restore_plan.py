"""What a restore fetches and how it checks the bytes (restore_plan.py)."""

from __future__ import annotations

import hashlib
import os

import pytest

from kcsync.model import EMPTY_MD5, ObjectFacts
from kcsync.restore_plan import (
    Expected,
    Piece,
    SegmentHasher,
    check,
    expect,
    mtime_ns_of,
    pieces,
    same_as_local,
)
from kcsync.swift.slo import slo_etag


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def facts(**kw: object) -> ObjectFacts:
    base: dict[str, object] = dict(
        size=10, etag="e", mtime=None, md5=None, segment_size=None, is_slo=False, dlo_manifest=None
    )
    base.update(kw)
    return ObjectFacts(**base)  # type: ignore[arg-type]


DATA = os.urandom(10)
SEGS = [DATA[:4], DATA[4:8], DATA[8:]]
SEG_MD5S = [md5(s) for s in SEGS]


@pytest.mark.parametrize(
    ("f", "segments", "how", "verified"),
    [
        (facts(size=0, etag=EMPTY_MD5), None, "empty", True),
        (facts(etag=md5(DATA)), None, "MD5", True),
        (facts(etag=md5(DATA), md5=md5(DATA)), None, "MD5", True),
        (facts(etag=""), None, "size only: the server gave no Etag", False),
        (facts(is_slo=True, segment_size=4, etag=slo_etag(SEG_MD5S)), None,
         "kcsync segment digest", True),
        (facts(is_slo=True, etag=slo_etag(SEG_MD5S)), [(4, SEG_MD5S[0]), (4, SEG_MD5S[1]),
         (2, SEG_MD5S[2])], "segment digests", True),
        (facts(is_slo=True, etag="x"), None,
         "size only: the server does not show this SLO's segments", False),
        (facts(dlo_manifest="c/p", etag=slo_etag(SEG_MD5S)), [(4, SEG_MD5S[0]),
         (4, SEG_MD5S[1]), (2, SEG_MD5S[2])], "segment digests", True),
        (facts(dlo_manifest="c/p"), None, "size only: the DLO's segments could not be listed",
         False),
    ],
    ids=["empty", "plain", "plain+kcsync-md5", "no-etag", "kcsync-slo", "swift-manifest",
         "rgw-foreign-slo", "dlo", "dlo-unlisted"],
)  # fmt: skip
def test_expect(
    f: ObjectFacts, segments: list[tuple[int, str]] | None, how: str, verified: bool
) -> None:
    e = expect(f, segments)
    assert e.how == how
    assert e.verified is verified
    assert e.problem is None


def test_right_bytes_pass_every_kind_of_check() -> None:
    plain = expect(facts(etag=md5(DATA), md5=md5(DATA)), None)
    assert check(plain, md5(DATA), []) is None
    slo = expect(facts(is_slo=True, segment_size=4, etag=slo_etag(SEG_MD5S)), None)
    assert slo.sizes == (4, 4, 2)
    assert check(slo, None, SEG_MD5S) is None
    listed = [(4, SEG_MD5S[0]), (4, SEG_MD5S[1]), (2, SEG_MD5S[2])]
    dlo = expect(facts(dlo_manifest="c/p", etag=slo_etag(SEG_MD5S)), listed)
    assert check(dlo, None, SEG_MD5S) is None


@pytest.mark.parametrize(
    ("expected", "whole", "parts", "says"),
    [
        (Expected(10, "MD5", md5s=(("aa", "the server's Etag"),)), "bb", [], "per the server's"),
        (
            Expected(10, "MD5", md5s=(("bb", "Etag"), ("cc", "the MD5 kcsync recorded"))),
            "bb",
            [],
            "kcsync recorded",
        ),
        (Expected(10, "d", sizes=(4, 6), segment_md5s=("a", "b")), None, ["a", "x"], "segment 1"),
        (Expected(10, "d", sizes=(4, 6), combined=slo_etag(["a", "b"])), None, ["a", "x"],
         "segment digest"),
        (Expected(10, "d", problem="broken"), "x", [], "broken"),
    ],
    ids=["etag", "kcsync-md5", "one-segment", "combined", "problem"],
)  # fmt: skip
def test_wrong_bytes_are_named(
    expected: Expected, whole: str | None, parts: list[str], says: str
) -> None:
    reason = check(expected, whole, parts)
    assert reason is not None and says in reason


def test_a_kcsync_slo_whose_etag_is_not_its_recorded_digest_is_a_problem() -> None:
    e = expect(facts(is_slo=True, segment_size=4, etag="a", slo_digest="b"), None)
    assert e.problem and "manifest was replaced" in e.problem


def test_segments_that_do_not_add_up_are_a_problem() -> None:
    e = expect(facts(is_slo=True, etag="a"), [(4, "x"), (4, "y")])
    assert e.problem == "its segments do not add up to its size"


def test_listed_md5s_of_a_kcsync_slo_are_used_only_when_cut_the_same_way() -> None:
    f = facts(is_slo=True, segment_size=4, etag=slo_etag(SEG_MD5S))
    same = [(4, SEG_MD5S[0]), (4, SEG_MD5S[1]), (2, SEG_MD5S[2])]
    assert expect(f, same).segment_md5s == tuple(SEG_MD5S)
    assert expect(f, [(5, "x"), (5, "y")]).segment_md5s == ()


@pytest.mark.parametrize(
    ("size", "sizes", "chunk", "expected"),
    [
        (0, (), 100_000, [Piece(0, 0, 0)]),
        (200_000, (), 100_000, [Piece(0, 0, 100_000), Piece(1, 100_000, 100_000)]),
        (250_000, (), 100_000, [Piece(0, 0, 100_000), Piece(1, 100_000, 100_000),
                                Piece(2, 200_000, 50_000)]),
        (300_000, (100_000, 100_000, 100_000), 100_000,
         [Piece(0, 0, 100_000, (100_000,)), Piece(1, 100_000, 100_000, (100_000,)),
          Piece(2, 200_000, 100_000, (100_000,))]),
        # Small segments (swift CLI -S 1 MiB) grouped up to the chunk: fewer requests.
        (300_000, (70_000,) * 4 + (20_000,), 150_000,
         [Piece(0, 0, 140_000, (70_000, 70_000)), Piece(1, 140_000, 140_000, (70_000, 70_000)),
          Piece(2, 280_000, 20_000, (20_000,))]),
        # A segment bigger than the chunk stays whole: its MD5 needs one stream.
        (500_000, (400_000, 100_000), 100_000,
         [Piece(0, 0, 400_000, (400_000,)), Piece(1, 400_000, 100_000, (100_000,))]),
    ],
    ids=["empty", "even", "short-last", "one-per-segment", "grouped", "big-segment"],
)  # fmt: skip
def test_pieces(size: int, sizes: tuple[int, ...], chunk: int, expected: list[Piece]) -> None:
    got = pieces(size, sizes, chunk)
    assert got == expected
    assert sum(p.length for p in got) == size


def test_pieces_are_never_tiny() -> None:
    assert len(pieces(1_000_000, (), 1)) == 1_000_000 // (64 * 1024) + 1


@pytest.mark.parametrize("step", [1, 3, 4, 7, 100])
def test_segment_hasher_is_indifferent_to_chunking(step: int) -> None:
    h = SegmentHasher((4, 4, 2))
    for i in range(0, len(DATA), step):
        h.update(DATA[i : i + step])
    assert h.digests == SEG_MD5S


@pytest.mark.parametrize(
    ("raw", "ns"),
    [
        ("1600000000.123456789", 1_600_000_000_123_456_789),  # kcsync, rclone
        ("1600000000.123456", 1_600_000_000_123_456_000),  # swift CLI (%f)
        ("1600000000", 1_600_000_000_000_000_000),
        ("-1.5", -1_500_000_000),  # a camera clock before 1970
        ("1.6e9", 1_600_000_000_000_000_000),
        ("nan", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_mtime_ns_of(raw: str | None, ns: int | None) -> None:
    assert mtime_ns_of(facts(mtime_raw=raw)) == ns


def test_same_as_local_by_digest_or_by_size_and_mtime() -> None:
    plain = Expected(10, "MD5", md5s=((md5(DATA), "Etag"),))
    kw = dict(local_mtime_ns=5, remote_mtime_ns=None)
    assert same_as_local(plain, 10, md5(DATA), [], **kw)  # type: ignore[arg-type]
    assert not same_as_local(plain, 10, md5(b"x"), [], **kw)  # type: ignore[arg-type]
    assert not same_as_local(plain, 9, md5(DATA), [], **kw)  # type: ignore[arg-type]
    blind = Expected(10, "size only")
    assert same_as_local(blind, 10, None, [], local_mtime_ns=5_000_000, remote_mtime_ns=5_000_100)
    assert not same_as_local(blind, 10, None, [], local_mtime_ns=5, remote_mtime_ns=9_000_000)
    assert not same_as_local(blind, 10, None, [], local_mtime_ns=5, remote_mtime_ns=None)
