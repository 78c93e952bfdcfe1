"""The index: per object name, what was last uploaded and the stat of its file."""

from __future__ import annotations

from collections.abc import Iterator

from kcsync.model import IndexEntry, RemoteSignature
from kcsync.store.db import Database

_COLUMNS = (
    "key, size, mtime_ns, inode, ctime_ns, md5, segment_size, slo_etag, "
    "remote_hash, remote_bytes, remote_last_modified, segment_prefix, verified_ns"
)
_PLACEHOLDERS = ",".join("?" * len(_COLUMNS.split(",")))


def _row_to_entry(row: tuple[object, ...]) -> IndexEntry:
    (key, size, mtime_ns, inode, ctime_ns, md5, segsize, slo_etag, rhash, rbytes, rlm, sp, vns) = (
        row
    )
    return IndexEntry(
        key=str(key),
        size=int(size),  # type: ignore[call-overload]
        mtime_ns=int(mtime_ns),  # type: ignore[call-overload]
        inode=int(inode),  # type: ignore[call-overload]
        ctime_ns=int(ctime_ns),  # type: ignore[call-overload]
        md5=str(md5),
        segment_size=int(segsize),  # type: ignore[call-overload]
        slo_etag=None if slo_etag is None else str(slo_etag),
        remote=RemoteSignature(
            hash=str(rhash),
            bytes=int(rbytes),  # type: ignore[call-overload]
            last_modified=None if rlm is None else str(rlm),
        ),
        segment_prefix=None if sp is None else str(sp),
        verified_ns=int(vns),  # type: ignore[call-overload]
    )


class Index:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> IndexEntry | None:
        with self._db.tx() as c:
            row = c.execute(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else _row_to_entry(row)

    def put(self, e: IndexEntry) -> None:
        with self._db.tx() as c:
            c.execute(
                f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (
                    e.key,
                    e.size,
                    e.mtime_ns,
                    e.inode,
                    e.ctime_ns,
                    e.md5,
                    e.segment_size,
                    e.slo_etag,
                    e.remote.hash,
                    e.remote.bytes,
                    e.remote.last_modified,
                    e.segment_prefix,
                    e.verified_ns,
                ),
            )

    def delete(self, key: str) -> None:
        with self._db.tx() as c:
            c.execute("DELETE FROM entries WHERE key = ?", (key,))

    def clear(self) -> None:
        with self._db.tx() as c:
            c.execute("DELETE FROM entries")

    def count(self, prefix: str = "") -> int:
        with self._db.tx() as c:
            row = c.execute(
                "SELECT count(*) FROM entries WHERE key >= ? AND key < ?",
                (prefix, _prefix_end(prefix)),
            ).fetchone()
        return int(row[0])

    def totals(self, prefix: str = "") -> dict[str, int]:
        with self._db.tx() as c:
            row = c.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE key >= ? AND key < ?",
                (prefix, _prefix_end(prefix)),
            ).fetchone()
        return {"objects": int(row[0]), "bytes": int(row[1])}

    def iter_sorted(self, prefix: str = "", page: int = 2000) -> Iterator[IndexEntry]:
        """All entries under ``prefix`` in name order, a page at a time.

        Keyset pages instead of one long cursor: workers write to the index while a
        reconcile walks it, and memory stays flat at 10^6 entries. SQLite compares TEXT
        by bytes, and UTF-8 byte order is code point order, the order of the listings.
        """
        after = None
        end = _prefix_end(prefix)
        while True:
            with self._db.tx() as c:
                if after is None:
                    rows = c.execute(
                        f"SELECT {_COLUMNS} FROM entries WHERE key >= ? AND key < ? "
                        "ORDER BY key LIMIT ?",
                        (prefix, end, page),
                    ).fetchall()
                else:
                    rows = c.execute(
                        f"SELECT {_COLUMNS} FROM entries WHERE key > ? AND key < ? "
                        "ORDER BY key LIMIT ?",
                        (after, end, page),
                    ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_entry(row)
            after = rows[-1][0]

    def cuts(self, prefix: str, every: int) -> list[tuple[str, str]]:
        """Each ``every``-th key under ``prefix`` with the key after it, in name order:
        where list_plan cuts the listing. One pass over the key index, in SQLite."""
        with self._db.tx() as c:
            rows = c.execute(
                "SELECT key, next FROM (SELECT key, lead(key) OVER (ORDER BY key) AS next, "
                "row_number() OVER (ORDER BY key) AS n FROM entries WHERE key >= ? AND key < ?) "
                "WHERE n % ? = 0 AND next IS NOT NULL ORDER BY key",
                (prefix, _prefix_end(prefix), every),
            ).fetchall()
        return [(str(a), str(c)) for a, c in rows]


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``."""
    return prefix + "\U0010ffff" * 2 if prefix else "\U0010ffff" * 2
