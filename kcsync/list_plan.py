"""Where to cut a prefix's listing into key ranges that can be listed at once (pure).

A listing is one round trip per page, one after another, and ends only on an empty page
(RGW caps ``limit`` at 1000 without saying so, DESIGN §5). When the index says roughly
where last run's names were, the prefix is cut into ranges listed concurrently with
``marker`` and ``end_marker``, each paged as before until its own empty page.

Both markers are exclusive on Swift and RGW (checked on both servers), so a cut at one
name would lose that name. A cut is therefore a pair of adjacent index keys ``(a, c)``:
the range before it ends at ``end_marker=c`` (so ``a`` is in it), the range after starts at
``marker=a`` (so ``c`` is in it). Every name, old or new, is in at least one range; the
only names in two are ones created since the last run strictly between ``a`` and ``c``,
and ``stitched`` drops their second copy. No name is invented (a NUL-suffixed marker would
cut exactly, and both servers accept one, but a gateway in front might not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E")

# RGW answers at most 1000 names a page whatever /info and ``limit`` say, and KakaoCloud's
# /info says 1000: plan with pages no larger than that.
SMALLEST_CAP = 1000


@dataclass(frozen=True)
class KeyRange:
    marker: str  # exclusive; "" from the start of the prefix
    end_marker: str  # exclusive; "" to the end of the prefix


WHOLE = KeyRange("", "")


def cut_every(known: int, page_size: int, in_flight: int) -> int | None:
    """Every how many index keys to cut, or None for one listing as before.

    A range costs its pages plus one empty page, in sequence. Up to one page of names is
    two round trips however it is listed, so no cut then. Otherwise about ``in_flight``
    ranges, which all start at once, but none under half a page: a range's empty page
    costs a round trip whatever its size.
    """
    page = max(1, min(page_size, SMALLEST_CAP))
    if known <= page or in_flight < 2:
        return None
    return max(page // 2, -(-known // in_flight), 2)


def plan_ranges(cuts: Iterable[tuple[str, str]]) -> list[KeyRange]:
    """The ranges between ``cuts`` (adjacent index keys ``(a, c)``, in name order).

    A cut out of order (an index that did not come back sorted) is skipped rather than
    trusted: a range whose marker is not below the next one's end could leave a gap.
    """
    ranges: list[KeyRange] = []
    marker = ""
    last_end: str | None = None
    for a, c in cuts:
        if not a < c or (last_end is not None and not (marker < a and last_end < c)):
            continue
        ranges.append(KeyRange(marker, c))
        marker, last_end = a, c
    ranges.append(KeyRange(marker, ""))
    return ranges


def in_range(name: str, prefix: str, r: KeyRange) -> bool:
    """What a server lists for ``r`` under ``prefix`` (the semantics the plan relies on)."""
    return name.startswith(prefix) and name > r.marker and (not r.end_marker or name < r.end_marker)


def stitched(per_range: Iterable[Iterable[E]], name: Callable[[E], str]) -> Iterator[E]:
    """The entries of consecutive ranges as one listing, each name once.

    Only the head of a range can repeat the tail of the one before (names created since
    the last run between a cut's two keys): those are dropped. Past that head nothing is
    dropped, so a server listing out of order still shows (merge3 raises OrderError).
    """
    last: str | None = None
    for entries in per_range:
        seam = last
        for e in entries:
            n = name(e)
            if seam is not None:
                if n <= seam:
                    continue
                seam = None
            last = n
            # Yielded without a name left holding it: a suspended generator would keep the
            # entry alive until the next one, and a merge lets entries go as it uses them.
            out = [e]
            del e
            yield out.pop()


def listing_of(names: Sequence[str], prefix: str, ranges: Sequence[KeyRange]) -> list[str]:
    """``names`` as listed range by range and stitched: for tests and benchmarks."""
    ordered = sorted(names)
    return list(
        stitched(([n for n in ordered if in_range(n, prefix, r)] for r in ranges), lambda n: n)
    )
