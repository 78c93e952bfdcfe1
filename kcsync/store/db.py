"""The SQLite file that holds the index and the job queue (DESIGN §2).

One connection, guarded by a lock, shared by all threads: writes are tiny and WAL keeps
readers (``kcsync status`` in another process) from blocking the daemon.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kcsync.store.owner import database_files, hand_over, owner_to_hand_over

SCHEMA_VERSION = 4

_GROUPS = """
-- Every SLO segment group kcsync wrote (DESIGN §4): recorded before its first segment
-- is sent, so a killed upload is resumed under the same name and nothing kcsync wrote is
-- ever collected from a guess. state: active (upload under way or resumable), live (a
-- manifest of ours references it), retired (replaced: garbage once the server agrees).
CREATE TABLE IF NOT EXISTS segment_groups (
    prefix TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    bucket TEXT NOT NULL,
    segments TEXT NOT NULL,
    state TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    segment_size INTEGER NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segment_groups_key ON segment_groups (key);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- What was last uploaded per object name, and the stat of the file it came from.
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    segment_size INTEGER NOT NULL,
    slo_etag TEXT,
    remote_hash TEXT NOT NULL,
    remote_bytes INTEGER NOT NULL,
    remote_last_modified TEXT,
    segment_prefix TEXT,
    verified_ns INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- One row per path with work to do. A claimed job carries a lease; it is deleted only
-- after success, so a crash leaves it to be claimed again once the lease expires.
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    lease_until REAL,
    lease_token TEXT,
    dirty INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before);
"""
_SCHEMA += _GROUPS
# _MIGRATIONS[v] brings a database from schema v to v + 1 (index 0 is the fresh schema).
_MIGRATIONS = [
    _SCHEMA,
    "ALTER TABLE entries ADD COLUMN segment_prefix TEXT;",
    # 2 -> 3: when the recorded content was read (IndexEntry.verified_ns). Old rows get 0,
    # which the trust rule treats as before it existed: an upgrade re-reads nothing.
    "ALTER TABLE entries ADD COLUMN verified_ns INTEGER NOT NULL DEFAULT 0;",
    # 3 -> 4: the segment ledger (store/segments.py).
    _GROUPS,
]


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        owner = owner_to_hand_over(path.parent)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode loses at most the last transactions on power loss, never
        # consistency; a lost index row only costs a re-check, a lost job is recreated by
        # the reconcile at start.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path} was written by a newer kcsync (schema {version})")
        if version < SCHEMA_VERSION:
            # executescript commits on its own, so the script carries its own transaction.
            steps = _SCHEMA if version == 0 else "".join(_MIGRATIONS[version:])
            self._conn.executescript(
                f"BEGIN IMMEDIATE;{steps}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
            )
        # The -wal and -shm files exist from the first read on (store/owner.py: why).
        hand_over(database_files(path), owner)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """The one way to touch the database: a transaction under the lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        with self.tx() as c:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def delete_meta(self, key: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM meta WHERE key = ?", (key,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
