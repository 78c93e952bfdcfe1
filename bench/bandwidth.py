"""Scenario BW: does `bandwidth.limit` hold? Uploads and restores, small files and a large
one, each measured against its limit.

    python3 -m bench.bandwidth [--backend swift|rgw] [--small-files 300] [--big-mib 32]

Uploads run in the daemon (its startup reconcile sends the folder), and the achieved
rate is read from its own /metrics endpoint (`kcsync_sent_bytes_total`, counted where
the limit is applied) every 0.2 s. Restores are measured from the outside, by the bytes
on disk under the target directory. The rate reported is the steady one, between 10 % and
90 % of the bytes (start-up, listing and the tail are not the limiter's doing), beside the
whole-run average. Prints JSON, and a Markdown table with --markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.daemon_latency import server
from kcsync.metrics import scrape_value

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
TOLERANCE = 0.10  # the bar: within 10 % of the limit


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Bytes/s between the samples where 10 % and 90 % of ``total`` had gone."""
    lo = next(s for s in samples if s[1] >= total * 0.1)
    hi = next(s for s in samples if s[1] >= total * 0.9)
    if hi[0] <= lo[0]:
        return float("nan")
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def poll(
    read: Callable[[], int], total: int, proc: subprocess.Popen[bytes]
) -> list[tuple[float, int]]:
    samples = []
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        now, got = time.monotonic(), read()
        samples.append((now, got))
        if got >= total or proc.poll() is not None:
            return samples
        time.sleep(0.2)  # the sampling step
    raise TimeoutError("the transfer never finished")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(srv: Any, tmp: Path, data: Path, bucket: str, limit: int, **extra: Any) -> Path:
    path = tmp / f"{bucket}.yaml"
    settings = {
        "auth": {"method": "v1", "url": srv.auth_url, "user": srv.user, "key": srv.key},
        "bucket": bucket,
        "folders": [{"path": str(data), "prefix": ""}],
        "state_dir": str(tmp / f"state-{bucket}"),
        "workers": 8,
        "large_objects": {"threshold": "8MiB", "segment_size": "4MiB"},
        "daemon": {"reconcile_interval": "1h"},
        "bandwidth": {"limit": limit},
        **extra,
    }
    path.write_text(yaml.safe_dump(settings))
    path.chmod(0o600)
    return path


def kcsync(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kcsync.cli", "-c", str(cfg), "--log-format", "json", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def upload(srv: Any, tmp: Path, data: Path, bucket: str, limit: int) -> dict[str, Any]:
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    port = free_port()
    cfg = config(srv, tmp, data, bucket, limit, metrics={"listen": f"127.0.0.1:{port}"})
    started = time.monotonic()
    proc = kcsync(cfg)

    def sent() -> int:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            return 0  # not listening yet
        return int(scrape_value(text, "kcsync_sent_bytes_total") or 0)

    try:
        samples = poll(sent, total, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    return result("upload", limit, total, samples, time.monotonic() - started)


def restore(srv: Any, tmp: Path, data: Path, bucket: str, limit: int) -> dict[str, Any]:
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    target = tmp / f"restored-{bucket}"
    cfg = config(srv, tmp, data, bucket, limit)
    started = time.monotonic()
    proc = kcsync(cfg, "restore", "--to", str(target))

    def written() -> int:
        n = 0
        for root, _, names in os.walk(target):
            for name in names:
                # A file renamed into place between the listing and the stat: next sample.
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(os.path.join(root, name))
                    # Blocks, not size: a large object's temporary file is sized up front
                    # (sparse) and filled by ranged GETs.
                    n += min(st.st_size, st.st_blocks * 512)
        return n

    samples = poll(written, total, proc)
    code = proc.wait(900)
    assert code == 0, f"restore exited {code}"
    return result("restore", limit, total, samples, time.monotonic() - started)


def result(
    op: str, limit: int, total: int, samples: list[tuple[float, int]], wall: float
) -> dict[str, Any]:
    rate = steady_rate(samples, total)
    return {
        "op": op,
        "limit_mib_s": round(limit / MiB, 2),
        "mib": round(total / MiB, 1),
        "steady_mib_s": round(rate / MiB, 3),
        "error_pct": round((rate - limit) / limit * 100, 1),
        "run_avg_mib_s": round(total / wall / MiB, 3),
        "wall_s": round(wall, 1),
        "within_10pct": abs(rate - limit) <= TOLERANCE * limit,
    }


def make_data(tmp: Path, small_files: int, small_kib: int, big_mib: int) -> tuple[Path, Path]:
    rng = random.Random(20)
    small, big = tmp / "small", tmp / "big"
    for i in range(small_files):
        path = small / f"d{i % 10}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(small_kib * 1024))
    big.mkdir()
    with open(big / "video.raw", "wb") as f:
        for _ in range(big_mib):
            f.write(rng.randbytes(MiB))
    return small, big


def measure(
    srv: Any,
    tmp: Path,
    *,
    small_files: int,
    small_kib: int,
    big_mib: int,
    small_limit: int,
    big_limit: int,
) -> list[dict[str, Any]]:
    small, big = make_data(tmp, small_files, small_kib, big_mib)
    rows = []
    for kind, data, limit in (("small", small, small_limit), ("large", big, big_limit)):
        bucket = f"bw-{kind}-{os.getpid()}"
        for row in (upload(srv, tmp, data, bucket, limit), restore(srv, tmp, data, bucket, limit)):
            rows.append({"files": kind, **row})
    return rows


def markdown(backend: str, rows: list[dict[str, Any]], shape: str) -> str:
    lines = [
        f"### BW — bandwidth.limit — {backend}",
        "",
        shape,
        "",
        "| files | op | limit MiB/s | MiB | steady MiB/s | vs limit | run average MiB/s | wall s "
        "| within 10 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['files']} | {r['op']} | {r['limit_mib_s']} | {r['mib']} | {r['steady_mib_s']} "
            f"| {r['error_pct']:+.1f} % | {r['run_avg_mib_s']} | {r['wall_s']} "
            f"| {'yes' if r['within_10pct'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="swift", choices=("swift", "rgw"))
    parser.add_argument("--small-files", type=int, default=300)
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--big-mib", type=int, default=32)
    parser.add_argument("--small-limit", default="2MiB")
    parser.add_argument("--big-limit", default="4MiB")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    from kcsync.units import parse_size

    small_limit, big_limit = parse_size(args.small_limit), parse_size(args.big_limit)
    with server(args.backend) as srv, tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rows = measure(
            srv,
            Path(tmp),
            small_files=args.small_files,
            small_kib=args.small_kib,
            big_mib=args.big_mib,
            small_limit=small_limit,
            big_limit=big_limit,
        )
    if args.markdown:
        shape = (
            f"Small: {args.small_files} files of {args.small_kib} KiB at {args.small_limit}/s; "
            f"large: one {args.big_mib} MiB file (SLO, 4 MiB segments) at {args.big_limit}/s; "
            "8 workers."
        )
        print(markdown(args.backend, rows, shape))
    else:
        print(json.dumps({"backend": args.backend, "rows": rows}, indent=2))
    return 0 if all(r["within_10pct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
