"""The command line of each tool (and of the baselines) for one job.

Every tool stores ``TREE/rel/path`` for a file ``rel/path`` of a folder named TREE, so a
bucket written by one can be checked by another.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.backends import Backend

PY = sys.executable
_SWIFT_BIN = Path(PY).with_name("swift")
SWIFT = str(_SWIFT_BIN) if _SWIFT_BIN.exists() else "swift"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Job:
    tree: Path
    bucket: str
    state: Path  # kcsync's state_dir (kept across runs that share a bucket)
    workers: int | None  # None: each tool's own default concurrency (scenario W)
    segment: int
    threshold: int
    big: Path | None = None  # baseline put: send this file as segments
    code: Path = REPO  # where the kcsync package is imported from (a snapshot, see run.py)
    dest: Path | None = None  # restore: the empty directory to restore into


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    shown_env: dict[str, str]  # the part of env worth showing in the report
    config: str = ""  # kcsync: its config file


def size(n: int) -> str:
    """kcsync's notation for a size: 64MiB, 512KiB or plain bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n}B"


def command(tool: str, op: str, job: Job, be: Backend) -> Command:
    """``op``: "upload" (first upload), "rerun" (check an already synced bucket) or
    "restore" (the bucket's copy of the tree into ``job.dest``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    if tool == "kcsync":
        cfg = job.state.with_suffix(".yaml")
        job.state.parent.mkdir(parents=True, exist_ok=True)
        settings = {
            "auth": {"method": "v1", "url": be.auth_url, "user": be.user, "key": be.key},
            "bucket": job.bucket,
            "folders": [{"path": str(job.tree), "prefix": f"{job.tree.name}/"}],
            **({"workers": job.workers} if job.workers else {}),
            "large_objects": {"threshold": size(job.threshold), "segment_size": size(job.segment)},
            "state_dir": str(job.state),
            "log": {"format": "json"},
        }
        text = yaml.safe_dump(settings)
        cfg.write_text(text)
        cfg.chmod(0o600)
        argv = [PY, "-m", "kcsync.cli", "-c", str(cfg), "--once", "--log-format", "json"]
        if op == "restore":
            argv[-3:-2] = ["restore", "--to", str(job.dest)]
        return Command(argv, {**base, "PYTHONPATH": str(job.code)}, job.code, {}, text)
    if tool == "rclone":
        remote = {
            "RCLONE_CONFIG_T_TYPE": "swift",
            "RCLONE_CONFIG_T_USER": be.user,
            "RCLONE_CONFIG_T_KEY": be.key,
            "RCLONE_CONFIG_T_AUTH": be.auth_url,
            "RCLONE_CONFIG_T_AUTH_VERSION": "1",
        }
        ends = [str(job.tree), f"T:{job.bucket}/{job.tree.name}"]
        if op == "restore":
            ends = [ends[1], str(job.dest)]
        argv = [
            "rclone", "--config", "/dev/null", "sync" if op == "rerun" else "copy", *ends,
            *(["--transfers", str(job.workers), "--checkers", str(job.workers)]
              if job.workers else []),
            "--swift-chunk-size", f"{job.segment // 1024}Ki", "-q",
            # Its parallel ranged download of one large file, at the same concurrency.
            *(["--multi-thread-streams", str(job.workers)]
              if op == "restore" and job.workers else []),
        ]  # fmt: skip
        return Command(argv, {**base, **remote}, job.tree.parent, remote)
    if tool == "swift" and op == "restore":
        argv = [
            SWIFT, "-A", be.auth_url, "-U", be.user, "-K", be.key,
            "download", "--prefix", f"{job.tree.name}/", "-D", str(job.dest),
            *(["--object-threads", str(job.workers), "--container-threads", str(job.workers)]
              if job.workers else []),
            job.bucket,
        ]  # fmt: skip
        return Command(argv, base, job.tree.parent, {})
    if tool == "swift":
        argv = [
            SWIFT, "-A", be.auth_url, "-U", be.user, "-K", be.key,
            "upload", "--use-slo", "-S", str(job.segment),
            *(["--object-threads", str(job.workers), "--segment-threads", str(job.workers)]
              if job.workers else []),
            *(["--skip-identical"] if op == "rerun" else []),
            job.bucket, job.tree.name,
        ]  # fmt: skip
        return Command(argv, base, job.tree.parent, {})
    if tool in ("raw-put", "raw-put-md5", "floor", "raw-get"):
        mode = {"floor": "floor", "raw-get": "get"}.get(tool, "put")
        argv = [
            PY, "-m", "bench.baseline", mode,
            "--auth", be.auth_url, "--user", be.user, "--key", be.key,
            "--bucket", job.bucket, "--tree", str(job.tree),
            *(["--threads", str(job.workers)] if job.workers else []),
            *(["--big", str(job.big), "--segment", str(job.segment)] if job.big else []),
            *(["--md5"] if tool == "raw-put-md5" else []),
            *(["--dest", str(job.dest)] if tool == "raw-get" else []),
        ]  # fmt: skip
        return Command(argv, {**base, "PYTHONPATH": str(REPO)}, REPO, {})
    raise ValueError(f"unknown tool {tool!r}")
