"""The persistent job queue: one job per path, leased on claim, deleted only on success."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kcsync.store.db import Database


@dataclass(frozen=True)
class Job:
    key: str
    op: str
    payload: Mapping[str, Any]
    attempts: int  # failures so far
    token: str  # the lease; only its holder may finish the job


@dataclass(frozen=True)
class DeadJob:
    key: str
    op: str
    attempts: int
    last_error: str | None


class JobQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(
        self,
        key: str,
        op: str,
        payload: Mapping[str, Any],
        *,
        now: float,
        not_before: float | None = None,
    ) -> bool:
        """Add work for ``key``, merging with what is already queued for it; True if no
        job for it was waiting (the work is news).

        A burst of events on one path stays one job. If a worker holds the job right now,
        the new work is stored and the row marked dirty, so it runs again after the current
        attempt instead of being lost or run twice at once.
        """
        with self._db.tx() as c:
            return _enqueue(c, key, op, payload, now, now if not_before is None else not_before)

    def enqueue_many(
        self, jobs: Sequence[tuple[str, str, Mapping[str, Any]]], *, now: float
    ) -> int:
        """``enqueue`` for many keys in one transaction (a reconcile finds thousands at once);
        returns how many were news."""
        with self._db.tx() as c:
            return sum(_enqueue(c, key, op, payload, now, now) for key, op, payload in jobs)

    def claim(self, *, now: float, lease: float) -> Job | None:
        token = uuid.uuid4().hex
        with self._db.tx() as c:
            row = _claim(c, now, lease, token)
        return None if row is None else _job(row, token)

    def complete(self, job: Job, *, now: float, claim_lease: float | None = None) -> Job | None:
        """The job succeeded: delete it (or run it again if new work came meanwhile).

        With ``claim_lease``, also claim the next ready job in the same transaction and
        return it, as ``claim`` would: a worker done with one small file wants the next,
        and this saves one of the four transactions a small file's upload costs. Nothing
        about the finished job changes: it leaves the queue only here, after its handler
        returned (its object confirmed, its index entry written).
        """
        token = uuid.uuid4().hex if claim_lease is not None else ""
        with self._db.tx() as c:
            gone = c.execute(
                "DELETE FROM jobs WHERE key = ? AND lease_token = ? AND dirty = 0",
                (job.key, job.token),
            ).rowcount
            if not gone:
                # New work arrived while we held it: run it again, fresh.
                c.execute(
                    "UPDATE jobs SET lease_until = NULL, lease_token = NULL, dirty = 0, "
                    "attempts = 0, not_before = ? WHERE key = ? AND lease_token = ?",
                    (now, job.key, job.token),
                )
            row = None if claim_lease is None else _claim(c, now, claim_lease, token)
        return None if row is None else _job(row, token)

    def fail(self, job: Job, error: str, *, now: float, retry_at: float, max_attempts: int) -> bool:
        """Record a failure; return True if the job is now dead (kept for status and the next
        reconcile, but no longer retried on its own)."""
        with self._db.tx() as c:
            row = c.execute(
                "SELECT attempts, dirty FROM jobs WHERE key = ? AND lease_token = ?",
                (job.key, job.token),
            ).fetchone()
            if row is None:
                return False
            attempts, dirty = row[0] + 1, row[1]
            if dirty:
                attempts, retry_at = 0, now
            dead = bool(attempts >= max_attempts)
            c.execute(
                "UPDATE jobs SET attempts = ?, last_error = ?, not_before = ?, "
                "state = ?, lease_until = NULL, lease_token = NULL, dirty = 0 WHERE key = ?",
                (attempts, error[:1000], retry_at, "dead" if dead else "pending", job.key),
            )
        return dead

    def release(self, job: Job) -> None:
        """Give a claimed job back untouched (shutdown)."""
        with self._db.tx() as c:
            c.execute(
                "UPDATE jobs SET lease_until = NULL, lease_token = NULL, dirty = 0 "
                "WHERE key = ? AND lease_token = ?",
                (job.key, job.token),
            )

    def requeue_expired(self, *, now: float) -> int:
        """Free the leases of workers that died (a crash, a kill -9)."""
        with self._db.tx() as c:
            return c.execute(
                "UPDATE jobs SET lease_until = NULL, lease_token = NULL, dirty = 0 "
                "WHERE lease_token IS NOT NULL AND lease_until < ?",
                (now,),
            ).rowcount

    def release_all(self) -> int:
        """At start, holding the state lock: every lease belongs to a dead process."""
        return self.requeue_expired(now=float("inf"))

    def revive_dead(self, *, now: float) -> int:
        with self._db.tx() as c:
            return c.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, not_before = ? "
                "WHERE state = 'dead'",
                (now,),
            ).rowcount

    def has(self, key: str) -> bool:
        """A job is waiting or running for ``key`` (dead ones do not count)."""
        with self._db.tx() as c:
            row = c.execute(
                "SELECT 1 FROM jobs WHERE key = ? AND state = 'pending'", (key,)
            ).fetchone()
        return row is not None

    def outstanding(self) -> int:
        """Jobs that are pending or running (not dead)."""
        with self._db.tx() as c:
            return int(c.execute("SELECT count(*) FROM jobs WHERE state = 'pending'").fetchone()[0])

    def next_ready_at(self) -> float | None:
        with self._db.tx() as c:
            row = c.execute(
                "SELECT min(not_before) FROM jobs WHERE state = 'pending' AND lease_token IS NULL"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def counts(self) -> dict[str, int]:
        with self._db.tx() as c:
            rows = c.execute(
                "SELECT CASE WHEN lease_token IS NOT NULL THEN 'running' ELSE state END, count(*) "
                "FROM jobs GROUP BY 1"
            ).fetchall()
        return {str(state): int(n) for state, n in rows}

    def dead(self, limit: int = 100) -> list[DeadJob]:
        with self._db.tx() as c:
            rows = c.execute(
                "SELECT key, op, attempts, last_error FROM jobs WHERE state = 'dead' "
                "ORDER BY key LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadJob(key=r[0], op=r[1], attempts=r[2], last_error=r[3]) for r in rows]


def _enqueue(
    c: sqlite3.Connection, key: str, op: str, payload: Mapping[str, Any], now: float, ready: float
) -> bool:
    data = json.dumps(payload, separators=(",", ":"))
    existed = c.execute("SELECT 1 FROM jobs WHERE key = ? AND state = 'pending'", (key,)).fetchone()
    c.execute(
        "INSERT INTO jobs (key, op, payload, not_before, created) VALUES (?,?,?,?,?) "
        "ON CONFLICT (key) DO UPDATE SET op = excluded.op, payload = excluded.payload, "
        "dirty = CASE WHEN lease_token IS NULL THEN 0 ELSE 1 END, "
        "state = 'pending', attempts = CASE WHEN state = 'dead' THEN 0 ELSE attempts END, "
        "not_before = min(not_before, excluded.not_before)",
        (key, op, data, ready, now),
    )
    return existed is None


def _claim(c: sqlite3.Connection, now: float, lease: float, token: str) -> tuple[Any, ...] | None:
    """Lease the earliest ready job to ``token``; its (key, op, payload, attempts) row."""
    row: tuple[Any, ...] | None = c.execute(
        "SELECT key, op, payload, attempts FROM jobs "
        "WHERE state = 'pending' AND not_before <= ? AND lease_token IS NULL "
        "ORDER BY not_before LIMIT 1",
        (now,),
    ).fetchone()
    if row is not None:
        c.execute(
            "UPDATE jobs SET lease_until = ?, lease_token = ? WHERE key = ?",
            (now + lease, token, row[0]),
        )
    return row


def _job(row: tuple[Any, ...], token: str) -> Job:
    return Job(key=row[0], op=row[1], payload=json.loads(row[2]), attempts=row[3], token=token)
