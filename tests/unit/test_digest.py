"""The SLO identity kcsync can recompute from a file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kcsync.apply import _same_content
from kcsync.localfs import hash_file, restat
from kcsync.model import IndexEntry, LocalEntry, RemoteSignature
from kcsync.swift.slo import slo_etag, uniform_ranges


def entry_for(path: Path) -> LocalEntry:
    return restat(LocalEntry(key="k", path=str(path), size=0, mtime_ns=0, inode=0, ctime_ns=0))


def indexed(local: LocalEntry, md5: str, segment_size: int, slo: str | None) -> IndexEntry:
    return IndexEntry(
        key=local.key,
        size=local.size,
        mtime_ns=local.mtime_ns - 1,  # touched since: the content must decide
        inode=local.inode,
        ctime_ns=local.ctime_ns,
        md5=md5,
        segment_size=segment_size,
        slo_etag=slo,
        remote=RemoteSignature("x", local.size, None),
        verified_ns=0,
    )


@pytest.mark.parametrize(
    ("total", "segment", "expected"),
    [(10, 4, [(0, 4), (4, 4), (8, 2)]), (8, 4, [(0, 4), (4, 4)]), (3, 4, [(0, 3)])],
    ids=["short-tail", "exact", "one"],
)
def test_uniform_ranges(total: int, segment: int, expected: list[tuple[int, int]]) -> None:
    assert uniform_ranges(total, segment) == expected


def test_range_digests_without_the_whole_file_pass(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "f"
    path.write_bytes(data)

    whole, parts = hash_file(entry_for(path), uniform_ranges(10_000, 4096), whole_md5=False)

    assert whole == ""
    assert parts == [hashlib.md5(data[i : i + 4096]).hexdigest() for i in (0, 4096, 8192)]


def test_same_content_of_an_slo_compares_segment_digests(tmp_path: Path) -> None:
    data = os.urandom(9000)
    path = tmp_path / "f"
    path.write_bytes(data)
    local = entry_for(path)
    digest = slo_etag([hashlib.md5(data[i : i + 4000]).hexdigest() for i in (0, 4000, 8000)])

    assert _same_content(local, indexed(local, "", 4000, digest)) == (True, None)
    # The same digest at another segment size is another identity
    assert _same_content(local, indexed(local, "", 3000, digest)) == (False, None)
    path.write_bytes(os.urandom(9000))
    assert _same_content(entry_for(path), indexed(local, "", 4000, digest)) == (False, None)


def test_same_content_of_a_plain_object_compares_the_md5_and_returns_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    local = entry_for(path)
    md5 = hashlib.md5(b"hello").hexdigest()

    assert _same_content(local, indexed(local, md5, 0, None)) == (True, md5)
    # An SLO adopted from another tool (layout unknown) was indexed with its whole MD5
    assert _same_content(local, indexed(local, md5, 1, "abc")) == (True, md5)
    assert _same_content(local, indexed(local, "0" * 32, 0, None)) == (False, md5)
