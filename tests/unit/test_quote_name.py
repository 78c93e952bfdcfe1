"""swift/client.quote_name: object names as URL paths, "/" kept, dot segments escaped."""

from __future__ import annotations

import pytest

from kcsync.swift.client import quote_name


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain/name.txt", "plain/name.txt"),
        ("a b/c%d?e#f", "a%20b/c%25d%3Fe%23f"),
        ("é/ü", "%C3%A9/%C3%BC"),
        (".hidden/x", ".hidden/x"),  # a segment starting with a dot, not a dot segment
        ("a/..b/c.", "a/..b/c."),
        ("a/./b", "a/%2E/b"),
        ("a/../b", "a/%2E%2E/b"),
        ("..", "%2E%2E"),
        ("x/.", "x/%2E"),
        ("a//b/", "a//b/"),
    ],
    ids=lambda v: repr(v),
)
def test_quote_name(name: str, quoted: str) -> None:
    assert quote_name(name) == quoted
