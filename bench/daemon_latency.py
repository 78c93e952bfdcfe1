"""Scenario E: how long from a file being closed to its object being visible, with the
daemon running, and how long a reconcile over 10,000 unchanged files takes.

    python3 -m bench.daemon_latency [--backend swift|rgw] [--singles 50] [--burst 1000]

Prints JSON; ``bench.run`` calls ``measure`` against its own server. Latency is measured
from close() to the first successful HEAD (singles, polled every 5 ms) or to the daemon's
log line saying the object is in place (burst).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def server(backend: str) -> Iterator[Any]:
    if backend == "swift":
        from tests.servers.swift import running_swift

        with running_swift() as s:
            yield s
    else:
        from tests.servers.rgw import running_rgw

        with running_rgw() as s:
            yield s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_log(log: Path, event: str, count: int = 1, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if line.startswith("{") and f'"event": "{event}"' in line
        ]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise TimeoutError(event)


def measure(
    srv: Any,
    root: Path,
    *,
    bucket: str = "latency",
    singles: int = 50,
    burst: int = 1000,
    unchanged: int = 10_000,
    workers: int = 8,
    code: Path = REPO,
) -> dict[str, Any]:
    """Run the daemon against ``srv`` (auth_url, user, key) with its files under ``root``."""
    rng = random.Random(7)
    result: dict[str, Any] = {}
    data = root / "data"
    data.mkdir(parents=True)
    for i in range(unchanged):
        (data / f"u{i // 1000:02d}").mkdir(exist_ok=True)
        (data / f"u{i // 1000:02d}" / f"{i}.bin").write_bytes(rng.randbytes(64))
    config = root / "kcsync.yaml"
    config.write_text(
        f"auth: {{method: v1, url: '{srv.auth_url}', user: '{srv.user}', key: '{srv.key}'}}\n"
        f"bucket: {bucket}\nfolders: [{{path: '{data}', prefix: ''}}]\n"
        f"state_dir: '{root / 'state'}'\nworkers: {workers}\n"
        "daemon: {settle: 2s, reconcile_interval: 1h}\n"
    )
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "kcsync.cli", "-c", str(config), "--log-format", "json"]
    subprocess.run([*cmd, "--once"], env=env, check=True, capture_output=True)
    auth = requests.get(srv.auth_url, headers={"X-Auth-User": srv.user, "X-Auth-Key": srv.key})
    token, storage = auth.headers["X-Auth-Token"], auth.headers["X-Storage-Url"]
    http = requests.Session()
    http.headers["X-Auth-Token"] = token
    log = root / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        first = wait_log(log, "reconcile finished")
        result["startup_reconcile_unchanged"] = {"files": unchanged, **first}
        daemon.send_signal(signal.SIGHUP)
        second = wait_log(log, "reconcile finished", 2)
        result["sighup_reconcile_unchanged"] = {"files": unchanged, **second}

        lat_single = []
        for i in range(singles):
            body = rng.randbytes(100_000)
            with open(data / f"single-{i}.bin", "wb") as f:
                f.write(body)
            closed = time.monotonic()
            while http.head(f"{storage}/{bucket}/single-{i}.bin").status_code != 200:
                time.sleep(0.005)
            lat_single.append(time.monotonic() - closed)
        result["single"] = {
            "n": len(lat_single),
            "p50_s": round(statistics.median(lat_single), 3),
            "p95_s": round(percentile(lat_single, 0.95), 3),
            "max_s": round(max(lat_single), 3),
        }

        # Burst: close times against the daemon's own "uploaded" log lines (written when
        # the object is in place), so the measurement adds no load to the server.
        # The bodies are made first: on CPUs the daemon and the server share, generating
        # 130 MB of random bytes inside the burst would time the bench's generator too.
        # Writing them is the writer's share a user's burst (a copy) costs as well.
        bodies = [rng.randbytes(rng.randint(4096, 256 * 1024)) for _ in range(burst)]
        closed_at: dict[str, float] = {}
        (data / "burst").mkdir()
        for i, body in enumerate(bodies):
            name = f"burst/{i:05d}.bin"
            with open(data / name, "wb") as f:
                f.write(body)
            closed_at[name] = time.time()
        del bodies
        wait_log(log, "uploaded", singles + burst)
        seen = {
            e["object"]: datetime.fromisoformat(e["timestamp"]).timestamp()
            for e in map(json.loads, filter(None, log.read_text().splitlines()))
            if e.get("event") == "uploaded" and e.get("object", "").startswith("burst/")
        }
        lat = [seen[n] - closed_at[n] for n in seen]
        span = max(seen.values()) - min(closed_at.values())
        result["burst"] = {
            "n": len(seen),
            "p50_s": round(statistics.median(lat), 3),
            "p95_s": round(percentile(lat, 0.95), 3),
            "drain_s": round(span, 2),
            "files_per_s": round(len(seen) / span, 1),
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="swift", choices=("swift", "rgw"))
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--unchanged", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with server(args.backend) as srv, tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        result = {
            "backend": args.backend,
            **measure(
                srv,
                Path(tmp),
                singles=args.singles,
                burst=args.burst,
                unchanged=args.unchanged,
                workers=args.workers,
            ),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
