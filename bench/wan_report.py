"""Scenario W in the Markdown report: one table per part (A, B, C), link and backend, and
its bars."""

from __future__ import annotations

import re

from bench.measure import median
from bench.netem import SOURCE
from bench.report import MB, Table, by_method, f2, fmt_methods, verdict

_LABELS = {
    "ceiling": "ceiling (computed)",
    "floor": "walk + listing (floor)",
    "raw-put": "raw PUT (through the proxy)",
}
_PARTS = {
    "A": "first upload, small files",
    "B": "first upload, one large file",
    "C": "rerun, nothing changed",
}


def _label(t: Table, row: str) -> str:
    if row == "ceiling" and not t.rows[row][0].extra.get("computed"):
        return "raw PUT (ceiling, through the proxy)"
    return _LABELS.get(row, row)


def _md(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_lines(t: Table) -> list[str]:
    rate = "MB/s" if t.part == "B" else "files/s"
    head = [
        "tool",
        "concurrency",
        "wall s",
        rate,
        "range",
        "CPU s",
        "peak RSS MiB",
        "requests",
        "by method",
        "proxy CPU s",
        f"× {'floor' if t.part == 'C' else 'ceiling'}",
    ]
    out = [_md(head), _md(["---"] * len(head))]
    for row in t.tools():
        s = t.rows[row]
        wall = t.med(row, "wall")
        walls = [x.wall for x in s]
        counts = by_method(s)
        speed = t.bytes / wall / MB if t.part == "B" else t.files / wall
        ratio = t.ratio(row)
        proxied = [x.extra["proxy_cpu"] for x in s if "proxy_cpu" in x.extra]
        out.append(
            _md(
                [
                    _label(t, row),
                    str(s[0].extra.get("concurrency", "")),
                    f2(wall),
                    f2(speed, 1 if t.part == "B" else 0),
                    f"{min(walls):.2f}–{max(walls):.2f}",
                    f2(t.med(row, "cpu")),
                    f2(t.med(row, "rss_mb"), 0),
                    str(sum(counts.values())) if counts else "n/a",
                    fmt_methods(counts),
                    f2(median(proxied)) if proxied else "",
                    "" if ratio is None else f"{ratio:.2f}",
                ]
            )
        )
    measured = [x for row in t.rows.values() for x in row if x.traffic]
    total = sum(x.traffic.total for x in measured if x.traffic)
    via = sum(int(x.extra.get("proxied", 0)) for x in measured)
    out.append(f"\nThrough the proxy (server log: client {SOURCE}): {via:,} of {total:,} requests.")
    ceiling = t.rows.get("ceiling", [None])[0]
    if ceiling is not None and "round_trip" in ceiling.extra:
        x = ceiling.extra
        link = f"; link rate / mean file size: {x['link']:,.0f} files/s" if "link" in x else ""
        out.append(
            f"\nCeiling: {x['round_trip']:,.0f} files/s from round trips "
            f"(kcsync's workers / RTT){link}; the table takes the lower."
        )
    return out


def sections(tables: list[Table]) -> list[str]:
    lines: list[str] = []
    for t in (t for t in tables if t.scenario == "W"):
        lines += [
            f"## W{t.part} — {_PARTS.get(t.part, t.title)} over {t.link} — {t.backend}",
            "",
            f"Data: {t.files:,} file{'s' * (t.files != 1)}, {t.bytes / MB:,.1f} MB.",
            "",
            *table_lines(t),
        ]
        if t.setup is not None:
            s = t.setup
            lines += [
                "",
                f"Setup (kcsync's first upload of this tree straight to the server, "
                f"no proxy, 1 run): {s.wall:.2f} s.",
            ]
        lines += ["", *(f"- {n}" for n in t.notes), ""]
    return lines


def _find(tables: list[Table], backend: str, part: str) -> list[Table]:
    return [
        t
        for t in tables
        if t.scenario == "W" and t.backend == backend and t.part == part and "kcsync" in t.rows
    ]


def _rtt_ms(link: str) -> float:
    """The round trip of a link's description ("RTT 60 ms, 100 Mbit/s" -> 60)."""
    found = re.search(r"RTT (\d+(?:\.\d+)?) ms", link)
    return float(found.group(1)) if found else float("inf")


def _bar(label: str, backend: str, measured: str, ok: bool) -> list[str]:
    """One row of the bars table."""
    return [label, backend, measured, verdict(ok)]


def bars(tables: list[Table], backend: str) -> list[list[str]]:
    """W's bars: A ≥ 3 × rclone's default and ≥ 0.9 × the round-trip ceiling; B ≥ 0.9 × the
    link rate; C (the most files kcsync reran) faster than rclone's rerun of its few."""
    rows: list[list[str]] = []
    for t in _find(tables, backend, "A"):
        k = t.med("kcsync", "wall")
        if "rclone" in t.rows:
            x = t.med("rclone", "wall") / k
            rows.append(
                _bar(
                    f"W A ({t.link}): ≥ 3 × rclone (defaults)",
                    backend,
                    f"{x:.2f} × at {t.files:,} files",
                    x >= 3,
                )
            )
        if "ceiling" in t.rows:
            if "raw-put" in t.rows:
                x = t.med("raw-put", "wall") / k
                rows.append(
                    _bar(
                        f"W A ({t.link}): ≥ 0.9 × raw PUT through the proxy (for context)",
                        backend,
                        f"{x:.2f} × ({t.files / t.med('raw-put', 'wall'):,.0f} files/s raw)",
                        x >= 0.9,
                    )
                )
            x = t.med("ceiling", "wall") / k
            rows.append(
                _bar(
                    f"W A ({t.link}): ≥ 0.9 × ceiling at its own concurrency",
                    backend,
                    f"{x:.2f} × ({t.files / k:,.0f} files/s)",
                    x >= 0.9,
                )
            )
    for t in _find(tables, backend, "B"):
        if "ceiling" in t.rows:
            k = t.med("kcsync", "wall")
            x = t.med("ceiling", "wall") / k
            rows.append(
                _bar(
                    f"W B ({t.link}): ≥ 0.9 × link rate"
                    + (
                        ""
                        if t.rows["ceiling"][0].extra.get("computed")
                        else " (raw PUT through it)"
                    ),
                    backend,
                    f"{x:.2f} × ({t.bytes / k / MB:,.1f} MB/s)",
                    x >= 0.9,
                )
            )
    reruns = _find(tables, backend, "C")
    for link in dict.fromkeys(t.link for t in reruns):
        here = [t for t in reruns if t.link == link]
        most = max(here, key=lambda t: t.files)
        peers = [t for t in here if "rclone" in t.rows]
        if not peers:
            continue
        few = min(peers, key=lambda t: t.files)
        k, r = most.med("kcsync", "wall"), few.med("rclone", "wall")
        # The issue sets this bar at 60 ms: at shorter round trips rclone's 100 HEADs cost
        # less than the walk of 10,000 files, which no round trip saved can beat.
        context = "" if _rtt_ms(link) >= 60 else " (for context; the bar is at 60 ms)"
        rows.append(
            _bar(
                f"W C ({link}): kcsync at {most.files:,} files < rclone at {few.files:,}" + context,
                backend,
                f"{k:.2f} s vs {r:.2f} s",
                k < r,
            )
        )
    return rows
