"""store/jobs.py and store/db.py: the persistent queue on a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from kcsync.store.db import SCHEMA_VERSION, Database
from kcsync.store.jobs import DeadJob, JobQueue

LEASE = 60.0


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "state" / "kcsync.db")
    yield database
    database.close()


@pytest.fixture
def queue(db):
    return JobQueue(db)


def test_enqueue_then_claim(queue):
    queue.enqueue("p/a", "upload", {"size": 1, "name": "é"}, now=100.0)
    job = queue.claim(now=100.0, lease=LEASE)
    assert job is not None
    assert (job.key, job.op, dict(job.payload), job.attempts) == (
        "p/a",
        "upload",
        {"size": 1, "name": "é"},
        0,
    )
    assert job.token


def test_claim_on_empty_queue(queue):
    assert queue.claim(now=0.0, lease=LEASE) is None
    assert queue.next_ready_at() is None
    assert queue.outstanding() == 0
    assert queue.counts() == {}


@pytest.mark.parametrize(
    ("claim_at", "claimed"),
    [(99.999, False), (100.0, True), (1e9, True)],
    ids=["before-not-before", "at-not-before", "long-after"],
)
def test_claim_respects_not_before(queue, claim_at, claimed):
    queue.enqueue("k", "upload", {}, now=100.0)
    assert (queue.claim(now=claim_at, lease=LEASE) is not None) is claimed


def test_claimed_job_is_leased_not_deleted(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    # Nobody else gets it while the lease holds, but it is still in the queue.
    assert queue.claim(now=LEASE - 1, lease=LEASE) is None
    assert queue.outstanding() == 1
    assert queue.counts() == {"running": 1}
    assert queue.next_ready_at() is None


def test_claim_takes_the_earliest_ready_job(queue):
    queue.enqueue("a", "upload", {}, now=3.0)
    queue.enqueue("b", "upload", {}, now=1.0)
    queue.enqueue("c", "upload", {}, now=2.0)
    keys = [queue.claim(now=10.0, lease=LEASE) for _ in range(4)]
    assert [j.key if j else None for j in keys] == ["b", "c", "a", None]


def test_claims_get_distinct_tokens(queue):
    queue.enqueue("a", "upload", {}, now=0.0)
    queue.enqueue("b", "upload", {}, now=0.0)
    first = queue.claim(now=0.0, lease=LEASE)
    second = queue.claim(now=0.0, lease=LEASE)
    assert first is not None and second is not None
    assert first.key != second.key
    assert first.token != second.token


def test_enqueue_coalesces_one_job_per_key(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=10.0)
    queue.enqueue("k", "upload", {"v": 2}, now=20.0)
    queue.enqueue("k", "delete", {"v": 3}, now=30.0)
    assert queue.counts() == {"pending": 1}
    assert queue.outstanding() == 1
    # The earliest not_before is kept, with the latest op and payload.
    assert queue.next_ready_at() == 10.0
    job = queue.claim(now=10.0, lease=LEASE)
    assert job is not None
    assert (job.op, dict(job.payload)) == ("delete", {"v": 3})
    assert queue.claim(now=30.0, lease=LEASE) is None


def test_enqueue_brings_a_backed_off_job_forward(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.fail(job, "boom", now=1.0, retry_at=500.0, max_attempts=5)
    assert queue.next_ready_at() == 500.0
    # A new event on the path is worth trying now; the failures so far still count.
    queue.enqueue("k", "upload", {"new": True}, now=2.0)
    assert queue.next_ready_at() == 2.0
    again = queue.claim(now=2.0, lease=LEASE)
    assert again is not None
    assert again.attempts == 1


def test_complete_deletes_the_job(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.complete(job, now=1.0)
    assert queue.outstanding() == 0
    assert queue.counts() == {}
    assert queue.claim(now=1e9, lease=LEASE) is None


def test_complete_can_claim_the_next_job_in_the_same_transaction(queue):
    queue.enqueue_many([("a", "upload", {}), ("b", "upload", {}), ("c", "upload", {})], now=0.0)
    first = queue.claim(now=0.0, lease=LEASE)
    assert first is not None and first.key == "a"
    other = queue.claim(now=0.0, lease=LEASE)  # another worker holds b
    assert other is not None and other.key == "b"
    following = queue.complete(first, now=1.0, claim_lease=LEASE)
    assert following is not None and following.key == "c"  # never b: it is leased
    assert following.token not in (first.token, other.token)
    assert queue.counts() == {"running": 2}  # a is gone; b and c are leased
    assert queue.complete(following, now=2.0, claim_lease=LEASE) is None  # nothing ready
    assert queue.complete(other, now=2.0) is None  # without claim_lease: claims nothing
    assert queue.outstanding() == 0


def test_complete_of_a_dirty_job_keeps_it_and_may_hand_it_back(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.enqueue("k", "upload", {"v": 2}, now=5.0)  # new work while it ran
    again = queue.complete(job, now=7.0, claim_lease=LEASE)
    assert again is not None and again.key == "k" and again.token != job.token
    assert (dict(again.payload), again.attempts) == ({"v": 2}, 0)
    # The old lease can no longer finish it.
    queue.complete(job, now=8.0)
    assert queue.counts() == {"running": 1}


def test_enqueue_while_leased_runs_again_after_completion(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.enqueue("k", "upload", {"v": 2}, now=5.0)
    # Never the same path twice at once: the new work waits for the lease holder.
    assert queue.claim(now=5.0, lease=LEASE) is None
    assert queue.counts() == {"running": 1}
    queue.complete(job, now=7.0)
    assert queue.counts() == {"pending": 1}
    again = queue.claim(now=7.0, lease=LEASE)
    assert again is not None
    assert (dict(again.payload), again.attempts) == ({"v": 2}, 0)
    assert again.token != job.token
    queue.complete(again, now=8.0)
    assert queue.outstanding() == 0


def test_enqueue_after_completion_is_a_fresh_job(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.complete(job, now=1.0)
    queue.enqueue("k", "upload", {"v": 2}, now=2.0)
    again = queue.claim(now=2.0, lease=LEASE)
    assert again is not None
    queue.complete(again, now=3.0)
    # Not dirty: one completion removes it.
    assert queue.outstanding() == 0


def test_fail_backs_off(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    assert queue.fail(job, "503 from server", now=1.0, retry_at=31.0, max_attempts=5) is False
    assert queue.counts() == {"pending": 1}
    assert queue.next_ready_at() == 31.0
    assert queue.claim(now=30.9, lease=LEASE) is None
    retried = queue.claim(now=31.0, lease=LEASE)
    assert retried is not None
    assert retried.attempts == 1


def test_fail_until_dead(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    now, results = 0.0, []
    for _ in range(3):
        job = queue.claim(now=now, lease=LEASE)
        assert job is not None
        results.append(
            queue.fail(job, f"error at {now}", now=now, retry_at=now + 10, max_attempts=3)
        )
        now += 10
    assert results == [False, False, True]
    assert queue.counts() == {"dead": 1}
    assert queue.outstanding() == 0
    assert queue.next_ready_at() is None
    assert queue.claim(now=1e12, lease=LEASE) is None
    assert queue.dead() == [DeadJob(key="k", op="upload", attempts=3, last_error="error at 20.0")]


def test_fail_while_dirty_retries_now_and_forgives(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.enqueue("k", "upload", {"v": 2}, now=1.0)
    # The attempt failed, but it was for stale work: the new work runs now, from zero.
    assert queue.fail(job, "boom", now=2.0, retry_at=1000.0, max_attempts=1) is False
    assert queue.counts() == {"pending": 1}
    again = queue.claim(now=2.0, lease=LEASE)
    assert again is not None
    assert (dict(again.payload), again.attempts) == ({"v": 2}, 0)


def test_fail_truncates_long_errors(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.fail(job, "x" * 5000, now=0.0, retry_at=0.0, max_attempts=1)
    [dead] = queue.dead()
    assert dead.last_error == "x" * 1000


def test_revive_dead(queue):
    for key in ("a", "b"):
        queue.enqueue(key, "upload", {}, now=0.0)
        job = queue.claim(now=0.0, lease=LEASE)
        assert job is not None
        queue.fail(job, "boom", now=0.0, retry_at=0.0, max_attempts=1)
    queue.enqueue("c", "upload", {}, now=0.0)
    assert queue.counts() == {"dead": 2, "pending": 1}
    assert queue.revive_dead(now=50.0) == 2
    assert queue.counts() == {"pending": 3}
    assert queue.dead() == []
    assert queue.revive_dead(now=60.0) == 0
    revived = [queue.claim(now=50.0, lease=LEASE) for _ in range(3)]
    assert sorted(j.key for j in revived if j) == ["a", "b", "c"]
    assert [j.attempts for j in revived if j] == [0, 0, 0]


def test_enqueue_revives_a_dead_job(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.fail(job, "boom", now=0.0, retry_at=0.0, max_attempts=1)
    queue.enqueue("k", "upload", {"v": 2}, now=9.0)
    assert queue.counts() == {"pending": 1}
    again = queue.claim(now=9.0, lease=LEASE)
    assert again is not None
    assert (dict(again.payload), again.attempts) == ({"v": 2}, 0)


def test_dead_lists_in_key_order_with_limit(queue):
    for key in ("c", "a", "b"):
        queue.enqueue(key, "delete", {}, now=0.0)
        job = queue.claim(now=0.0, lease=LEASE)
        assert job is not None
        queue.fail(job, key, now=0.0, retry_at=0.0, max_attempts=1)
    assert [d.key for d in queue.dead()] == ["a", "b", "c"]
    assert [d.key for d in queue.dead(limit=2)] == ["a", "b"]


def test_release_gives_the_job_back_untouched(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.fail(job, "boom", now=0.0, retry_at=0.0, max_attempts=5)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.release(job)
    assert queue.counts() == {"pending": 1}
    again = queue.claim(now=0.0, lease=LEASE)
    assert again is not None
    assert (again.key, again.attempts) == ("k", 1)


def test_release_of_a_dirty_job_needs_one_run_only(queue):
    queue.enqueue("k", "upload", {"v": 1}, now=0.0)
    job = queue.claim(now=0.0, lease=LEASE)
    assert job is not None
    queue.enqueue("k", "upload", {"v": 2}, now=1.0)
    queue.release(job)  # shutdown: the row already holds the newest work
    again = queue.claim(now=2.0, lease=LEASE)
    assert again is not None
    assert dict(again.payload) == {"v": 2}
    queue.complete(again, now=3.0)
    # The run that just succeeded saw the newest payload: nothing is left to do.
    assert queue.outstanding() == 0


def test_requeue_expired(queue):
    queue.enqueue("a", "upload", {}, now=0.0)
    queue.enqueue("b", "upload", {}, now=0.0)
    a = queue.claim(now=0.0, lease=10.0)
    b = queue.claim(now=5.0, lease=10.0)
    assert a is not None and b is not None
    assert queue.requeue_expired(now=10.0) == 0  # a's lease runs until 10.0 inclusive
    assert queue.requeue_expired(now=10.5) == 1
    assert queue.counts() == {"pending": 1, "running": 1}
    again = queue.claim(now=10.5, lease=10.0)
    assert again is not None
    assert again.key == a.key
    assert again.token != a.token


def test_stale_lease_holder_cannot_finish_the_job(queue):
    queue.enqueue("k", "upload", {}, now=0.0)
    stale = queue.claim(now=0.0, lease=10.0)
    assert stale is not None
    queue.requeue_expired(now=20.0)
    current = queue.claim(now=20.0, lease=10.0)
    assert current is not None
    # The worker that was presumed dead wakes up: it must not touch the new holder's job.
    queue.complete(stale, now=21.0)
    assert queue.counts() == {"running": 1}
    assert queue.fail(stale, "late", now=21.0, retry_at=99.0, max_attempts=1) is False
    assert queue.counts() == {"running": 1}
    queue.release(stale)
    assert queue.claim(now=21.0, lease=10.0) is None
    queue.complete(current, now=22.0)
    assert queue.outstanding() == 0


def test_release_all(queue):
    for key in ("a", "b", "c"):
        queue.enqueue(key, "upload", {}, now=0.0)
    claimed = [queue.claim(now=0.0, lease=1e9) for _ in range(2)]
    assert all(claimed)
    assert queue.release_all() == 2
    assert queue.counts() == {"pending": 3}
    assert queue.release_all() == 0
    assert len([queue.claim(now=0.0, lease=LEASE) for _ in range(3)]) == 3


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ([], {}),
        ([("a", "pending")], {"pending": 1}),
        ([("a", "running"), ("b", "pending")], {"running": 1, "pending": 1}),
        ([("a", "dead"), ("b", "dead"), ("c", "running")], {"dead": 2, "running": 1}),
    ],
    ids=["empty", "pending", "running-and-pending", "dead-and-running"],
)
def test_counts_and_outstanding(queue, setup, expected):
    for key, state in setup:
        queue.enqueue(key, "upload", {}, now=0.0)
        if state in ("running", "dead"):
            # Enqueue order equals not_before order here, so this claims ``key``.
            job = queue.claim(now=0.0, lease=LEASE)
            assert job is not None and job.key == key
            if state == "dead":
                queue.fail(job, "x", now=0.0, retry_at=0.0, max_attempts=1)
    assert queue.counts() == expected
    assert queue.outstanding() == expected.get("pending", 0) + expected.get("running", 0)


def test_next_ready_at_ignores_leased_and_dead(queue):
    queue.enqueue("leased", "upload", {}, now=1.0)
    queue.enqueue("dead", "upload", {}, now=2.0)
    queue.enqueue("later", "upload", {}, now=7.0)
    assert queue.next_ready_at() == 1.0
    leased = queue.claim(now=1.0, lease=LEASE)
    assert leased is not None and leased.key == "leased"
    dead = queue.claim(now=2.0, lease=LEASE)
    assert dead is not None and dead.key == "dead"
    queue.fail(dead, "x", now=2.0, retry_at=3.0, max_attempts=1)
    assert queue.next_ready_at() == 7.0


def test_jobs_survive_a_restart(tmp_path):
    path = tmp_path / "kcsync.db"
    first = Database(path)
    queue = JobQueue(first)
    queue.enqueue("a", "upload", {"v": 1}, now=0.0)
    queue.enqueue("b", "delete", {}, now=0.0)
    assert queue.claim(now=0.0, lease=1e9) is not None  # then the process is killed
    first.close()

    second = Database(path)
    try:
        queue = JobQueue(second)
        assert queue.counts() == {"running": 1, "pending": 1}
        assert queue.release_all() == 1
        keys = sorted(j.key for j in (queue.claim(now=0.0, lease=LEASE) for _ in range(2)) if j)
        assert keys == ["a", "b"]
    finally:
        second.close()


def test_database_schema_and_pragmas(db):
    assert db.path.name == "kcsync.db"
    with db.tx() as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "entries", "jobs"} <= tables


def test_database_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "kcsync.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer kcsync"):
        Database(path)


def test_database_reopen_keeps_data(tmp_path):
    path = tmp_path / "kcsync.db"
    first = Database(path)
    first.set_meta("bucket", "backups")
    first.close()
    second = Database(path)
    try:
        assert second.get_meta("bucket") == "backups"
    finally:
        second.close()


def test_meta(db):
    assert db.get_meta("missing") is None
    db.set_meta("k", "v1")
    db.set_meta("k", "v2")
    assert db.get_meta("k") == "v2"


def test_tx_rolls_back_on_error(db):
    db.set_meta("k", "before")
    with pytest.raises(ValueError), db.tx() as c:
        c.execute("UPDATE meta SET value = 'during' WHERE key = 'k'")
        raise ValueError("abort")
    assert db.get_meta("k") == "before"
    # The connection is usable afterwards (no transaction left open).
    db.set_meta("k", "after")
    assert db.get_meta("k") == "after"


def test_enqueue_many_merges_like_enqueue_and_counts_news(queue):
    queue.enqueue("p/queued", "check", {"n": 1}, now=100.0)
    queue.enqueue("p/running", "check", {"n": 1}, now=100.0)
    running = queue.claim(now=100.0, lease=LEASE)
    assert running is not None and running.key == "p/queued"
    held = queue.claim(now=100.0, lease=LEASE)
    assert held is not None and held.key == "p/running"

    news = queue.enqueue_many(
        [
            ("p/new", "upload", {"n": 2}),
            ("p/queued", "upload", {"n": 2}),
            ("p/running", "delete", {}),
        ],
        now=101.0,
    )

    assert news == 1  # the leased ones were known: only p/new is news
    assert queue.outstanding() == 3
    queue.complete(held, now=102.0)  # dirty: new work arrived while it ran
    again = [queue.claim(now=103.0, lease=LEASE) for _ in range(2)]
    assert sorted((j.key, j.op) for j in again if j) == [
        ("p/new", "upload"),
        ("p/running", "delete"),
    ]
