"""`kcsync status`: what the queue, the last reconcile and the index say, daemon running
or not. Reads the state database only; never takes the daemon's lock."""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from kcsync.config import Config
from kcsync.store.db import Database
from kcsync.store.guards import GuardState
from kcsync.store.index import Index
from kcsync.store.jobs import JobQueue
from kcsync.units import format_size, plural


def collect(config: Config) -> dict[str, Any]:
    db_path = config.state_dir / "kcsync.db"
    result: dict[str, Any] = {
        "state_dir": str(config.state_dir),
        "daemon_running": _locked(config),
        "bucket": config.bucket,
        "state_found": db_path.exists(),
    }
    if not db_path.exists():
        result.update(queue={}, dead_jobs=[], last_reconcile=None, folders=[], refused_deletes={})
        return result
    db = Database(db_path)
    try:
        queue, index = JobQueue(db), Index(db)
        last = db.get_meta("last_reconcile")
        result["queue"] = queue.counts()
        result["dead_jobs"] = [
            {"object": d.key, "op": d.op, "attempts": d.attempts, "last_error": d.last_error}
            for d in queue.dead()
        ]
        result["last_reconcile"] = json.loads(last) if last else None
        result["last_reconcile_error"] = db.get_meta("last_reconcile_error")
        result["refused_deletes"] = GuardState(db).refusals()
        result["folders"] = [
            {"path": str(f.path), "prefix": f.prefix, **index.totals(f.prefix)}
            for f in config.folders
        ]
    finally:
        db.close()
    return result


def _locked(config: Config) -> bool:
    lock = config.state_dir / "kcsync.lock"
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def render(status: dict[str, Any], out: TextIO) -> None:
    running = "running" if status["daemon_running"] else "not running"
    out.write(f"kcsync {running}; state in {status['state_dir']}; bucket {status['bucket']}\n")
    if not status.get("state_found", True):
        # Say where we looked: a state_dir that differs from the service's is the usual
        # cause (see state_dir in config.example.yaml).
        out.write(
            f"no state database in {status['state_dir']}: kcsync has not run with this "
            "config and state_dir yet\n"
        )
    q = status["queue"]
    out.write(
        f"queue: {q.get('pending', 0)} pending, {q.get('running', 0)} running, "
        f"{q.get('dead', 0)} dead\n"
    )
    for dead in status["dead_jobs"]:
        out.write(
            f"  dead: {dead['object']} ({dead['op']}, {plural(dead['attempts'], 'attempt')}): "
            f"{dead['last_error']}\n"
        )
    last = status["last_reconcile"]
    if last:
        when = datetime.fromtimestamp(last["at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ago = time.time() - last["at"]
        out.write(
            f"last reconcile: {when} ({ago:.0f}s ago), took {last['duration']:.1f}s, "
            f"drift {last['drift']}\n"
        )
    else:
        out.write("last reconcile: never\n")
    for folder, refused in status.get("refused_deletes", {}).items():
        out.write(
            f"deletes refused in {folder}: {refused['count']} ({refused['why']}); "
            f"once checked: kcsync approve-deletes --folder {folder}\n"
        )
    for f in status["folders"]:
        out.write(f"folder {f['path']} -> {f['prefix'] or '(no prefix)'}: ")
        out.write(f"{plural(f['objects'], 'object')}, {format_size(f['bytes'])}\n")


def approve_deletes(config: Config, folder: str | None, out: TextIO) -> int:
    """Let the next run perform the deletes the guard refused (in one folder, or all):
    at most as many as were refused, and with the folder's present disk trusted from now
    on. Exit 0 when something was approved."""
    db_path = config.state_dir / "kcsync.db"
    if not db_path.exists():
        out.write("no refused deletes to approve (no state yet)\n")
        return 1
    db = Database(db_path)
    try:
        guards = GuardState(db)
        refused = guards.refusals()
        chosen = {k: v for k, v in refused.items() if folder in (None, k, k + "/")}
        if not chosen:
            out.write(f"no refused deletes to approve{f' in {folder}' if folder else ''}\n")
            return 1
        for place, what in sorted(chosen.items()):
            try:
                device: int | None = os.stat(place).st_dev
            except OSError:
                out.write(f"{place}: the folder is not there; nothing approved\n")
                continue
            guards.approve(place, int(what["count"]), device)
            out.write(
                f"approved {plural(int(what['count']), 'delete')} in {place} (refused because "
                f"{what['why']}); the next run performs them\n"
            )
    finally:
        db.close()
    out.write("a running daemon reconciles at its next tick, or now with: systemctl reload\n")
    return 0
