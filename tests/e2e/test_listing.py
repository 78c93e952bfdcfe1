"""A rerun lists the prefix as key ranges at once (kcsync/list_plan.py): every object is
seen exactly once however the bucket changed around last run's cut points."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kcsync.config import load_config
from kcsync.daemon import DB_NAME, make_remote
from kcsync.list_plan import cut_every
from kcsync.listing import IN_FLIGHT, list_prefix
from kcsync.store.db import Database
from kcsync.store.index import Index
from tests.e2e.harness import Env

pytestmark = pytest.mark.backends("swift", "rgw")

FILES = 2400  # five ranges of 500 on a rerun; three pages and an empty one listed alone


def name_of(i: int) -> str:
    # Non-ASCII names among the others: the servers sort by UTF-8 bytes.
    return f"d{i // 300}/f{i:04d}" + ("\u00e9" if i % 7 == 0 else "")


def cuts(env: Env, page_size: int) -> list[tuple[str, str]]:
    db = Database(env.state / DB_NAME)
    try:
        index = Index(db)
        every = cut_every(index.count("files/"), page_size, IN_FLIGHT)
        assert every is not None
        return index.cuts("files/", every)
    finally:
        db.close()


def test_a_rerun_sees_every_object_once_around_old_cut_points(env: Env) -> None:
    for i in range(FILES):
        env.write(name_of(i), f"{i}\n".encode())
    first = env.run()
    assert first.code == 0, first.stderr
    assert len(first.uploaded()) == FILES
    config = load_config(env.configure())
    remote = make_remote(config)
    pairs = cuts(env, min(remote.limits.container_listing_limit, 10000))
    assert len(pairs) == 4

    # Around each cut (a, c): the peer deletes a's object (its file stays: sent again),
    # c's file goes (mirror deletes its object), a peer puts an object between a and c
    # (no such file: mirror deletes it), and a new file sorts between them too.
    resent, removed, foreign, added = [], [], [], []
    for n, (a, c) in enumerate(pairs):
        env.conn.delete_object(env.bucket, a)
        resent.append(a)
        (env.data / c.removeprefix("files/")).unlink()
        removed.append(c)
        env.conn.put_object(env.bucket, a + "~peer", b"theirs")
        foreign.append(a + "~peer")
        env.write(a.removeprefix("files/") + f"\u00fc{n}", b"new")
        added.append(a + f"\u00fc{n}")
    env.wait_until_settled()

    second = env.run()

    assert second.code == 0, second.stderr
    assert second.uploaded() == sorted(resent + added)
    assert second.deleted() == sorted(removed + foreign)
    # Five ranges, each a page and an empty page: all listed in one round of requests.
    assert second.requests["GET"] >= 2 * (len(pairs) + 1)
    expected = sorted({f"files/{name_of(i)}" for i in range(FILES)} - set(removed) | set(added))
    assert env.names() == expected

    third = env.run()
    assert third.code == 0, third.stderr
    assert (third.uploaded(), third.deleted()) == ([], [])
    assert "PUT" not in third.requests and "DELETE" not in third.requests


def test_the_ranges_are_fetched_concurrently_each_name_once(env: Env, tmp_path: Path) -> None:
    for i in range(FILES):
        env.write(name_of(i), b"x")
    assert env.run().code == 0
    config = load_config(env.configure())
    remote = make_remote(config)
    page_size = min(remote.limits.container_listing_limit, 10000)
    a, c = cuts(env, page_size)[1]
    # The peer removes one cut key and adds names either side of the other.
    env.conn.delete_object(env.bucket, c)
    env.conn.put_object(env.bucket, a + "!", b"theirs")
    env.conn.put_object(env.bucket, c + "\U0010ffff", b"theirs")

    client = remote.client
    sent = client.request
    active = 0
    most = 0
    lock = threading.Lock()

    def counting(method: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            # A local server answers in a millisecond; a network's round trip is what
            # lets requests overlap, and what the concurrency is for.
            time.sleep(0.05)
            return sent(method, *args, **kwargs)
        finally:
            with lock:
                active -= 1

    client.request = counting  # type: ignore[method-assign]
    db = Database(env.state / DB_NAME)
    try:
        before = client.requests_by_method.get("GET", 0)
        names = [
            e.name
            for e in list_prefix(client, env.bucket, "files/", Index(db), page_size=page_size)
        ]
    finally:
        db.close()

    assert names == env.names()
    assert len(names) == len(set(names)) == FILES + 1
    # Five ranges of about 500 names: a page and an empty page each, at most eight at once.
    assert client.requests_by_method["GET"] - before == 10
    assert most >= 4
