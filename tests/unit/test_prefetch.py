from __future__ import annotations

import threading
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
    it = prefetched(pages(), depth=2)
    assert next(it).name == "0000"
    it.close()  # what a merge that fails midway does
    assert threading.active_count() == before
    assert len(fetched) < 10  # it did not run ahead through the whole listing
