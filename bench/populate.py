"""Fill a local Swift container's listing straight from a tree, without object bodies.

Scenarios C/D (kcsync and the floor at 100,000 files) and F (up to 1,000,000 files) only
need what a no-change rerun reads: the tree on disk and the bucket's listing. Sending a
million PUTs through this 2-core Swift (~100/s) would take hours, so the harness writes the
listing rows into the container database itself, as the object servers' container updates
would, each with the file's real size and MD5. Nothing that reads object bodies or HEADs
objects can run against such a bucket: the report says which tables were set up this way,
and their request counts show that no per-object request was made.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

BATCH = 20_000


def container_db(server_root: Path, account: str, container: str) -> Path:
    """The SQLite file of ``container`` (one replica: exactly one such file)."""
    from swift.container.backend import ContainerBroker  # type: ignore[import-untyped]

    for db in server_root.glob("srv/*/containers/*/*/*/*.db"):
        info = ContainerBroker(str(db)).get_info()
        if (info["account"], info["container"]) == (account, container):
            return db
    raise LookupError(f"no database for {account}/{container} under {server_root}")


def rows(tree: Path, prefix: str) -> Iterator[tuple[str, int, str]]:
    """(object name, size, md5) for every file under ``tree``, names as every tool makes them."""
    for dirpath, _dirs, files in os.walk(tree):
        rel = os.path.relpath(dirpath, tree)
        for name in files:
            path = os.path.join(dirpath, name)
            data = Path(path).read_bytes()
            key = name if rel == "." else f"{rel}/{name}"
            yield prefix + key, len(data), hashlib.md5(data).hexdigest()


def fill(
    server_root: Path, account: str, container: str, tree: Path, prefix: str
) -> tuple[int, list[str]]:
    """Write a listing row per non-empty file of ``tree``; returns how many, and the names
    of the empty files. Those must be real objects: an empty object lists with the same
    hash as a manifest, so kcsync (rightly) HEADs it, and a row with no body answers 404."""
    from swift.common.utils import Timestamp  # type: ignore[import-untyped]
    from swift.container.backend import ContainerBroker

    broker = ContainerBroker(str(container_db(server_root, account, container)))
    stamp = Timestamp(time.time()).internal
    batch: list[dict[str, object]] = []
    count = 0
    empty: list[str] = []
    for name, size, md5 in rows(tree, prefix):
        if not size:
            empty.append(name)
            continue
        batch.append({
            "name": name, "created_at": stamp, "size": size,
            "content_type": "application/octet-stream", "etag": md5, "deleted": 0,
            "storage_policy_index": 0, "ctype_timestamp": stamp, "meta_timestamp": stamp,
        })  # fmt: skip
        if len(batch) >= BATCH:
            broker.merge_items(batch)
            count += len(batch)
            batch = []
    if batch:
        broker.merge_items(batch)
        count += len(batch)
    return count, empty
