"""store/segments.py: the ledger of segment groups kcsync wrote."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcsync.model import LocalEntry
from kcsync.store.db import Database
from kcsync.store.segments import ACTIVE, LIVE, RETIRED, SegmentLedger

IDS = (f"{i:032x}" for i in itertools.count(1))


def new_id() -> str:
    return next(IDS)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "kcsync.db")
    yield database
    database.close()


def entry(**changes: int) -> LocalEntry:
    fields = {"size": 100, "mtime_ns": 5, "inode": 7, "ctime_ns": 9, **changes}
    return LocalEntry("files/a.bin", "/data/a.bin", **fields)


def states(ledger: SegmentLedger) -> dict[str, str]:
    return {g.prefix: g.state for g in ledger.groups("files/a.bin")}


def test_same_file_version_resumes_its_group(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    first, resumed = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    again, resumed_again = ledger.begin(entry(), 10, now=2.0, new_id=new_id)
    assert (resumed, resumed_again) == (False, True)
    assert again == first and first.startswith("b/")


@pytest.mark.parametrize(
    "change",
    [{"size": 101}, {"mtime_ns": 6}, {"ctime_ns": 10}, {"inode": 8}],
    ids=["size", "mtime", "ctime", "inode"],
)
def test_any_other_version_gets_a_new_group_and_retires_the_old(
    db: Database, change: dict[str, int]
) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    old, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    new, resumed = ledger.begin(entry(**change), 10, now=2.0, new_id=new_id)
    assert not resumed and new != old
    assert states(ledger) == {old: RETIRED, new: ACTIVE}


def test_another_segment_size_is_another_group(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    old, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    new, resumed = ledger.begin(entry(), 20, now=2.0, new_id=new_id)
    assert not resumed and new != old


def test_settle_marks_live_and_retires_the_rest_including_legacy(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    old, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    ledger.settle("files/a.bin", old, now=1.0)
    new, _ = ledger.begin(entry(size=200), 10, now=2.0, new_id=new_id)
    legacy = "files/a.bin/1.000000/100/10/"

    retired = ledger.settle("files/a.bin", new, also_retire=[legacy], now=3.0)

    assert sorted(retired) == sorted([old, legacy])
    assert states(ledger) == {old: RETIRED, new: LIVE, legacy: RETIRED}
    assert {g.prefix for g in ledger.retired()} == {old, legacy}


def test_settle_without_live_retires_everything(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    live, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    ledger.settle("files/a.bin", live, now=1.0)
    assert ledger.settle("files/a.bin", None, now=2.0) == [live]


def test_settle_of_a_key_that_never_had_segments_costs_no_transaction(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    db.close()  # any transaction would now fail
    assert ledger.settle("files/small.txt", None, now=1.0) == []


def test_ledger_remembers_keys_across_restarts(db: Database, tmp_path: Path) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    live, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    reopened = SegmentLedger(db, "b", "b_segments")
    assert reopened.settle("files/a.bin", None, now=2.0) == [live]


def test_other_buckets_and_segment_containers_are_never_candidates(db: Database) -> None:
    mine = SegmentLedger(db, "b", "shared_segments")
    theirs = SegmentLedger(db, "c", "shared_segments")
    elsewhere = SegmentLedger(db, "b", "other_segments")
    for ledger in (theirs, elsewhere):
        prefix, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
        ledger.retire(prefix)
    assert mine.retired() == []


def test_drop_forgets_only_retired_groups(db: Database) -> None:
    ledger = SegmentLedger(db, "b", "b_segments")
    live, _ = ledger.begin(entry(), 10, now=1.0, new_id=new_id)
    ledger.drop(live)
    assert states(ledger) == {live: ACTIVE}
    ledger.retire(live)
    ledger.drop(live)
    assert states(ledger) == {}
