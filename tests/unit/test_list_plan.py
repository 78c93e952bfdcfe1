from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from kcsync.list_plan import (
    WHOLE,
    KeyRange,
    cut_every,
    in_range,
    listing_of,
    plan_ranges,
    stitched,
)
from kcsync.listing import listed
from kcsync.model import RemoteEntry


def cuts_of(index: list[str], every: int) -> list[tuple[str, str]]:
    """What Index.cuts answers: each every-th key with the key after it."""
    keys = sorted(index)
    return [(keys[i - 1], keys[i]) for i in range(every, len(keys), every)]


@pytest.mark.parametrize(
    ("known", "page", "in_flight", "every"),
    [
        pytest.param(0, 1000, 8, None, id="first-run"),
        pytest.param(1000, 1000, 8, None, id="one-page-is-two-trips-anyway"),
        pytest.param(1001, 1000, 8, 500, id="half-a-page-at-least"),
        pytest.param(10_000, 1000, 8, 1250, id="all-ranges-at-once"),
        pytest.param(10_000, 10_000, 8, 1250, id="swift-page-planned-as-rgw-cap"),
        pytest.param(10_000, 1000, 1, None, id="no-concurrency"),
        pytest.param(5, 2, 8, 2, id="tiny-pages-never-every-key"),
    ],
)
def test_cut_every(known: int, page: int, in_flight: int, every: int | None) -> None:
    assert cut_every(known, page, in_flight) == every


def test_no_cuts_is_the_whole_listing() -> None:
    assert plan_ranges([]) == [WHOLE]


def test_cuts_become_ranges_with_each_old_key_in_exactly_one() -> None:
    ranges = plan_ranges([("b", "c"), ("e", "f")])
    assert ranges == [KeyRange("", "c"), KeyRange("b", "f"), KeyRange("e", "")]
    for key in "abcdef":
        assert sum(in_range(key, "", r) for r in ranges) == 1, key


def test_cuts_out_of_order_are_skipped_not_trusted() -> None:
    ranges = plan_ranges([("b", "c"), ("a", "z"), ("c", "c"), ("d", "e")])
    assert ranges == [KeyRange("", "c"), KeyRange("b", "e"), KeyRange("d", "")]


def test_stitched_drops_only_the_repeated_head_of_a_range() -> None:
    got = list(stitched([["a", "b", "bb"], ["b", "bb", "c"], ["d"]], lambda n: n))
    assert got == ["a", "b", "bb", "c", "d"]
    # Past a range's head nothing is dropped: disorder from a server still shows.
    assert list(stitched([["a", "c"], ["d", "b"]], lambda n: n)) == ["a", "c", "d", "b"]


# Names that sort oddly: by code point (UTF-8 byte order), not by locale or length; names
# that are prefixes of others; the highest code points; another folder's prefix inside.
ODD = [
    "p/",
    "p/a",
    "p/a/",
    "p/a/b",
    "p/a0",
    "p/a\x7f",
    "p/a\u00e9",
    "p/a\uffff",
    "p/a\U0001f600",
    "p/a\U0010ffff",
    "p/Z",
    "p/ ",
    "p/sub/x",
    "p/sub0",
    "p/\u00e9t\u00e9",
    "p/\u4e2d",
    "p/~",
    "q/a",
    "p",
    "o/z",
]


def test_old_boundaries_gone_and_new_names_around_them() -> None:
    index = [f"p/{i:04d}" for i in range(0, 100, 2)]
    cuts = cuts_of(index, 5)
    gone = {a for a, _ in cuts} | {c for _, c in cuts}
    remote = [n for n in index if n not in gone]
    remote += [a + "!" for a, _ in cuts] + [a + "\U0010ffff" for a, _ in cuts] + ["p/"]
    ranges = plan_ranges(cuts)
    assert listing_of(remote, "p/", ranges) == sorted(remote)


def test_a_prefix_inside_another_folders_prefix() -> None:
    names = [f"p/{i:03d}" for i in range(30)] + [f"p/sub/{i:03d}" for i in range(30)]
    for prefix in ("p/", "p/sub/"):
        under = sorted(n for n in names if n.startswith(prefix))
        ranges = plan_ranges(cuts_of(under, 4))
        assert listing_of([*names, "q/x", "o/x"], prefix, ranges) == under


@pytest.mark.parametrize("seed", range(200))
def test_every_name_exactly_once_in_order(seed: int) -> None:
    # Property: whatever the index said and whatever the bucket holds now, the ranges
    # listed one after another and stitched are exactly the prefix's listing.
    rand = random.Random(seed)
    alphabet = ["a", "b", "/", "0", "\u00e9", "\U0001f600", "\U0010ffff", " ", "~", "\x01"]

    def name() -> str:
        return rand.choice(["p/", "p/a", "p", "q/"]) + "".join(
            rand.choice(alphabet) for _ in range(rand.randint(0, 4))
        )

    universe = sorted({name() for _ in range(rand.randint(0, 80))} | set(ODD))
    index = sorted(n for n in universe if rand.random() < 0.6 and n.startswith("p/"))
    remote = [n for n in universe if rand.random() < 0.6]
    remote += [i for i in index if rand.random() < 0.5]  # old keys, boundaries among them
    remote = sorted(set(remote))
    cuts = cuts_of(index, rand.randint(2, 6))
    if rand.random() < 0.1:
        rand.shuffle(cuts)  # an index out of order must not lose names either
    ranges = plan_ranges(cuts)
    expected = [n for n in remote if n.startswith("p/")]
    assert listing_of(remote, "p/", ranges) == expected
    # Byte order is code point order: what the servers sort by is what Python compares.
    assert expected == sorted(expected, key=lambda n: n.encode())


# -- the concurrent listing ------------------------------------------------------------------


def entries(names: list[str]) -> list[RemoteEntry]:
    return [RemoteEntry(n, "h", 1, "t") for n in names]


def test_ranges_are_listed_at_once_and_read_in_order() -> None:
    names = [f"{i:03d}" for i in range(40)]
    ranges = plan_ranges(cuts_of(names, 10))
    started: list[KeyRange] = []
    all_started = threading.Event()
    lock = threading.Lock()

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        with lock:
            started.append(r)
            if len(started) == len(ranges):
                all_started.set()
        # Each range's first page waits until every range has asked for one: a listing
        # that fetched ranges one after another would never get here (bounded wait).
        assert all_started.wait(5)
        inside = [n for n in names if in_range(n, "", r)]
        for i in range(0, len(inside), 3):
            yield entries(inside[i : i + 3])

    assert [e.name for e in listed(ranges, pages_of, in_flight=8)] == names


def test_no_more_than_in_flight_ranges_at_a_time() -> None:
    names = [f"{i:03d}" for i in range(60)]
    ranges = plan_ranges(cuts_of(names, 5))
    active = 0
    most = 0
    lock = threading.Lock()

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.01)  # let the others start, were they allowed to
        try:
            yield entries([n for n in names if in_range(n, "", r)])
        finally:
            with lock:
                active -= 1

    assert [e.name for e in listed(ranges, pages_of, in_flight=3)] == names
    assert len(ranges) == 12 and most == 3


def test_an_error_in_a_later_range_comes_after_the_ranges_before_it() -> None:
    names = [f"{i:02d}" for i in range(20)]
    ranges = plan_ranges(cuts_of(names, 5))

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        if r is ranges[2]:
            raise RuntimeError("server went away")
        yield entries([n for n in names if in_range(n, "", r)])

    seen = []
    with pytest.raises(RuntimeError, match="server went away"):
        for e in listed(ranges, pages_of):
            seen.append(e.name)
    assert seen == names[:10]


def test_stopping_early_joins_every_range_thread() -> None:
    names = [f"{i:03d}" for i in range(100)]
    ranges = plan_ranges(cuts_of(names, 10))
    before = threading.active_count()

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        for n in names:
            if in_range(n, "", r):
                yield entries([n])

    it = listed(ranges, pages_of, in_flight=4)
    assert next(it).name == "000"
    it.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("pages", [1, 2], ids=["one-page", "two-pages"])
def test_ranges_waiting_their_turn_fetch_their_empty_page_meanwhile(pages: int) -> None:
    # A range's last request is nearly always the empty page that ends it: fetched only
    # when the consumer reaches the range, those came one round trip after another. Two
    # pages is a rerun of 10,000 names on RGW (eight ranges of 1,250, pages of 1000).
    names = [f"{i:03d}" for i in range(40)]
    ranges = plan_ranges(cuts_of(names, 10))
    ended = [threading.Event() for _ in ranges]

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        inside = [n for n in names if in_range(n, "", r)]
        step = -(-len(inside) // pages)
        for i in range(0, len(inside), step):
            yield entries(inside[i : i + step])
        ended[ranges.index(r)].set()  # the empty page is being asked for

    it = listed(ranges, pages_of, in_flight=8)
    assert next(it).name == "000"
    assert all(e.wait(5) for e in ended)  # while the consumer is still in range 0
    assert [e.name for e in it] == names[1:]
