"""A sorted merge of the three streams a reconcile compares: local scan, listing, index."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


class OrderError(RuntimeError):
    """A stream was not in name order: matching would pair the wrong entries, so stop."""


class _Cursor(Generic[T]):
    def __init__(self, items: Iterable[T], key: Callable[[T], str], what: str) -> None:
        self._it = iter(items)
        self._key = key
        self._what = what
        self.item: T | None = None
        self.current: str | None = None
        self.advance()

    def advance(self) -> None:
        previous = self.current
        self.item = next(self._it, None)
        self.current = None if self.item is None else self._key(self.item)
        if previous is not None and self.current is not None and self.current <= previous:
            raise OrderError(f"{self._what} out of order: {self.current!r} after {previous!r}")

    def take(self, key: str) -> T | None:
        if self.current == key:
            item = self.item
            self.advance()
            return item
        return None


def merge3(
    a: Iterable[A],
    a_key: Callable[[A], str],
    b: Iterable[B],
    b_key: Callable[[B], str],
    c: Iterable[C],
    c_key: Callable[[C], str],
) -> Iterator[tuple[str, A | None, B | None, C | None]]:
    """Yield (key, a, b, c) for every key in any stream, in key order, each stream lazily.

    Python compares str by code point, which is the UTF-8 byte order servers list in.
    """
    ca, cb, cc = (
        _Cursor(a, a_key, "local scan"),
        _Cursor(b, b_key, "listing"),
        _Cursor(c, c_key, "index"),
    )
    while True:
        keys = [k for k in (ca.current, cb.current, cc.current) if k is not None]
        if not keys:
            return
        key = min(keys)
        yield key, ca.take(key), cb.take(key), cc.take(key)
