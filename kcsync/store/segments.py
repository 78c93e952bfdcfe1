"""The segment ledger: every SLO segment group kcsync wrote, and whether it is still needed.

Identity is recorded, never derived (DESIGN §4). A group is written here before its first
segment is sent, so a run killed mid-upload finds it again and resumes under the same
name; it becomes ``live`` when our manifest referencing it lands, and ``retired`` when
something replaced that manifest. Only retired groups are ever candidates for deletion,
and the collector still asks the server before it deletes one (kcsync/orphans.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kcsync.model import LocalEntry
from kcsync.store.db import Database
from kcsync.swift.slo import bucket_tag, group_prefix, new_upload_id

ACTIVE, LIVE, RETIRED = "active", "live", "retired"
_COLUMNS = "prefix, key, bucket, segments, state, size, mtime_ns, ctime_ns, inode, segment_size"


@dataclass(frozen=True, slots=True)
class Group:
    prefix: str  # segment names start with this, in the segments container
    key: str  # the object the upload was for
    bucket: str
    segments: str  # the segments container
    state: str


class SegmentLedger:
    def __init__(self, db: Database, bucket: str, segments: str) -> None:
        self._db = db
        self._bucket = bucket
        self._segments = segments
        self._tag = bucket_tag(bucket)
        # Keys that ever had a group: most objects never were large, and settling them
        # must not cost a transaction per small file.
        with db.tx() as c:
            self._keys = {str(r[0]) for r in c.execute("SELECT DISTINCT key FROM segment_groups")}

    def begin(
        self,
        entry: LocalEntry,
        segment_size: int,
        *,
        now: float,
        new_id: Callable[[], str] = new_upload_id,
    ) -> tuple[str, bool]:
        """The group prefix to upload this version of the file into, and whether it is a
        resumed one.

        A group is resumed only for the very same file version (size, mtime, ctime, inode
        and segment size): anything else gets a fresh id, and the groups of earlier
        attempts for this object are retired. Committed before any segment is sent.
        """
        version = (entry.size, entry.mtime_ns, entry.ctime_ns, entry.inode, segment_size)
        with self._db.tx() as c:
            row = c.execute(
                "SELECT prefix FROM segment_groups WHERE key = ? AND bucket = ? AND segments = ?"
                " AND state = ? AND size = ? AND mtime_ns = ? AND ctime_ns = ? AND inode = ?"
                " AND segment_size = ?",
                (entry.key, self._bucket, self._segments, ACTIVE, *version),
            ).fetchone()
            if row is not None:
                return str(row[0]), True
            c.execute(
                "UPDATE segment_groups SET state = ? WHERE key = ? AND bucket = ? AND state = ?",
                (RETIRED, entry.key, self._bucket, ACTIVE),
            )
            prefix = group_prefix(self._tag, new_id())
            self._keys.add(entry.key)
            c.execute(
                f"INSERT INTO segment_groups ({_COLUMNS}, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (prefix, entry.key, self._bucket, self._segments, ACTIVE, *version, now),
            )
        return prefix, False

    def settle(
        self, key: str, live: str | None, *, also_retire: Iterable[str] = (), now: float
    ) -> list[str]:
        """The object ``key`` now references the group ``live`` (or none of ours): mark it
        live and retire every other group of ``key``. ``also_retire`` names groups the
        ledger may not know (an SLO of the layout before upload ids, from the index).
        Returns the retired prefixes."""
        also_retire = [p for p in also_retire if p != live]
        if live is None and not also_retire and key not in self._keys:
            return []
        self._keys.add(key)
        with self._db.tx() as c:
            for prefix in also_retire:
                _insert(c, prefix, key, self._bucket, self._segments, RETIRED, now)
            if live is not None:
                _insert(c, live, key, self._bucket, self._segments, LIVE, now)
                c.execute("UPDATE segment_groups SET state = ? WHERE prefix = ?", (LIVE, live))
            c.execute(
                "UPDATE segment_groups SET state = ? WHERE key = ? AND bucket = ? AND prefix != ?",
                (RETIRED, key, self._bucket, live or ""),
            )
            rows = c.execute(
                "SELECT prefix FROM segment_groups WHERE key = ? AND bucket = ? "
                "AND segments = ? AND state = ?",
                (key, self._bucket, self._segments, RETIRED),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def retired(self) -> list[Group]:
        """Groups of this bucket and segments container that nothing of ours needs."""
        with self._db.tx() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM segment_groups WHERE bucket = ? AND segments = ? "
                "AND state = ? ORDER BY prefix",
                (self._bucket, self._segments, RETIRED),
            ).fetchall()
        return [Group(*r[:5]) for r in rows]

    def groups(self, key: str) -> list[Group]:
        with self._db.tx() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM segment_groups WHERE key = ? ORDER BY prefix", (key,)
            ).fetchall()
        return [Group(*r[:5]) for r in rows]

    def retire(self, prefix: str) -> None:
        """An upload gave up on this group (it cannot be resumed)."""
        with self._db.tx() as c:
            c.execute("UPDATE segment_groups SET state = ? WHERE prefix = ?", (RETIRED, prefix))

    def mark_live(self, prefix: str) -> None:
        """The server says a retired group is still referenced: keep it, stop asking."""
        with self._db.tx() as c:
            c.execute("UPDATE segment_groups SET state = ? WHERE prefix = ?", (LIVE, prefix))

    def drop(self, prefix: str) -> None:
        """Its segments are gone."""
        with self._db.tx() as c:
            c.execute(
                "DELETE FROM segment_groups WHERE prefix = ? AND state = ?", (prefix, RETIRED)
            )


def _insert(
    c: sqlite3.Connection, prefix: str, key: str, bucket: str, segments: str, state: str, now: float
) -> None:
    """A group learnt from the server or the index (no file version known): kept if
    the ledger already has it."""
    c.execute(
        f"INSERT OR IGNORE INTO segment_groups ({_COLUMNS}, created) "
        "VALUES (?,?,?,?,?,0,0,0,0,0,?)",
        (prefix, key, bucket, segments, state, now),
    )
