"""A prefix's listing, in name order, fetched as several key ranges at once.

list_plan decides the ranges from the index; here each range gets a thread that pages
through it (ending, as every listing does, on an empty page), at most ``in_flight``
ranges at a time, and the consumer reads them one after another.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from kcsync.list_plan import SMALLEST_CAP, KeyRange, cut_every, plan_ranges, stitched
from kcsync.model import RemoteEntry
from kcsync.store.index import Index
from kcsync.swift.client import SwiftClient

IN_FLIGHT = 8
# Pages a range waiting its turn keeps ready, besides the one its thread holds. Ranges are
# cut at about an eighth of the index, so at 10,000 names (ten pages of RGW's 1000) each
# holds two pages and the empty one: with one page ready its empty page was asked for only
# when the consumer got there, and at 60 ms the eight ranges' last pages came one round
# trip after another (about half a second of a rerun's 1.5 s on RGW).
READY_PAGES = 2

PagesOf = Callable[[KeyRange], Iterable[list[RemoteEntry]]]


class _Feed:
    """One range's pages, fetched by a thread of its own.

    Without ``ahead`` the thread fetches the next page only once the consumer has taken
    this one, as reconcile.prefetched does. With it, a range waiting its turn keeps
    READY_PAGES pages ready and fetches one more: a range's last page is nearly always the
    empty one that ends it, and fetched only on the consumer's arrival those empty pages
    came one round trip after another. So a ranged listing holds at most
    (READY_PAGES + 1) * ``in_flight`` + 1 pages (one listed alone: 2), however large the
    prefix.
    """

    def __init__(self, pages: Iterable[list[RemoteEntry]], *, ahead: bool) -> None:
        self._pages = pages
        self._ready = READY_PAGES if ahead else 0
        self._slot: deque[list[RemoteEntry] | BaseException | None] = deque()
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._fetch, name="kcsync-listing", daemon=True)
        self._thread.start()

    def _hand_over(self, item: list[RemoteEntry] | BaseException | None) -> bool:
        with self._changed:
            while self._ready and len(self._slot) >= self._ready and not self._stop:
                self._changed.wait()  # enough pages wait already: this one waits in hand
            self._slot.append(item)
            self._changed.notify_all()
            while not self._ready and self._slot and not self._stop:
                self._changed.wait()
            return not self._stop

    def _fetch(self) -> None:
        try:
            for page in self._pages:
                if not self._hand_over(page):
                    return
            self._hand_over(None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._hand_over(exc)

    def entries(self) -> Iterator[RemoteEntry]:
        while True:
            with self._changed:
                while not self._slot:
                    self._changed.wait()
                item = self._slot.popleft()
                self._changed.notify_all()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            item.reverse()  # entries are let go as they are used
            while item:
                yield item.pop()

    def close(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join()


def listed(
    ranges: Sequence[KeyRange],
    pages_of: PagesOf,
    *,
    in_flight: int = IN_FLIGHT,
    ahead: bool = True,
) -> Iterator[RemoteEntry]:
    """Every entry of ``ranges`` once, in name order; up to ``in_flight`` ranges listed
    at once. Stopping early (or an error) stops and joins every range's thread."""
    feeds: deque[_Feed] = deque()
    todo = iter(ranges)

    def top_up() -> None:
        while len(feeds) < in_flight and (r := next(todo, None)) is not None:
            feeds.append(_Feed(pages_of(r), ahead=ahead))

    def per_range() -> Iterator[Iterator[RemoteEntry]]:
        top_up()
        while feeds:
            yield feeds[0].entries()
            feeds.popleft().close()
            top_up()

    try:
        yield from stitched(per_range(), lambda e: e.name)
    finally:
        for feed in feeds:
            feed.close()


def list_prefix(
    client: SwiftClient,
    container: str,
    prefix: str,
    index: Index | None,
    *,
    page_size: int,
    in_flight: int = IN_FLIGHT,
) -> Iterator[RemoteEntry]:
    """The listing under ``prefix``, cut where the index says last run's names were.

    Without an index (or with few names in it: a first run) it is one range, listed as it
    always was, a page fetched ahead.
    """
    every = None if index is None else cut_every(index.count(prefix), page_size, in_flight)
    cuts = [] if index is None or every is None else index.cuts(prefix, every)
    ranges = plan_ranges(cuts)
    # Ranges listed at once each hold a page and the one fetched ahead: at Swift's 10,000
    # names a page that would be 17 pages (about 70 MB) on a large prefix, where one
    # listing holds two. Pages of SMALLEST_CAP keep the memory of a rerun flat.
    size = page_size if len(ranges) == 1 else min(page_size, SMALLEST_CAP)

    def pages_of(r: KeyRange) -> Iterator[list[RemoteEntry]]:
        return client.list_pages(
            container,
            prefix=prefix,
            marker=r.marker,
            end_marker=r.end_marker,
            page_size=size,
        )

    return listed(ranges, pages_of, in_flight=in_flight, ahead=len(ranges) > 1)
