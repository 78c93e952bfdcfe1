"""store/index.py: entries round-trip, and an index written before verified_ns upgrades."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kcsync.model import IndexEntry, LocalEntry, RemoteSignature
from kcsync.store.db import SCHEMA_VERSION, Database
from kcsync.store.index import Index

# The entries table exactly as schema 2 wrote it (kcsync before verified_ns).
SCHEMA_2_ENTRIES = """
CREATE TABLE entries (
    key TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, md5 TEXT NOT NULL,
    segment_size INTEGER NOT NULL, slo_etag TEXT, remote_hash TEXT NOT NULL,
    remote_bytes INTEGER NOT NULL, remote_last_modified TEXT, segment_prefix TEXT
) WITHOUT ROWID;
"""
LOCAL = LocalEntry("files/a", "/data/a", 5, 1_000_000_000, 9, 1_000_000_000)


def test_verified_ns_round_trips(tmp_path: Path) -> None:
    db = Database(tmp_path / "kcsync.db")
    try:
        index = Index(db)
        entry = IndexEntry(
            key="files/a",
            size=5,
            mtime_ns=1,
            inode=2,
            ctime_ns=3,
            md5="m",
            segment_size=0,
            slo_etag=None,
            remote=RemoteSignature("m", 5, None),
            verified_ns=1_700_000_000_123_456_789,
        )
        index.put(entry)
        assert index.get("files/a") == entry
        assert list(index.iter_sorted()) == [entry]
    finally:
        db.close()


def test_schema_2_rows_upgrade_as_legacy_and_stay_trusted(tmp_path: Path) -> None:
    path = tmp_path / "kcsync.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_2_ENTRIES)
    conn.execute(
        "INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        ("files/a", 5, LOCAL.mtime_ns, 9, LOCAL.ctime_ns, "m", 0, None, "m", 5, None, None),
    )
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()

    db = Database(path)
    try:
        with db.tx() as c:
            assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        entry = Index(db).get("files/a")
        assert entry is not None and entry.verified_ns == 0
        # An upgrade must not make every file look racy: that would re-read the whole tree.
        assert entry.trusts(LOCAL)
    finally:
        db.close()


def test_cuts_are_every_nth_key_under_the_prefix_with_its_successor(tmp_path: Path) -> None:
    db = Database(tmp_path / "kcsync.db")
    try:
        index = Index(db)
        keys = [f"files/{i:02d}" for i in range(10)] + ["files/\U0001f600", "filesX", "other/a"]
        for key in keys:
            index.put(
                IndexEntry(
                    key, 1, 1, 1, 1, "m", 0, None, RemoteSignature("m", 1, None), verified_ns=0
                )
            )
        # In byte order, as the servers list: the emoji after the digits, nothing outside.
        assert index.cuts("files/", 4) == [
            ("files/03", "files/04"),
            ("files/07", "files/08"),
        ]
        assert index.cuts("files/", 5) == [
            ("files/04", "files/05"),
            ("files/09", "files/\U0001f600"),
        ]
        assert index.cuts("files/", 11) == []
    finally:
        db.close()
