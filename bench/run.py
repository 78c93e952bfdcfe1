"""kcsync benchmark: ``python3 -m bench.run [--quick] [--backends swift,rgw] [--repeat 3]``.

Starts the local server(s), makes the data sets under a temp dir, runs every tool with the
same concurrency and segment size (the order rotates each repetition), takes the median and
writes a Markdown report plus a PNG chart.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import datetime
import json
import math
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import backends, daemon_latency, datasets, populate, wan
from bench.backends import Backend
from bench.baseline import md5_rate
from bench.measure import Sample, run_measured, tail
from bench.report import Server, Table, write_report
from bench.tools import REPO, Command, Job, command

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PEERS = ("kcsync", "rclone", "swift")
ALL_SCENARIOS = ("A", "B", "C", "D", "E", "F", "F6", "G", "R", "W")
# W (a real network's latency) is hours at full size: asked for by name; --quick has a tiny W.
DEFAULT_SCENARIOS = "A,B,C,D,E,F,G,R"
RESTORERS = ("kcsync", "rclone", "swift", "raw-get")


# W: A's small files and C's tiny ones, B's file, under each RTT (s) x link (Mbit/s, 0 = no cap).
FULL_WAN = wan.WanSizes(10_000, 1 * GiB, (0.02, 0.06), (100.0, 0.0))


@dataclass(frozen=True)
class Sizes:
    small_files: int
    tree_files: int
    peer_tree_files: int  # C/D with the peers, on real objects (their reruns HEAD each one)
    big: int
    segment: int
    memory_files: tuple[int, ...]
    memory_files_xl: int
    md5_mib: int
    daemon: tuple[int, int, int]  # E: single files, burst files, unchanged files
    restore_files: int = 10_000  # R: A's data set (or this many of its files)
    restore_big: int = 2 * GiB  # R: B's large file (or one of this size)
    w: wan.WanSizes = FULL_WAN  # W (a field of its own: it is five numbers)

    @property
    def threshold(self) -> int:
        return 4 * self.segment  # small files are plain PUTs, the big file an SLO


FULL = Sizes(
    10_000, 100_000, 5_000, 2 * GiB, 64 * MiB, (10_000, 100_000), 1_000_000, 256, (50, 1000, 10_000)
)
# W quick: one short RTT, one capped link, a handful of files: W's plumbing, in seconds.
QUICK_WAN = wan.WanSizes(10, 6 * MiB, (0.02,), (100.0,), 10, same_concurrency=False)
# Quick is a CI smoke test that must finish both backends in about a minute: the small-file
# sets shrink more than 100x because the peers' reruns HEAD every object (~100/s here).
QUICK = Sizes(
    50, 100, 40, 32 * MiB, 1 * MiB, (30, 100), 1_000, 32, (3, 30, 100), 50, 32 * MiB, QUICK_WAN
)


def rotate(items: Sequence[str], rep: int) -> list[str]:
    """A,B,C then B,C,A then C,A,B: every tool goes first, warm or cold, equally often."""
    k = rep % len(items)
    return [*items[k:], *items[:k]]


@dataclass
class Bench:
    sizes: Sizes
    repeat: int
    workers: int
    seed: int
    tmp: Path
    code: Path  # the kcsync snapshot every run imports
    tables: list[Table] = field(default_factory=list)
    commands: dict[str, Command] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # E, per backend
    checkpoint: Callable[[], None] = lambda: None  # rewrites the report so far
    _trees: dict[str, datasets.Tree] = field(default_factory=dict)
    _serial: int = 0

    # -- plumbing ---------------------------------------------------------------------------

    def name(self, *parts: object) -> str:
        self._serial += 1
        return "-".join(["bench", *(str(p) for p in parts), str(self._serial)]).lower()

    def tree(self, kind: str, n: int) -> datasets.Tree:
        """A data set, made once per harness run and shared by the backends."""
        key = f"{kind}-{n}"
        if key not in self._trees:
            path = self.tmp / "data" / key / ("big" if kind == "big" else "tree")
            t0 = time.monotonic()
            if kind == "small":
                tree = datasets.small_files(path, n, 4 * KiB, 256 * KiB, self.seed)
            elif kind == "tiny":
                tree = datasets.small_files(path, n, 0, 2 * KiB, self.seed + 1)
            elif kind == "byte":
                tree = datasets.byte_files(path, n)
            else:
                tree = datasets.big_file(path, n, self.seed + 2)
            say(f"  data {key}: {tree.files} files, {tree.bytes / 1e6:.1f} MB in "
                f"{time.monotonic() - t0:.1f}s")  # fmt: skip
            self._trees[key] = tree
        return self._trees[key]

    def job(self, tree: datasets.Tree, bucket: str, big: bool = False) -> Job:
        return Job(
            tree=tree.path,
            bucket=bucket,
            state=self.tmp / "state" / bucket,
            workers=self.workers,
            segment=self.sizes.segment,
            threshold=self.sizes.threshold,
            big=tree.path / "big.bin" if big else None,
            code=self.code,
        )

    def measure(
        self,
        label: str,
        tool: str,
        op: str,
        job: Job,
        be: Backend,
        kill_when: Callable[[], bool] | None = None,
    ) -> Sample:
        cmd = command(tool, op, job, be)
        self.commands.setdefault(f"{label} · {tool} ({op})", cmd)
        be.log.mark()
        logs = self.tmp / "logs" / f"{job.bucket}-{tool}-{op}-{time.monotonic_ns()}"
        s = run_measured(cmd.argv, env=cmd.env, cwd=cmd.cwd, logs=logs, kill_when=kill_when)
        s.traffic = be.log.read()
        if tool in ("raw-put", "raw-put-md5", "floor") and s.code == 0:
            s.extra.update(json.loads((logs / "out").read_text().splitlines()[-1]))
        flag = "" if s.code == 0 else f"  EXIT {s.code}"
        say(f"    {tool:8} {op:6} {s.wall:8.2f}s cpu {s.cpu:7.2f}s rss {s.rss_mb:6.0f}MiB "
            f"req {s.requests}{flag}")  # fmt: skip
        if s.code not in (0, -9):
            say(tail(logs / "err"))
        return s

    def drop(self, be: Backend, bucket: str, big: bool = False) -> None:
        for c in (bucket, f"{bucket}_segments"):
            be.store.drop(c)
        if big and self.sizes.big >= GiB:
            be.gc()

    # -- scenarios --------------------------------------------------------------------------

    def first_upload(self, be: Backend, scenario: str, tree: datasets.Tree, title: str) -> None:
        """A and B: every tool and the raw-PUT ceiling into a fresh bucket each."""
        big = scenario == "B"
        table = Table(scenario, title, be.name, tree.files, tree.bytes, reference="raw-put")
        for rep in range(self.repeat):
            # Both also get the ceiling with each body hashed: on CPUs shared with the
            # server, it shows how much of the gap to the ceiling is the price of checking
            # what the server stored, and it is the bare client kcsync's CPU per small
            # file is held against (a client that checks cannot skip the MD5).
            ceilings = ["raw-put", "raw-put-md5"]
            for tool in rotate([*PEERS, *ceilings], rep):
                bucket = self.name(scenario, tool, rep)
                s = self.measure(scenario, tool, "upload", self.job(tree, bucket, big), be)
                if tool not in ceilings:
                    s.extra["objects"] = be.store.object_count(bucket)
                    if s.extra["objects"] != tree.files:
                        table.notes.append(f"{tool} rep {rep}: {s.extra['objects']} objects")
                table.add(tool, s)
                # Big objects always go (disk); small ones only from RGW's RAM.
                if big or be.caps.small_files is not None:
                    self.drop(be, bucket, big)
        self.tables.append(table)

    def listed_bucket(self, be: Backend, tree: datasets.Tree, bucket: str, label: str) -> Sample:
        """A bucket whose listing is written into Swift's container database (no bodies,
        see bench/populate.py), then kcsync's first run over it: it hashes every file once
        and adopts the listed objects, sending no PUT (the sample's traffic shows it)."""
        assert be.swift_root is not None
        be.store.create(bucket)
        t0 = time.monotonic()
        account = be.store.auth()[1].rstrip("/").rsplit("/", 1)[1]
        n, empty = populate.fill(be.swift_root, account, bucket, tree.path, f"{tree.path.name}/")
        for name in empty:
            be.store.put(bucket, name)
        say(f"  listing of {n} objects written into the container database and {len(empty)} "
            f"empty objects PUT in {time.monotonic() - t0:.1f}s; kcsync adopts them")  # fmt: skip
        setup = self.measure(label, "kcsync", "upload", self.job(tree, bucket), be)
        if setup.traffic and setup.traffic.writes:
            raise RuntimeError(f"{label}: kcsync wrote {setup.traffic.writes} objects")
        return setup

    def reruns(
        self, be: Backend, tree: datasets.Tree, want: set[str], tools: Sequence[str], listed: bool
    ) -> None:
        """C and D on one bucket: kcsync uploads it first (or adopts a written listing, when
        ``listed``), so its index exists; then the tools and the floor rerun on it, first
        unchanged (C), then with one file changed before every run (D)."""
        bucket = self.name("cd", be.name)
        job = self.job(tree, bucket)
        if listed:
            setup = self.listed_bucket(be, tree, bucket, "C setup")
        else:
            say(f"  setup: kcsync uploads {tree.files} files")
            setup = self.measure("C setup", "kcsync", "upload", job, be)
        c = Table("C", "rerun, nothing changed", be.name, tree.files, tree.bytes, "floor")
        c.setup = setup
        c.listed = listed
        for rep in range(self.repeat if "C" in want else 0):
            for tool in rotate([*tools, "floor"], rep):
                c.add(tool, self.measure("C", tool, "rerun", job, be))
        d = Table("D", "rerun, 1 file changed", be.name, tree.files, tree.bytes, "floor")
        d.listed = listed
        original = (tree.path / "d0000" / "f0000000.bin").read_bytes()
        serial = 0
        for rep in range(self.repeat if "D" in want else 0):
            for tool in rotate([*tools, "floor"], rep):
                if tool != "floor":
                    serial += 1
                    datasets.change_one(tree, serial, self.seed)
                d.add(tool, self.measure("D", tool, "rerun", job, be))
        (tree.path / "d0000" / "f0000000.bin").write_bytes(original)
        for t in (c, d):
            if t.rows:
                for tool, samples in t.rows.items():
                    writes = [x.traffic.writes if x.traffic else 0 for x in samples]
                    if any(writes):
                        t.notes.append(f"{tool}: object writes (PUT/POST/DELETE) per run: {writes}")
                self.tables.append(t)
        if be.caps.tree_files is not None:
            self.drop(be, bucket)

    def memory(self, be: Backend, counts: Sequence[int]) -> None:
        """F: kcsync's peak RSS on a no-change rerun, by file count."""
        table = Table("F", "kcsync memory, no-change rerun of 1-byte files", be.name, 0, 0, None)
        table.listed = be.swift_root is not None
        for n in counts:
            tree = self.tree("byte", n)
            bucket = self.name("f", n)
            job = self.job(tree, bucket)
            say(f"  F {n} files")
            if be.swift_root is not None:
                table.add(f"upload {n}", self.listed_bucket(be, tree, bucket, f"F {n}"))
            else:
                table.add(f"upload {n}", self.measure(f"F {n}", "kcsync", "upload", job, be))
            for _ in range(self.repeat):
                table.add(f"rerun {n}", self.measure(f"F {n}", "kcsync", "rerun", job, be))
        self.tables.append(table)

    def resume(self, be: Backend, tree: datasets.Tree) -> None:
        """G: kill a first upload of the big file once half its segments are listed, rerun,
        and count the segment bytes the rerun PUTs again."""
        total = math.ceil(tree.bytes / self.sizes.segment)
        table = Table("G", "resume after SIGKILL at ~50 %", be.name, 1, tree.bytes, None)
        for rep in range(self.repeat):
            for tool in rotate(PEERS, rep):
                bucket = self.name("g", tool, rep)
                segs = f"{bucket}_segments"
                job = self.job(tree, bucket)

                def half(segs: str = segs) -> bool:
                    return be.store.count(segs) * 2 >= total

                first = self.measure("G (killed)", tool, "upload", job, be, kill_when=half)
                listed = be.store.count(segs)
                s = self.measure("G", tool, "rerun" if tool == "swift" else "upload", job, be)
                resent = s.traffic.put_bytes_by_container.get(segs, 0) if s.traffic else 0
                s.extra.update(killed=first.code == -9, listed=listed, total=total, resent=resent)
                table.add(tool, s)
                self.drop(be, bucket, big=True)
        self.tables.append(table)

    def restore(self, be: Backend, tree: datasets.Tree, big: bool) -> None:
        """R: kcsync uploads the tree once; then every tool (and the raw GET ceiling:
        parallel ranged GETs for the large file) restores it into an empty directory."""
        bucket = self.name("r", be.name)
        job = self.job(tree, bucket, big)
        say(f"  setup: kcsync uploads {tree.files} files")
        setup = self.measure("R setup", "kcsync", "upload", job, be)
        what = "one large file" if big else "small files"
        table = Table("R", f"restore into an empty directory, {what}", be.name, tree.files,
                      tree.bytes, reference="raw-get")  # fmt: skip
        table.setup = setup
        for rep in range(self.repeat):
            for tool in rotate(RESTORERS, rep):
                dest = self.tmp / "restore" / f"{bucket}-{tool}-{rep}"
                dest.mkdir(parents=True)
                run = Job(**{**job.__dict__, "dest": dest})
                s = self.measure("R", tool, "restore", run, be)
                # The swift CLI keeps the whole object name below -D; the others the tree.
                got = dest / tree.path.name if tool == "swift" else dest
                files = [p for p in got.rglob("*") if p.is_file()]
                total = sum(p.stat().st_size for p in files)
                s.extra.update(files=len(files), bytes=total)
                if (len(files), total) != (tree.files, tree.bytes):
                    table.notes.append(f"{tool} rep {rep}: {len(files)} files, {total} bytes")
                table.add(tool, s)
                shutil.rmtree(dest, ignore_errors=True)
        self.tables.append(table)
        self.drop(be, bucket, big)

    def daemon_latency(self, be: Backend) -> None:
        """E: kcsync as a daemon on this server: close-to-visible latency of single files
        and of a burst, and the reconcile over unchanged files (bench/daemon_latency.py)."""
        singles, burst, unchanged = self.sizes.daemon
        root = self.tmp / "daemon" / be.name
        t0 = time.monotonic()
        bucket = self.name("e", be.name)
        result = daemon_latency.measure(
            be, root, bucket=bucket, singles=singles, burst=burst, unchanged=unchanged,
            workers=self.workers, code=self.code,
        )  # fmt: skip
        self.latency[be.name] = result
        say(f"    single p95 {result['single']['p95_s']}s, burst {result['burst']['files_per_s']}"
            f" files/s, in {time.monotonic() - t0:.0f}s")  # fmt: skip
        if be.caps.small_files is not None:
            self.drop(be, bucket)

    def run_backend(self, be: Backend, want: set[str]) -> None:
        # Scenarios a resumed run already has for this backend are not run again.
        want = want - {t.scenario for t in self.tables if t.backend == be.name}
        want -= {"E"} if be.name in self.latency else set()
        want -= {"F6"} if "F" not in want else set()
        z = self.sizes
        caps = be.caps
        began = time.monotonic()
        if "A" in want:
            n = min(z.small_files, caps.small_files or z.small_files)
            say(f"[{be.name}] A: first upload of {n} small files")
            self.first_upload(be, "A", self.tree("small", n), "first upload, small files")
            self.checkpoint()
        big = min(z.big, caps.big_bytes or z.big)
        if "B" in want:
            say(f"[{be.name}] B: first upload of one {big / GiB:.2f} GiB file")
            self.first_upload(be, "B", self.tree("big", big), "first upload, one large file")
            self.checkpoint()
        if want & {"C", "D"}:
            n = min(z.tree_files, caps.tree_files or z.tree_files)
            peers_n = min(n, z.peer_tree_files)
            if be.swift_root is not None and peers_n < n:
                say(f"[{be.name}] C/D: kcsync reruns over {n} tiny files (listing written)")
                self.reruns(be, self.tree("tiny", n), want, ("kcsync",), listed=True)
            say(f"[{be.name}] C/D: reruns of every tool over {peers_n} tiny files")
            self.reruns(be, self.tree("tiny", peers_n), want, PEERS, listed=False)
            self.checkpoint()
        if "E" in want:
            say(f"[{be.name}] E: daemon latency")
            self.daemon_latency(be)
            self.checkpoint()
        if want & {"F", "F6"} and caps.memory_runs:
            counts = [*z.memory_files, *([z.memory_files_xl] if "F6" in want else [])]
            say(f"[{be.name}] F: kcsync RSS for {counts} files of one byte")
            self.memory(be, counts)
            self.checkpoint()
        if "G" in want:
            say(f"[{be.name}] G: resume of a {big / GiB:.2f} GiB upload killed at ~50 %")
            self.resume(be, self.tree("big", big))
            self.checkpoint()
        if "R" in want:
            n = min(z.restore_files, caps.small_files or z.restore_files)
            say(f"[{be.name}] R: restore of {n} small files")
            self.restore(be, self.tree("small", n), big=False)
            self.checkpoint()
            size = min(z.restore_big, caps.big_bytes or z.restore_big)
            say(f"[{be.name}] R: restore of one {size / GiB:.2f} GiB file")
            self.restore(be, self.tree("big", size), big=True)
            self.checkpoint()
        if "W" in want:
            w = z.w
            say(f"[{be.name}] W: A, B, C through RTT {w.rtts} s x link {w.links} Mbit/s")
            wan.Wan(self, be, w).run()
            self.checkpoint()
        say(f"[{be.name}] done in {time.monotonic() - began:.0f}s")


def _placeholder(cmd: Command, servers: Sequence[Server], tmp: Path) -> Command:
    """A command of an earlier invocation, its server's (since gone) URL shown as $AUTH and
    its temp dir as $TMP."""

    def sub(text: str) -> str:
        for s in servers:
            text = text.replace(s.auth_url, "$AUTH")
        return text.replace(str(tmp), "$TMP")

    return Command(
        [sub(a) for a in cmd.argv],
        {k: sub(v) for k, v in cmd.env.items()},
        cmd.cwd,
        {k: sub(v) for k, v in cmd.shown_env.items()},
        sub(cmd.config),
    )


def same_kcsync(rev: str) -> bool:
    """Whether kcsync/ here is exactly what ``rev`` (from kcsync_rev) measured."""
    if " " in rev:  # measured with uncommitted changes: cannot tell
        return False
    diff = ["git", "-C", str(REPO), "diff", "--quiet", rev, "--", "kcsync"]
    return subprocess.run(diff, capture_output=True).returncode == 0


def kcsync_rev() -> str:
    """HEAD, plus a note if kcsync/ has uncommitted changes."""

    def git(*a: str) -> str:
        out = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True)
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--", "kcsync")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def loadavg() -> str:
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def workdir(parent: str | None, keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="kcsync-bench-", dir=parent))
    try:
        yield tmp
    finally:
        if keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="~100x smaller data sets (CI smoke)")
    p.add_argument("--backends", default="swift,rgw", help="comma list of swift, rgw")
    p.add_argument(
        "--scenarios",
        help=f"comma list of {', '.join(ALL_SCENARIOS)} (F6: F with 10^6 files too; W: "
        f"through a slow network). Default {DEFAULT_SCENARIOS} (quick: and W)",
    )
    p.add_argument(
        "--repeat", type=int, help="repetitions, the median is reported (default 3; quick: 1)"
    )
    p.add_argument("--workers", type=int, default=8, help="concurrency of every tool")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--r-files", type=int, help="R: files of the small-file restore")
    p.add_argument("--r-big-mib", type=int, help="R: MiB of the large-file restore")
    p.add_argument("--w-files", type=int, help="W: small files of A and tiny files of C")
    p.add_argument("--w-big-mib", type=int, help="W: MiB of B's large file")
    p.add_argument("--w-rtts", help="W: round-trip times in ms, e.g. 20,60")
    p.add_argument("--w-links", help="W: link rates in Mbit/s each way, 0 = no cap, e.g. 100,0")
    p.add_argument("--w-peer-files", type=int, help="W: files of the peers' reruns (C)")
    p.add_argument("--w-parts", default="ABC", help="W: which of A, B, C to run (default all)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument("--tmp", help="parent of the temp dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    p.add_argument(
        "--save", type=Path, help="also pickle the results here (re-render: --render-from)"
    )
    p.add_argument("--render-from", type=Path, help="only write the report from a --save file")
    p.add_argument(
        "--resume",
        type=Path,
        help="a --save file of a run cut short: keep its tables, run only what it lacks",
    )
    args = p.parse_args(argv)  # fmt: skip
    if args.render_from:
        write_report(args.out, **pickle.loads(args.render_from.read_bytes()))
        return 0
    scenarios = args.scenarios or DEFAULT_SCENARIOS + (",W" if args.quick else "")
    want = {s.strip().upper() for s in scenarios.split(",") if s.strip()}
    if bad := want - set(ALL_SCENARIOS):
        p.error(f"unknown scenarios: {', '.join(sorted(bad))}")
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = QUICK if args.quick else FULL
    if args.r_files:
        sizes = dataclasses.replace(sizes, restore_files=args.r_files)
    if args.r_big_mib:
        sizes = dataclasses.replace(sizes, restore_big=args.r_big_mib * MiB)
    w = sizes.w
    w = dataclasses.replace(
        w,
        files=args.w_files or w.files,
        big=args.w_big_mib * MiB if args.w_big_mib else w.big,
        rtts=wan.parse_list(args.w_rtts, 1e-3) if args.w_rtts else w.rtts,
        links=wan.parse_list(args.w_links) if args.w_links else w.links,
        peer_files=args.w_peer_files or w.peer_files,
        parts=args.w_parts.upper(),
    )
    if "B" in w.parts and w.big <= sizes.threshold:
        p.error(f"--w-big-mib: B's file must exceed the threshold ({sizes.threshold // MiB} MiB)")
    sizes = dataclasses.replace(sizes, w=w)
    repeat = args.repeat or (1 if args.quick else 3)
    started = time.monotonic()
    load_start = loadavg()
    with workdir(args.tmp, args.keep) as tmp:
        # Others may edit kcsync/ while this runs: every run imports one snapshot of it.
        code = tmp / "code"
        shutil.copytree(
            REPO / "kcsync", code / "kcsync", ignore=shutil.ignore_patterns("__pycache__")
        )
        # Byte-compiled as `pip install` leaves it; the peers' packages are. Otherwise a
        # PYTHONDONTWRITEBYTECODE environment makes every kcsync run compile its ~30
        # modules again (about 60 ms a run).
        compileall.compile_dir(code / "kcsync", quiet=1)
        rev = kcsync_rev()
        bench = Bench(sizes, repeat, args.workers, args.seed, tmp, code)
        prior: dict[str, Any] = {}
        kept: list[str] = []
        if args.resume:
            prior = pickle.loads(args.resume.read_bytes())
            if not same_kcsync(prior["kcsync_rev"]):
                p.error(f"--resume: kcsync/ changed since {prior['kcsync_rev']} was measured")
            kept = sorted({f"{t.scenario} on {t.backend}" for t in prior["tables"]})
            bench.tables = list(prior["tables"])
            bench.latency = prior.get("latency", {})
            bench.commands = {
                k: _placeholder(c, prior["backends"], prior["tmp"])
                for k, c in prior["commands"].items()
            }
            started -= prior["elapsed"]
            load_start = prior["load"][0]
        say(f"MD5 on one core over {sizes.md5_mib} MiB ...")
        md5 = md5_rate(sizes.md5_mib)
        used: list[Server] = []

        def report() -> dict[str, Any]:
            return {
                "tables": bench.tables,
                "commands": bench.commands,
                "backends": used,
                "md5_mbps": md5,
                "argv": [
                    "python3",
                    "-m",
                    "bench.run",
                    *(argv if argv is not None else sys.argv[1:]),
                ],
                "quick": args.quick,
                "repeat": repeat,
                "workers": args.workers,
                "segment": sizes.segment,
                "threshold": sizes.threshold,
                "elapsed": time.monotonic() - started,
                "tmp": tmp,
                "load": (load_start, loadavg()),
                "kcsync_rev": rev,
                "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "latency": bench.latency,
            }

        def checkpoint(final: bool = False) -> None:
            """Written after every scenario, so a run cut short still leaves its numbers."""
            data = report()
            remarks = []
            if prior:
                remarks.append(
                    f"this run was resumed (`--resume`) after the harness stopped on an error: "
                    f"{', '.join(kept)} come from the first invocation (finished "
                    f"{prior['generated']}, same kcsync revision, same machine); the other "
                    "tables from the second. Elapsed time counts both."
                )
            if not final:
                remarks.append("partial report: the run was still going when this was written")
            data["remarks"] = tuple(remarks)
            if args.save:
                args.save.write_bytes(pickle.dumps(data))
            write_report(args.out, **data)

        bench.checkpoint = checkpoint
        for name in names:
            with contextlib.ExitStack() as stack:
                t0 = time.monotonic()
                be = backends.start(name, stack, tmp)
                say(f"[{name}] started in {time.monotonic() - t0:.1f}s: {be.version}")
                used.append(Server(be.name, be.version, be.auth_url, be.caps.note))
                bench.run_backend(be, want)
        elapsed = time.monotonic() - started
        checkpoint(final=True)
    say(f"wrote {args.out} and {args.out.with_suffix('.png')} in {elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
