"""Markdown report and PNG chart from the measured samples (medians of the repetitions)."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import Sample, median

if TYPE_CHECKING:
    from bench.tools import Command

MB = 1e6
TOOL_ORDER = ("kcsync", "rclone", "swift", "raw-put", "raw-put-md5", "raw-get", "floor")
SCENARIO_NAMES = {
    "A": "A — first upload, small files",
    "B": "B — first upload, one large file (SLO/DLO segments)",
    "C": "C — rerun, nothing changed",
    "D": "D — rerun, one file changed",
    "F": "F — kcsync memory on a no-change rerun",
    "G": "G — resume after SIGKILL at ~50 %",
    "R": "R — restore into an empty directory",
}


@dataclass(frozen=True)
class Server:
    """What the report says about a backend."""

    name: str
    version: str
    auth_url: str
    note: str


@dataclass
class Table:
    """All samples of one scenario on one backend."""

    scenario: str
    title: str
    backend: str
    files: int
    bytes: int
    reference: str | None  # the ceiling/floor row that "×" compares against
    rows: dict[str, list[Sample]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    setup: Sample | None = None
    listed: bool = False  # the bucket's listing was written into Swift's database (populate.py)
    part: str = ""  # scenario W: which of A, B, C it repeats
    link: str = ""  # scenario W: the network (bench/netem.py), e.g. "RTT 60 ms, 100 Mbit/s"

    def add(self, tool: str, sample: Sample) -> None:
        rows = self.rows.setdefault(tool, [])
        if sample.code != 0:
            self.notes.append(f"{tool}, run {len(rows) + 1}: exit code {sample.code}")
        rows.append(sample)

    def med(self, tool: str, attr: str) -> float:
        return median([float(getattr(s, attr)) for s in self.rows.get(tool, [])])

    def med_extra(self, tool: str, key: str) -> float:
        vals = [float(s.extra[key]) for s in self.rows.get(tool, []) if key in s.extra]
        return median(vals)

    def ratio(self, tool: str) -> float | None:
        if self.reference is None or self.reference not in self.rows:
            return None
        return self.med(tool, "wall") / self.med(self.reference, "wall")

    def tools(self) -> list[str]:
        # "rclone@8" (scenario W: a tool at another concurrency) sorts with "rclone".
        def key(t: str) -> tuple[int, str]:
            base = t.split("@")[0]
            return (TOOL_ORDER.index(base) if base in TOOL_ORDER else 9, t)

        return sorted(self.rows, key=key)


def by_method(samples: list[Sample]) -> dict[str, int]:
    methods = {m for s in samples if s.traffic for m in s.traffic.by_method}
    return {
        m: round(median([s.traffic.by_method.get(m, 0) for s in samples if s.traffic]))
        for m in methods
    }


def fmt_methods(counts: dict[str, int] | None) -> str:
    if not counts:
        return "n/a"
    return " · ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def f2(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"  # NaN check


# -- tables -------------------------------------------------------------------------------------


def _rows_common(t: Table, tool: str) -> list[str]:
    s = t.rows[tool]
    walls = [x.wall for x in s]
    counts = by_method(s)
    return [
        f2(t.med(tool, "wall")),
        f"{min(walls):.2f}–{max(walls):.2f}",
        f2(t.med(tool, "cpu")),
        f2(t.med(tool, "rss_mb"), 0),
        str(sum(counts.values())) if counts else "n/a",
        fmt_methods(counts),
    ]


def throughput_table(t: Table) -> list[str]:
    rate_head = {"A": ["files/s", "MB/s"], "B": ["MB/s"]}.get(t.scenario, ["files/s"])
    if t.scenario == "R":
        rate_head = ["MB/s"] if t.files == 1 else ["files/s", "MB/s"]
    reference = {"raw-get": "raw GET", "raw-put": "raw PUT"}.get(t.reference or "", "floor")
    head = ["tool", "wall s", *rate_head, "range", "CPU s", "peak RSS MiB", "requests"]
    head += ["by method", f"× {reference}"]
    out = [_md_row(head), _md_row(["---"] * len(head))]
    for tool in t.tools():
        wall = t.med(tool, "wall")
        common = _rows_common(t, tool)
        rates = {
            "files/s": f2(t.files / wall, 0),
            "MB/s": f2(t.bytes / wall / MB, 1),
        }
        rates_cells = [rates[h] for h in rate_head]
        ratio = t.ratio(tool)
        label = {
            "raw-put": "raw PUT (ceiling)",
            "raw-put-md5": "raw PUT + MD5",
            "raw-get": "raw GET (ceiling)",
            "floor": "walk + listing (floor)",
        }.get(tool, tool)
        out.append(
            _md_row(
                [
                    label,
                    common[0],
                    *rates_cells,
                    *common[1:],
                    "" if ratio is None else f"{ratio:.2f}",
                ]
            )
        )
    if "floor" in t.rows:
        walk, lst = t.med_extra("floor", "walk_s"), t.med_extra("floor", "list_s")
        out.append(f"\nFloor split: stat walk {walk:.2f} s, paged listing {lst:.2f} s.")
    return out


def memory_table(t: Table) -> list[str]:
    head = ["files", "run", "wall s", "CPU s", "peak RSS MiB", "KiB per extra file", "requests"]
    out = [_md_row(head), _md_row(["---"] * len(head))]
    first: dict[str, tuple[int, float]] = {}  # run kind -> (files, RSS) of the smallest set
    for key in t.rows:
        run, n = key.split()[0], int(key.split()[1])
        rss = t.med(key, "rss_mb")
        base = first.setdefault(run, (n, rss))
        marginal = (rss - base[1]) * 1024 / (n - base[0]) if n > base[0] else float("nan")
        out.append(
            _md_row(
                [
                    f"{n:,}",
                    ("first run, adopts (1 run)" if t.listed else "upload (1 run)")
                    if run == "upload"
                    else run,
                    f2(t.med(key, "wall")),
                    f2(t.med(key, "cpu")),
                    f2(rss, 0),
                    f2(marginal, 2),
                    fmt_methods(by_method(t.rows[key])),
                ]
            )
        )
    return [
        "KiB per extra file = RSS growth over the smallest set, divided by the extra files.",
        "",
        *out,
    ]


def resume_table(t: Table) -> list[str]:
    head = [
        "tool", "killed at (segments listed)", "re-sent MB", "re-sent / file",
        "ideal", "rerun wall s", "rerun CPU s", "peak RSS MiB", "rerun requests",
    ]  # fmt: skip
    out = [_md_row(head), _md_row(["---"] * len(head))]
    for tool in t.tools():
        s = t.rows[tool]
        listed, total = t.med_extra(tool, "listed"), t.med_extra(tool, "total")
        resent = t.med_extra(tool, "resent")
        killed = sum(1 for x in s if x.extra.get("killed"))
        out.append(
            _md_row(
                [
                    tool,
                    f"{listed:.0f} / {total:.0f}"
                    + ("" if killed == len(s) else f" ({len(s) - killed} not killed)"),
                    f2(resent / MB, 1),
                    f"{resent / t.bytes:.0%}",
                    f"{max(0.0, 1 - listed / total):.0%}",
                    f2(t.med(tool, "wall")),
                    f2(t.med(tool, "cpu")),
                    f2(t.med(tool, "rss_mb"), 0),
                    fmt_methods(by_method(s)),
                ]
            )
        )
    return out


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# -- machine ------------------------------------------------------------------------------------


def _cmd_out(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "?"


def machine(kcsync_rev: str) -> list[tuple[str, str]]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("kcsync", kcsync_rev),
        ("rclone", (_cmd_out(["rclone", "version"]).splitlines() or ["?"])[0]),
        ("python-swiftclient", importlib.metadata.version("python-swiftclient")),
    ]


# -- report -------------------------------------------------------------------------------------


def write_report(
    out: Path,
    *,
    tables: list[Table],
    commands: dict[str, Command],
    backends: list[Server],
    md5_mbps: float,
    argv: list[str],
    quick: bool,
    repeat: int,
    workers: int,
    segment: int,
    threshold: int,
    elapsed: float,
    tmp: Path,
    load: tuple[str, str],
    kcsync_rev: str,
    remarks: tuple[str, ...] = (),
    generated: str = "",
    latency: dict[str, dict[str, Any]] | None = None,
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    now = generated or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# kcsync benchmarks",
        "",
        f"Generated by `{shlex.join(argv)}` on {now} "
        f"({'quick: data sets ~100x smaller' if quick else 'full size'}; {elapsed / 60:.1f} min). "
        "Regenerate with the same command; the chart needs matplotlib (the `bench` extra).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(_md_row([k, v]) for k, v in machine(kcsync_rev)),
        *(_md_row([f"server: {b.name}", b.version]) for b in backends),
        _md_row(["load average (1, 5, 15 min)", f"{load[0]} at start, {load[1]} at the end"]),
        "",
        "## Method",
        "",
        f"- Every tool runs with the same concurrency ({workers}: kcsync `workers`, rclone "
        "`--transfers/--checkers`, swift `--object-threads/--segment-threads`) and segment size "
        f"({segment / 2**20:g} MiB; kcsync `large_objects.threshold` {threshold / 2**20:g} MiB).",
        f"- {repeat} repetitions; tables show the median (and the wall-time range). The order of "
        "the tools rotates every repetition (A,B,C then B,C,A, ...). First uploads go to a "
        "fresh bucket each; reruns share one bucket that kcsync uploaded first.",
        "- Wall time of the child process; CPU = user + sys and peak RSS = ru_maxrss, both "
        "from `os.wait4` on the child. Data sets are deterministic (seeded RNG) and sit in "
        "the page cache (warm) for every tool. Client and server share the same cores. "
        "kcsync runs from a byte-compiled copy of its package, as `pip install` leaves it "
        "(the swift CLI's package is byte-compiled too).",
        "- Requests are counted from the server's access log (Swift proxy-logging client "
        "lines, without internal subrequests; RGW beast lines), for every tool alike; they "
        "include the auth request.",
        "- W repeats A, B and C through `bench/netem.py`, a TCP proxy (a child process) that "
        "adds a round-trip time and an optional bandwidth cap per direction; there each tool "
        "also runs with its own default concurrency, and the ceilings follow from the link "
        "(see the W sections).",
        "- Ceilings/floors, measured in the same run: **raw PUT** = a minimal threaded "
        f"client (one requests.Session per thread, {workers} threads, no hashing) PUTting the "
        "same data (the large file: its segments only, no manifest); **floor** = `os.walk` + "
        "`stat` of the tree plus the paged JSON listing of the bucket (a Python child like "
        "kcsync, so both pay ~0.2 s of interpreter start; a Go binary can beat it on small "
        "trees); "
        f"**MD5** on one core: {md5_mbps:,.0f} MB/s "
        f"(a 2 GiB file needs {2 * 2**30 / md5_mbps / 1e6:.1f} s just to hash).",
        "- `×` = median wall time over that of the ceiling/floor row (1.00 = as fast as it).",
        *(f"- {b.note}" for b in backends if b.note),
        *(f"- **Caveat:** {r}" for r in (*_busy(load), *remarks)),
        "",
        *bars_section(tables, latency or {}),
        f"![key ratios]({png.name})",
        "",
    ]
    for scenario in ("A", "B", "C", "D", "F", "G", "R"):
        for t in (t for t in tables if t.scenario == scenario):
            lines += _section(t)
    for backend, result in (latency or {}).items():
        lines += latency_section(backend, result)
    from bench import wan_report  # it builds on this module's Table

    lines += wan_report.sections(tables)
    lines += [
        "## Commands",
        "",
        "`$TMP` is the harness's temp dir, `$AUTH` the server's v1 auth URL (user `test:tester`, "
        "key `testing`). rclone gets its remote from the environment shown.",
        "",
        "```sh",
    ]
    for label, cmd in commands.items():
        lines.append(f"# {label}")
        shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in cmd.shown_env.items())
        text = (shown + " " if shown else "") + shlex.join(cmd.argv)
        for b in backends:
            text = text.replace(b.auth_url, "$AUTH")
        lines.append(_portable(text.replace(str(tmp), "$TMP")))
    lines += ["```", ""]
    kc = [c.config for c in commands.values() if c.config]
    if kc:
        text = kc[0]
        for b in backends:
            text = text.replace(b.auth_url, "$AUTH")
        lines += ["kcsync config (first run; bucket and state_dir vary per run):", "",
                  "```yaml", text.replace(str(tmp), "$TMP").rstrip(), "```", ""]  # fmt: skip
    out.write_text("\n".join(lines))
    chart(png, tables)


def latency_section(backend: str, r: dict[str, Any]) -> list[str]:
    single, burst = r["single"], r["burst"]
    start, hup = r["startup_reconcile_unchanged"], r["sighup_reconcile_unchanged"]
    return [
        f"## E — daemon: file closed → object visible — {backend}",
        "",
        "kcsync runs as a daemon (`daemon.settle: 2s`; a file closed after writing goes at "
        "once). Singles: 100 KB files written one at a time, latency from close() to the "
        "first 200 to a HEAD polled every 5 ms. Burst: files of 4–256 KiB written as fast "
        "as possible, latency from close() to the daemon's `uploaded` log line. Neither "
        "rclone nor the swift CLI has a watch mode, so this scenario is kcsync's alone.",
        "",
        "| measure | files | p50 s | p95 s | other |",
        "|---|---|---|---|---|",
        _md_row(["single files", str(single["n"]), f2(single["p50_s"], 3),
                 f2(single["p95_s"], 3), f"max {single['max_s']:.3f} s"]),
        _md_row(["burst", str(burst["n"]), f2(burst["p50_s"], 3), f2(burst["p95_s"], 3),
                 f"drained in {burst['drain_s']:.1f} s = {burst['files_per_s']:.0f} files/s"]),
        _md_row(["reconcile at start, unchanged", f"{start['files']:,}", "", "",
                 f"{start.get('seconds', '?')} s"]),
        _md_row(["reconcile on SIGHUP, unchanged", f"{hup['files']:,}", "", "",
                 f"{hup.get('seconds', '?')} s"]),
        "",
    ]  # fmt: skip


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def _cpu_per_file(t: Table, backend: str) -> list[str]:
    """kcsync's CPU per small file against the bare client that hashes each body: MD5 is
    the least a client that checks the server's Etag must add, so the bare client without
    it is shown beside, not held against."""
    per = {tool: t.med(tool, "cpu") / t.files * 1000 for tool in ("kcsync", "raw-put-md5")}
    bare = t.med("raw-put", "cpu") / t.files * 1000 if "raw-put" in t.rows else float("nan")
    x = per["kcsync"] / per["raw-put-md5"]
    return [
        "A: CPU per small file ≤ 1.1 × the bare client's (raw PUT + MD5)",
        backend,
        f"{per['kcsync']:.2f} vs {per['raw-put-md5']:.2f} ms = {x:.2f} × "
        f"(without MD5: {bare:.2f} ms)",
        verdict(x <= 1.1),
    ]


def bars_section(tables: list[Table], latency: dict[str, dict[str, Any]]) -> list[str]:
    """Each bar of the issue, met or not, with the numbers behind it."""
    from bench import wan_report  # it builds on this module's Table

    rows: list[list[str]] = []
    # A median verdict on three samples can flip on noise: a missed time bar shows its
    # repetitions side by side (same repetition = same minutes of the run).
    misses: list[str] = []

    def find(scenario: str, backend: str, tool: str) -> list[Table]:
        return [t for t in tables if t.scenario == scenario and t.backend == backend
                and tool in t.rows]  # fmt: skip

    backends = list(dict.fromkeys(t.backend for t in tables)) or list(latency)
    for be in backends:
        for sc, share in (("A", 0.9), ("B", 0.85)):
            for t in find(sc, be, "kcsync"):
                r = t.ratio("kcsync")
                k = t.med("kcsync", "wall")
                if r is not None:
                    rows.append([f"{sc}: ≥ {share} × raw PUT", be, f"{1 / r:.2f} ×",
                                 verdict(1 / r >= share)])  # fmt: skip
                    if 1 / r < share and t.reference:
                        misses.append(_by_repetition(t, sc, t.reference, share))
                        if "raw-put-md5" in t.rows:
                            hashed = t.med("raw-put-md5", "wall")
                            misses.append(
                                f"{sc} on {be}: the ceiling with each body hashed (raw PUT + "
                                f"MD5) takes {hashed:.2f} s, kcsync {k:.2f} s = "
                                f"{hashed / k:.2f} × of it."
                            )
                if sc == "A" and "raw-put-md5" in t.rows:
                    rows.append(_cpu_per_file(t, be))
                for peer in ("rclone", "swift"):
                    if peer in t.rows:
                        p = t.med(peer, "wall")
                        rows.append([f"{sc}: ≥ {peer}", be, f"{k:.2f} s vs {p:.2f} s",
                                     verdict(k <= p)])  # fmt: skip
                        if k > p:
                            misses.append(_by_repetition(t, sc, peer))
        for sc in ("C", "D"):
            found = find(sc, be, "kcsync")
            if not found:
                continue
            big = max(found, key=lambda t: t.files)
            r = big.ratio("kcsync")
            if r is not None:
                extra = " (+ the one upload)" if sc == "D" else ""
                rows.append([f"{sc}: ≤ 1.5 × floor{extra}", be,
                             f"{r:.2f} × at {big.files:,} files", verdict(r <= 1.5)])  # fmt: skip
            for t in found:
                k = t.med("kcsync", "wall")
                if "swift" in t.rows:
                    x = t.med("swift", "wall") / k
                    rows.append([f"{sc}: ≥ 10 × faster than swift --skip-identical", be,
                                 f"{x:.1f} × at {t.files:,} files", verdict(x >= 10)])  # fmt: skip
                if "rclone" in t.rows:
                    x = t.med("rclone", "wall") / k
                    rows.append([f"{sc}: faster than rclone sync", be,
                                 f"{x:.1f} × at {t.files:,} files", verdict(x > 1)])  # fmt: skip
        if be in latency:
            e = latency[be]
            p95 = e["single"]["p95_s"]
            rows.append(["E: single files p95 < 1.5 s", be, f"{p95:.3f} s", verdict(p95 < 1.5)])
            a = find("A", be, "kcsync")
            rate = e["burst"]["files_per_s"]
            if a:
                a_rate = a[0].files / a[0].med("kcsync", "wall")
                rows.append(["E: burst of 1,000 ≥ 0.9 × A's rate", be,
                             f"{rate:.0f} vs {a_rate:.0f} files/s = {rate / a_rate:.2f} ×",
                             verdict(rate >= 0.9 * a_rate)])  # fmt: skip
        for t in (t for t in tables if t.scenario == "F" and t.backend == be):
            reruns = sorted(
                (int(k.split()[1]), t.med(k, "rss_mb")) for k in t.rows if k.startswith("rerun")
            )
            if not reruns:
                continue
            (n0, lo), (n, rss) = reruns[0], reruns[-1]
            mb = rss * 2**20 / MB
            rows.append([
                "F: peak RSS ≤ 250 MB on a no-change rerun of 10^6 files", be,
                f"{mb:.0f} MB at {n:,} files",
                verdict(mb <= 250) if n >= 10**6 else "n/a: 10^6 not run",
            ])  # fmt: skip
            growth = (rss - lo) / lo
            rows.append([
                f"F: RSS flat from {n0:,} to {n:,} files (≤ +20 %)", be,
                f"{lo:.0f} → {rss:.0f} MiB ({growth:+.0%})", verdict(growth <= 0.2),
            ])  # fmt: skip
        for t in find("R", be, "kcsync"):
            one_file = t.files == 1
            what = "large file" if one_file else "small files"
            r = t.ratio("kcsync")
            k = t.med("kcsync", "wall")
            if r is not None:
                rows.append([f"R ({what}): ≥ 0.9 × raw GET", be,
                             f"{1 / r:.2f} × at {t.files:,} files, {t.bytes / MB:,.0f} MB",
                             verdict(1 / r >= 0.9)])  # fmt: skip
                if 1 / r < 0.9:
                    misses.append(_by_repetition(t, f"R ({what})", "raw-get", 0.9))
            for peer in ("rclone", "swift"):
                if peer in t.rows:
                    p = t.med(peer, "wall")
                    rows.append([f"R ({what}): ahead of {peer}", be, f"{k:.2f} s vs {p:.2f} s",
                                 verdict(k <= p)])  # fmt: skip
                    if k > p:
                        misses.append(_by_repetition(t, f"R ({what})", peer))
            if one_file:
                rss = t.med("kcsync", "rss_mb") * 2**20 / MB
                rows.append([f"R ({what}): peak RSS < 100 MB", be, f"{rss:.0f} MB",
                             verdict(rss < 100)])  # fmt: skip
        for t in find("G", be, "kcsync"):
            resent = t.med_extra("kcsync", "resent") / t.bytes
            rows.append(["G: re-sent ≤ 55 % after a kill at 50 %", be, f"{resent:.0%}",
                         verdict(resent <= 0.55)])  # fmt: skip
        rows += wan_report.bars(tables, be)
    if not rows:
        return []
    return [
        "## The bars",
        "",
        "The issue's bars, computed from the tables below (medians). Where a table was run "
        "at a smaller size than the issue names, the size is given.",
        "",
        "| bar | backend | measured | verdict |",
        "|---|---|---|---|",
        *(_md_row(r) for r in rows),
        "",
        *(f"- {m}" for m in misses),
        *([""] if misses else []),
    ]


def _by_repetition(t: Table, scenario: str, other: str, share: float | None = None) -> str:
    """One missed bar, repetition by repetition: kcsync's wall time beside the other's."""
    pairs = list(zip([s.wall for s in t.rows["kcsync"]], [s.wall for s in t.rows[other]],
                     strict=False))  # fmt: skip
    times = " · ".join(f"{a:.2f} vs {b:.2f}" for a, b in pairs)
    if share is None:
        name, won = other, sum(a < b for a, b in pairs)
        tail = f"kcsync was faster in {won} of {len(pairs)}"
    else:
        name = "raw GET" if other == "raw-get" else "raw PUT"
        won = sum(b / a >= share for a, b in pairs)
        ratios = ", ".join(f"{b / a:.2f} ×" for a, b in pairs)
        tail = f"{ratios}: at least {share} × in {won} of {len(pairs)}"
    return (
        f"{scenario} on {t.backend}, missed on the median; repetition by repetition, kcsync "
        f"vs {name}: {times} s; {tail}."
    )


def _busy(load: tuple[str, str]) -> list[str]:
    """Say when the machine was busy before the run began: the end value cannot tell, as it
    counts the benchmark's own threads (the transfers and the server share the CPUs)."""
    cpus = len(os.sched_getaffinity(0))
    before = float(load[0].split(", ")[0])
    ending = float(load[1].split(", ")[0])
    notes = []
    if before > cpus / 2:
        notes.append(
            f"the machine was not idle when the run began (1-minute load {before:.2f} on "
            f"{cpus} CPUs): the first measurements may have shared the CPUs with it, so "
            "check the ranges before reading much into small differences."
        )
    if ending > cpus:
        notes.append(
            f"the load at the end ({ending:.2f}) is the benchmark's own: its concurrent "
            "transfers and the server count as runnable threads on the same CPUs."
        )
    return notes


def _section(t: Table) -> list[str]:
    size = f"{t.files:,} file{'s' * (t.files != 1)}, {t.bytes / MB:,.1f} MB" if t.files else ""
    lines = [f"## {SCENARIO_NAMES.get(t.scenario, t.scenario)} — {t.backend}", ""]
    if size and t.scenario != "F":
        lines += [f"Data: {size}.", ""]
    if t.listed:
        lines += [
            "Set up without bodies: the bucket's listing was written straight into Swift's "
            "container database (`bench/populate.py`, each row with the file's real size and "
            "MD5), and kcsync's first run adopted it (no PUT). A no-change rerun reads nothing "
            "else, as the request counts show."
            + (
                " The peers HEAD every object on a rerun, so they run on real objects in the "
                "smaller table."
                if t.scenario in ("C", "D")
                else ""
            ),
            "",
        ]
    if t.scenario == "F":
        lines += memory_table(t)
    elif t.scenario == "G":
        lines += [
            "The first upload is SIGKILLed once half of the segments are listed in "
            "`BUCKET_segments`; the rerun is measured. Re-sent = PUT body bytes into the "
            "segments container during the rerun (server log); ideal = the part not yet "
            "listed at the kill.",
            "",
            *resume_table(t),
        ]
    else:
        lines += throughput_table(t)
    if t.setup is not None:
        s = t.setup
        lines += ["", f"Setup (kcsync's first upload of this tree, 1 run): {s.wall:.2f} s, "
                      f"CPU {s.cpu:.2f} s, peak RSS {s.rss_mb:.0f} MiB, "
                      f"{s.requests or 'n/a'} requests."]  # fmt: skip
    lines += _self_count_notes(t)
    lines += [f"- {n}" for n in t.notes]
    return [*lines, ""]


def _self_count_notes(t: Table) -> list[str]:
    """kcsync's own request count against the server log (they differ by the auth GET)."""
    out = []
    for tool, samples in t.rows.items():
        own = [s for s in samples if s.self_requests is not None and s.traffic]
        if not own:
            continue
        s = own[0]
        assert s.traffic is not None and s.self_requests is not None
        diff = {
            m: s.traffic.by_method.get(m, 0) - s.self_requests.get(m, 0)
            for m in set(s.traffic.by_method) | set(s.self_requests)
        }
        diff = {m: d for m, d in diff.items() if d}
        if diff and diff != {"GET": 1}:
            out.append(f"- {tool}: server log minus kcsync's own count: {diff}")
    return ["", *out] if out else []


# -- chart --------------------------------------------------------------------------------------


def chart(png: Path, tables: list[Table]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no chart", flush=True)
        return
    # W has its own ceilings per link: its tables would crowd the chart of the loopback runs.
    ratio_tables = [
        t for t in tables if t.reference and t.reference in t.rows and t.scenario != "W"
    ]
    mem = [t for t in tables if t.scenario == "F"]
    resume = [t for t in tables if t.scenario == "G"]
    panels = 1 + bool(mem) + bool(resume)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels + 2, 4.5), squeeze=False)
    ax = axes[0][0]
    tools = ["kcsync", "rclone", "swift"]
    width = 0.8 / len(tools)
    ratios: list[float] = []
    for i, tool in enumerate(tools):
        xs = [j + i * width for j, t in enumerate(ratio_tables) if tool in t.rows]
        ys = [t.ratio(tool) or 0.0 for t in ratio_tables if tool in t.rows]
        bars = ax.bar(xs, ys, width, label=tool)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ratios += ys
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + width for j in range(len(ratio_tables))])
    ax.set_xticklabels([f"{t.scenario} {_count(t.files)}\n{t.backend}" for t in ratio_tables])
    if ratios and max(ratios) > 10:  # reruns: peers can be 10-100x the floor
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(0.5, min(ratios) * 0.8))
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylabel("wall time ÷ ceiling (A, B) or floor (C, D)")
    ax.set_title("lower is better; 1 = ceiling/floor")
    ax.legend()
    k = 1
    if mem:
        ax = axes[0][k]
        k += 1
        for t in mem:
            for run in ("upload", "rerun"):
                pts = sorted(
                    (int(key.split()[1]), t.med(key, "rss_mb")) for key in t.rows
                    if key.startswith(run)
                )  # fmt: skip
                ax.plot(
                    *zip(*pts, strict=True),
                    marker="o",
                    label=f"{'first run' if run == 'upload' else run} ({t.backend})",
                )
        ax.set_xscale("log")
        ax.set_ylim(bottom=0, top=260)
        ax.axhline(250 * MB / 2**20, color="red", linewidth=0.8, label="bar: 250 MB")
        ax.set_xlabel("files")
        ax.set_ylabel("kcsync peak RSS (MiB)")
        ax.set_title("F: memory vs file count")
        ax.legend()
    if resume:
        ax = axes[0][k]
        labels, vals, ideal = [], [], []
        for t in resume:
            for tool in t.tools():
                labels.append(f"{tool}\n{t.backend}")
                vals.append(100 * t.med_extra(tool, "resent") / t.bytes)
                listed, total = t.med_extra(tool, "listed"), t.med_extra(tool, "total")
                ideal.append(100 * max(0.0, 1 - listed / total))
        ax.bar(range(len(vals)), vals, label="re-sent")
        ax.plot(range(len(ideal)), ideal, "k_", markersize=20, label="ideal")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("% of the file sent again")
        ax.set_title("G: resume after kill at ~50 %")
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _portable(command: str) -> str:
    """The command as anyone would type it: no path of this machine's interpreter."""
    bin_dir = os.path.dirname(sys.executable) + os.sep
    return command.replace(sys.executable, "python3").replace(bin_dir, "")
