from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator

import pytest

from kcsync.model import RemoteEntry
from kcsync.reconcile import prefetched


def entry(name: str) -> RemoteEntry:
    return RemoteEntry(name, "h", 1, "t")


def test_yields_every_entry_of_every_page_in_order() -> None:
    pages = iter([[entry("a"), entry("b")], [entry("c")], [entry("d")]])
    assert [e.name for e in prefetched(pages)] == ["a", "b", "c", "d"]


def test_a_listing_error_reaches_the_consumer_after_the_pages_before_it() -> None:
    def pages() -> Iterator[list[RemoteEntry]]:
        yield [entry("a")]
        raise RuntimeError("server went away")

    seen = []
    with pytest.raises(RuntimeError, match="server went away"):
        for e in prefetched(pages()):
            seen.append(e.name)
    assert seen == ["a"]


def test_stopping_early_stops_the_fetch_thread() -> None:
    fetched = []

    def pages() -> Iterator[list[RemoteEntry]]:
        for i in range(1000):
            fetched.append(i)
            yield [entry(f"{i:04d}")]

    before = threading.active_count()
    it = prefetched(pages())
    assert next(it).name == "0000"
    it.close()  # what a merge that fails midway does
    assert threading.active_count() == before
    assert len(fetched) < 10  # it did not run ahead through the whole listing


class Page(list[RemoteEntry]):
    """A page that can be watched for being freed (a plain list takes no weak references)."""


class Entry(RemoteEntry):
    """An entry that can be watched for being freed (a slotted one takes no weak references)."""


def test_the_next_page_is_fetched_during_the_merge_but_no_further_ahead() -> None:
    # Memory of a rerun is bounded by the pages held at once: one being merged, one being
    # fetched. A prefetcher that ran a page further ahead would hold a third.
    n = 4
    alive: set[int] = set()
    held_when_fetching: list[int] = []
    asked = [threading.Event() for _ in range(n + 1)]

    def pages() -> Iterator[list[RemoteEntry]]:
        for p in range(n):
            held_when_fetching.append(len(alive))
            asked[p].set()
            page = Page(entry(f"{p}-{i}") for i in range(3))
            alive.add(id(page))
            weakref.finalize(page, alive.discard, id(page))
            yield page
            del page
        asked[n].set()

    consumed = []
    for e in prefetched(pages()):
        consumed.append(e.name)
        p, i = map(int, e.name.split("-"))
        if i == 0:
            assert asked[p + 1].wait(5)  # the next page comes while this one is merged
            if p + 2 <= n:
                # A prefetcher running further ahead would ask for it now; this one waits
                # until page p+1 is taken. (A negative, so a short bounded wait.)
                assert not asked[p + 2].wait(0.1)
    assert consumed == [f"{p}-{i}" for p in range(n) for i in range(3)]
    assert held_when_fetching == [0, 1, 1, 1]


def test_entries_are_let_go_as_they_are_consumed() -> None:
    names = [f"{i:03d}" for i in range(5)]
    refs: list[weakref.ref[Entry]] = []

    def pages() -> Iterator[list[RemoteEntry]]:
        page = [Entry(n, "h", 1, "t") for n in names]
        refs.extend(weakref.ref(e) for e in page)
        yield page

    it = prefetched(pages())
    first = next(it)
    second = next(it)
    assert (first.name, second.name) == ("000", "001")
    del first, second
    assert refs[0]() is None and refs[1]() is None  # merged ones are gone
    assert refs[4]() is not None  # the rest of the page is still to come
    assert [e.name for e in it] == names[2:]
