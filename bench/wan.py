"""Scenario W: A, B and C again, but through a real network's round trips and bandwidth.

Every request of the tools goes through bench/netem.py (a child process, one per link), which
connects to the server from 127.0.0.2: the access log proves nothing went around it. Each
tool runs twice where it has a concurrency setting: with its own defaults, and with kcsync's
default concurrency. kcsync runs with its default config (only the segment size and threshold
of scenario B are set, so B stays comparable).

Ceilings, computed for the link in the same run: small files at most ``workers / RTT`` PUTs
a second (each costs a round trip), and no more than the link carries (rate / mean file
size); the large file at the link rate, or, unlimited, what a raw parallel PUT reaches
through the proxy (bench/baseline.py).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from bench import netem
from bench.backends import Backend
from bench.datasets import Tree
from bench.measure import Sample
from bench.report import Table
from bench.tools import PY, Job

if TYPE_CHECKING:
    from bench.run import Bench


@dataclass(frozen=True)
class WanSizes:
    files: int  # A: small files; C: tiny files kcsync reruns over
    big: int  # B: bytes of the one large file
    rtts: tuple[float, ...]  # seconds
    links: tuple[float, ...]  # Mbit/s per direction; 0 = no cap
    peer_files: int = 100  # C: the peers rerun this many (rclone's is C's bar)
    # The peers also at kcsync's concurrency (the smoke test skips it: the same code path)
    same_concurrency: bool = True
    parts: str = "ABC"  # which of A, B, C to repeat (a run of one part is minutes, not hours)


@dataclass(frozen=True)
class Variant:
    """One row: a tool and the concurrency it runs with (None: its own default)."""

    row: str
    tool: str
    workers: int | None
    concurrency: str


def variants(kc_workers: int, same_concurrency: bool = True) -> list[Variant]:
    rows = [
        Variant("kcsync", "kcsync", None, f"default ({kc_workers})"),
        Variant("rclone", "rclone", None, "default (4 transfers, 8 checkers)"),
        Variant(f"rclone@{kc_workers}", "rclone", kc_workers, str(kc_workers)),
        Variant("swift", "swift", None, "default (10 object/segment threads)"),
        Variant(f"swift@{kc_workers}", "swift", kc_workers, str(kc_workers)),
    ]
    return [v for v in rows if same_concurrency or "@" not in v.row]


def small_file_ceiling(workers: int, rtt: float, rate: float, mean_size: float) -> dict[str, float]:
    """Files per second a first upload of small files cannot beat: ``workers`` PUTs in flight,
    each a round trip; and, on a capped link, its rate over the mean file size."""
    out = {"round_trip": workers / rtt}
    if rate:
        out["link"] = rate / mean_size
    out["min"] = min(out.values())
    return out


def computed(wall: float, **extra: object) -> Sample:
    """A ceiling row: a time that follows from the link, not a measured run."""
    nan = float("nan")
    return Sample(wall=wall, cpu=nan, rss_mb=nan, code=0, extra={"computed": True, **extra})


def kcsync_default_workers(code: str) -> int:
    """kcsync's default ``workers``, from its own config parser (the snapshot being measured)."""
    probe = (
        "import sys, tempfile; from pathlib import Path; from kcsync.config import parse_config\n"
        "d = tempfile.mkdtemp(); Path(d, 'tree').mkdir()\n"
        "c = parse_config({'auth': {'method': 'v1', 'url': 'http://127.0.0.1:1/auth/v1.0',\n"
        "    'user': 'u', 'key': 'k'}, 'bucket': 'probe', 'folders': [{'path': d + '/tree'}],\n"
        "    'state_dir': d + '/state'}, source=Path(d) / 'c.yaml')\n"
        "print(c.workers)"
    )
    out = subprocess.run(
        [PY, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": code},
        cwd=code,
    )
    return int(out.stdout.strip())


def probe(auth_url: str, user: str, key: str, proxy_port: int) -> float:
    """Auth through the proxy, check the storage URL it answers stays on the proxy, and time
    10 sequential HEADs on one connection (each must cost a round trip)."""
    s = requests.Session()
    r = s.get(auth_url, headers={"X-Auth-User": user, "X-Auth-Key": key}, timeout=30)
    r.raise_for_status()
    storage = r.headers["X-Storage-Url"]
    if urlsplit(storage).port != proxy_port:
        raise RuntimeError(f"auth through the proxy answered {storage}: it bypasses the proxy")
    headers = {"X-Auth-Token": r.headers["X-Auth-Token"]}
    s.head(storage, headers=headers, timeout=30)
    t0 = time.perf_counter()
    for _ in range(10):
        s.head(storage, headers=headers, timeout=30).raise_for_status()
    return time.perf_counter() - t0


class Wan:
    """W on one backend, every RTT × link."""

    def __init__(self, bench: Bench, be: Backend, sizes: WanSizes) -> None:
        self.bench, self.be, self.w = bench, be, sizes
        self.kc = kcsync_default_workers(str(bench.code))
        self.rows = variants(self.kc, sizes.same_concurrency)

    def job(self, tree: Tree, bucket: str, workers: int | None, big: bool = False) -> Job:
        return dataclasses.replace(self.bench.job(tree, bucket, big), workers=workers)

    def run(self) -> None:
        b, be, w = self.bench, self.be, self.w
        n_a = min(w.files, be.caps.small_files or w.files)
        n_c = min(w.files, be.caps.tree_files or w.files)
        small = b.tree("small", n_a) if "A" in w.parts else None
        big = b.tree("big", min(w.big, be.caps.big_bytes or w.big)) if "B" in w.parts else None
        trees = []
        if "C" in w.parts:
            tiny, peers = b.tree("tiny", n_c), b.tree("tiny", min(n_c, w.peer_files))
            trees = list(dict.fromkeys([tiny, peers]))
        # The reruns' buckets are uploaded once, straight to the server, and reused under
        # every link. kcsync's index belongs to one storage URL (daemon._check_target), and
        # the proxy's port is part of it: rerun() re-targets it once per link, unmeasured.
        reruns = [(t, b.name("wc", be.name, t.files)) for t in trees]
        setups = {}
        for tree, bucket in reruns:
            say(f"  W C setup: kcsync uploads {tree.files} tiny files directly")
            setups[bucket] = b.measure(
                "W C setup", "kcsync", "upload", self.job(tree, bucket, None), be
            )
        url = urlsplit(be.auth_url)
        assert url.hostname is not None and url.port is not None
        for rtt in w.rtts:
            for mbit in w.links:
                link = netem.Link(rtt, mbit * 1e6 / 8)
                log = b.tmp / "logs" / "netem.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                first = len(b.tables)
                with netem.running(link, (url.hostname, url.port), log) as ne:
                    proxied = dataclasses.replace(
                        be, auth_url=be.auth_url.replace(f":{url.port}/", f":{ne.port}/")
                    )
                    took = probe(proxied.auth_url, be.user, be.key, ne.port)
                    note = (
                        f"probe: 10 sequential HEADs on one connection took {took:.3f} s "
                        f"through the proxy (≥ {10 * rtt:.2f} s expected)"
                    )
                    say(f"[{be.name}] W over {link.describe()}: {note}")
                    if small is not None:
                        self.first_upload(link, ne, proxied, small, "A", note)
                        b.checkpoint()
                    if big is not None:
                        self.first_upload(link, ne, proxied, big, "B", note)
                        b.checkpoint()
                    for tree, bucket in reruns:
                        self.rerun(
                            link,
                            ne,
                            proxied,
                            tree,
                            bucket,
                            setups[bucket],
                            note,
                            everyone=tree is trees[-1],
                        )
                c = ne.counters
                for t in b.tables[first:]:
                    t.notes.append(
                        f"the proxy over this whole link (every table of it): "
                        f"{c.get('connections', 0):,.0f} connections, "
                        f"{c.get('bytes_up', 0) / 1e6:,.1f} MB up, "
                        f"{c.get('bytes_down', 0) / 1e6:,.1f} MB down, "
                        f"CPU {c.get('cpu_s', float('nan')):.2f} s"
                    )
                b.checkpoint()
        for _, bucket in reruns:
            b.drop(be, bucket)

    def measure(
        self, table: Table, v: Variant, op: str, job: Job, ne: netem.Running, proxied: Backend
    ) -> Sample:
        cpu0 = ne.cpu()
        label = f"W {table.part} {table.link} · {v.concurrency}"
        s = self.bench.measure(label, v.tool, op, job, proxied)
        s.extra.update(proxy_cpu=ne.cpu() - cpu0, concurrency=v.concurrency)
        clients = s.traffic.clients if s.traffic else {}
        s.extra["proxied"] = clients.get(netem.SOURCE, 0)
        if direct := sum(n for c, n in clients.items() if c != netem.SOURCE):
            table.notes.append(f"{v.row}: {direct} requests did not come through the proxy")
            say(f"    WARNING: {direct} requests of {v.row} bypassed the proxy: {clients}")
        table.add(v.row, s)
        return s

    def first_upload(
        self,
        link: netem.Link,
        ne: netem.Running,
        proxied: Backend,
        tree: Tree,
        part: str,
        note: str,
    ) -> None:
        b, be = self.bench, self.be
        is_big = part == "B"
        title = "first upload, one large file" if is_big else "first upload, small files"
        say(f"[{be.name}] W{part} over {link.describe()}: {title} ({tree.files} files)")
        table = Table("W", title, be.name, tree.files, tree.bytes, reference="ceiling")
        table.part, table.link = part, link.describe()
        table.notes.append(note)
        rows = list(self.rows)
        # Unlimited, the large file's ceiling is what a bare parallel PUT gets through. Small
        # files get one under every link: the local server may be slower than the round
        # trips (Swift here takes ~70 small PUTs/s even on loopback), and this row shows it.
        if not (is_big and link.rate):
            rows.append(Variant("raw-put", "raw-put", self.kc, str(self.kc)))
        for rep in range(b.repeat):
            order = {v.row: v for v in rows}
            for row in rotate(list(order), rep):
                v = order[row]
                bucket = b.name("w", part, v.row.replace("@", "-"), rep)
                s = self.measure(
                    table, v, "upload", self.job(tree, bucket, v.workers, is_big), ne, proxied
                )
                if v.tool != "raw-put":
                    s.extra["objects"] = be.store.object_count(bucket)
                    if s.extra["objects"] != tree.files:
                        table.notes.append(f"{v.row} rep {rep}: {s.extra['objects']} objects")
                b.drop(be, bucket, is_big)
        if is_big and link.rate:
            table.add("ceiling", computed(tree.bytes / link.rate, what="link rate"))
        elif is_big:
            table.rows["ceiling"] = table.rows["raw-put"]
            table.rows.pop("raw-put")
        else:
            c = small_file_ceiling(self.kc, link.rtt, link.rate, tree.bytes / tree.files)
            table.add("ceiling", computed(tree.files / c["min"], **c))
        b.tables.append(table)

    def rerun(
        self,
        link: netem.Link,
        ne: netem.Running,
        proxied: Backend,
        tree: Tree,
        bucket: str,
        setup: Sample,
        note: str,
        everyone: bool,
    ) -> None:
        b, be = self.bench, self.be
        say(f"[{be.name}] WC over {link.describe()}: rerun of {tree.files} files")
        table = Table("W", "rerun, nothing changed", be.name, tree.files, tree.bytes, "floor")
        table.part, table.link, table.setup = "C", link.describe(), setup
        table.notes.append(note)
        floor = Variant("floor", "floor", None, "1 (paged listing)")
        rows = [*(self.rows if everyone else self.rows[:1]), floor]
        # Through this proxy the storage URL differs from the setup's, so kcsync's first run
        # here drops its index and hashes every file again (the safe rule for an index that
        # may describe another account). A user reruns against one URL: make the index
        # this URL's once, unmeasured, so C times the rerun users get.
        b.measure(f"W C re-target {link.describe()}", "kcsync", "rerun",
                  self.job(tree, bucket, None), proxied)  # fmt: skip
        for rep in range(b.repeat):
            order = {v.row: v for v in rows}
            for row in rotate(list(order), rep):
                v = order[row]
                self.measure(table, v, "rerun", self.job(tree, bucket, v.workers), ne, proxied)
        b.tables.append(table)


def parse_list(text: str, scale: float = 1.0) -> tuple[float, ...]:
    """ "20,60" -> (0.02, 0.06) with scale 0.001."""
    return tuple(float(x) * scale for x in text.split(",") if x.strip())


def rotate(items: list[str], rep: int) -> list[str]:
    from bench.run import rotate as run_rotate  # run.py imports this module

    return run_rotate(items, rep)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
