"""merge.py: the three-way sorted merge behind a reconcile."""

from __future__ import annotations

import itertools

import pytest

from kcsync.merge import OrderError, merge3


def ident(x: str) -> str:
    return x


def first(pair: tuple[str, object]) -> str:
    return pair[0]


def run(a, b, c):
    return [(k, x, y, z) for k, x, y, z in merge3(a, ident, b, ident, c, ident)]


@pytest.mark.parametrize(
    ("a", "b", "c", "expected"),
    [
        ([], [], [], []),
        (["x"], [], [], [("x", "x", None, None)]),
        ([], ["x"], [], [("x", None, "x", None)]),
        ([], [], ["x"], [("x", None, None, "x")]),
        (["x"], ["x"], ["x"], [("x", "x", "x", "x")]),
        (
            ["a", "c"],
            ["b", "c"],
            ["a", "d"],
            [
                ("a", "a", None, "a"),
                ("b", None, "b", None),
                ("c", "c", "c", None),
                ("d", None, None, "d"),
            ],
        ),
        (
            ["a", "b", "c"],
            [],
            ["z"],
            [
                ("a", "a", None, None),
                ("b", "b", None, None),
                ("c", "c", None, None),
                ("z", None, None, "z"),
            ],
        ),
        # "/" (0x2f) sorts between "." and "0": a directory's files come after "a.txt".
        (
            ["a", "a-b", "a.txt", "a/b", "a0"],
            ["a.txt", "a/b"],
            ["a0"],
            [
                ("a", "a", None, None),
                ("a-b", "a-b", None, None),
                ("a.txt", "a.txt", "a.txt", None),
                ("a/b", "a/b", "a/b", None),
                ("a0", "a0", None, "a0"),
            ],
        ),
    ],
    ids=[
        "all-empty",
        "local-only",
        "listing-only",
        "index-only",
        "all-three",
        "interleaved",
        "one-stream-long",
        "punctuation-order",
    ],
)
def test_merge3(a, b, c, expected):
    assert run(a, b, c) == expected


def test_merge3_non_ascii_follows_utf8_byte_order():
    # Servers list by UTF-8 bytes; code point order must agree, including astral planes.
    names = sorted(["z", "é", "가", "😀", "\uffff", "A", "ａ"], key=lambda s: s.encode("utf-8"))
    got = [key for key, *_ in merge3(names, ident, [], ident, names[::2], ident)]
    assert got == names
    assert got == sorted(got)


def test_merge3_yields_the_items_not_the_keys():
    local = [("a", 1), ("b", 2)]
    listing = [("b", "remote-b")]
    index = [("a", {"md5": "x"})]
    assert list(merge3(local, first, listing, first, index, first)) == [
        ("a", ("a", 1), None, ("a", {"md5": "x"})),
        ("b", ("b", 2), ("b", "remote-b"), None),
    ]


def test_merge3_is_lazy():
    # An endless stream: only what is asked for may be read (memory stays flat at 10^6 files).
    endless = (f"{i:08d}" for i in itertools.count())
    got = list(itertools.islice(merge3(endless, ident, ["00000001"], ident, [], ident), 3))
    assert got == [
        ("00000000", "00000000", None, None),
        ("00000001", "00000001", "00000001", None),
        ("00000002", "00000002", None, None),
    ]


@pytest.mark.parametrize(
    ("a", "b", "c", "stream"),
    [
        (["b", "a"], [], [], "local scan"),
        ([], ["a", "c", "b"], [], "listing"),
        ([], [], ["b", "a"], "index"),
        (["a", "a"], [], [], "local scan"),
        ([], ["x", "x"], [], "listing"),
        # Byte order, not locale or case-folded order.
        (["a", "B"], [], [], "local scan"),
        (["a.txt", "a/b", "a-b"], [], [], "local scan"),
    ],
    ids=[
        "local-descending",
        "listing-descending",
        "index-descending",
        "local-duplicate",
        "listing-duplicate",
        "case-folded-order",
        "os-walk-order",
    ],
)
def test_merge3_refuses_unsorted_streams(a, b, c, stream):
    with pytest.raises(OrderError, match=f"^{stream} out of order"):
        run(a, b, c)


def test_merge3_order_error_names_the_keys():
    with pytest.raises(OrderError) as info:
        run([], ["m", "k"], [])
    assert "'k' after 'm'" in str(info.value)


def test_merge3_yields_what_it_could_before_an_order_error():
    gen = merge3(["a", "c", "b"], ident, [], ident, [], ident)
    assert next(gen)[0] == "a"
    with pytest.raises(OrderError):
        next(gen)
