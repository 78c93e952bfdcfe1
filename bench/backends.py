"""The local servers the benchmark runs against, with what the harness needs of each."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import AccessLog
from bench.store import Store

GiB = 1 << 30


@dataclass(frozen=True)
class Caps:
    """Largest data sets a backend can hold; RGW's memstore keeps everything in RAM
    (plus ~50 KB per object), so its runs are smaller and the report says so."""

    small_files: int | None = None  # scenario A
    tree_files: int | None = None  # scenarios C and D
    big_bytes: int | None = None  # scenarios B and G
    memory_runs: bool = True  # scenario F (kcsync's own RSS: one backend is enough)
    note: str = ""


RGW_CAPS = Caps(
    small_files=5000,
    tree_files=10000,
    big_bytes=1 * GiB,
    memory_runs=False,
    note="RGW keeps objects in an 8 GiB memstore in RAM (about 50 KB more per object), so A, B/G "
    "and C/D are capped at 5,000 files, 1 GiB and 10,000 files there; F runs on Swift only.",
)


@dataclass
class Backend:
    name: str
    auth_url: str
    user: str
    key: str
    log: AccessLog
    version: str
    caps: Caps = field(default_factory=Caps)
    ceph_conf: Path | None = None
    swift_root: Path | None = None  # Swift: where its databases are (bench/populate.py)

    def __post_init__(self) -> None:
        self.store = Store(self.auth_url, self.user, self.key)

    def gc(self) -> None:
        """RGW: purge deleted tails now, not in 2 minutes, so the memstore has room again."""
        if self.ceph_conf is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CEPH"))}
        subprocess.run(
            ["radosgw-admin", "-c", str(self.ceph_conf), "gc", "process", "--include-all"],
            env=env,
            capture_output=True,
            check=False,
            timeout=300,
        )


def start(name: str, stack: contextlib.ExitStack, tmp: Path) -> Backend:
    if name == "swift":
        from tests.servers.swift import running_swift

        root = tmp / "swift-server"
        root.mkdir()
        s = stack.enter_context(running_swift(root))
        return Backend(
            "swift",
            s.auth_url,
            s.user,
            s.key,
            AccessLog(s.root / "log" / "proxy.log", "swift"),
            f"OpenStack Swift {importlib.metadata.version('swift')} (one replica, workers = 0)",
            swift_root=s.root,
        )
    if name == "rgw":
        from tests.servers import rgw
        from tests.servers.rgw import running_rgw

        # Four tools' copies of A (about 0.7 GB each, deleted between tools) filled 2 GiB
        # before the garbage collector caught up, and a full OSD refuses even deletes.
        rgw.MEMSTORE_BYTES = 8 * GiB

        r = stack.enter_context(running_rgw())
        out = subprocess.run(["radosgw", "--version"], capture_output=True, text=True, check=False)
        return Backend(
            "rgw",
            r.auth_url,
            r.user,
            r.key,
            AccessLog(r.root / "log" / "client.rgw.log", "rgw"),
            f"Ceph RGW {out.stdout.split()[2] if out.stdout else '?'} (memstore, one OSD)",
            caps=RGW_CAPS,
            ceph_conf=r.root / "ceph.conf",
        )
    raise ValueError(f"unknown backend {name!r}")
