"""The benchmark report's verdicts: what docs/benchmarks.md says is met must follow the numbers."""

from __future__ import annotations

import os

from bench.measure import Sample
from bench.report import Table, _busy, bars_section


def _table(scenario: str, walls: dict[str, list[float]]) -> Table:
    t = Table(scenario, "first upload", "swift", 1, 2**30, "raw-put")
    for tool, times in walls.items():
        for w in times:
            t.add(tool, Sample(wall=w, cpu=1.0, rss_mb=50.0, code=0))
    return t


def _text(tables: list[Table]) -> str:
    return "\n".join(bars_section(tables, {}))


def test_a_bar_met_on_the_median_lists_no_repetitions() -> None:
    t = _table("B", {"kcsync": [8.0, 8.1, 8.2], "swift": [9.0, 9.1, 9.2], "raw-put": [7.0] * 3})
    text = _text([t])
    assert "| B: ≥ swift | swift | 8.10 s vs 9.10 s | **met** |" in text
    assert "repetition by repetition" not in text


def test_a_peer_bar_missed_on_the_median_shows_each_repetition_and_who_won() -> None:
    t = _table(
        "B",
        {"kcsync": [8.71, 7.72, 8.53], "swift": [9.78, 8.11, 8.03], "raw-put": [7.0] * 3},
    )
    text = _text([t])
    assert "| B: ≥ swift | swift | 8.53 s vs 8.11 s | **not met** |" in text
    assert "8.71 vs 9.78 · 7.72 vs 8.11 · 8.53 vs 8.03 s" in text
    assert "kcsync was faster in 2 of 3" in text


def test_a_ceiling_bar_missed_counts_repetitions_at_the_share_not_wins() -> None:
    t = _table("B", {"kcsync": [7.08, 4.13, 3.88], "raw-put": [4.12, 3.48, 3.34]})
    text = _text([t])
    assert "| B: ≥ 0.85 × raw PUT | swift | 0.84 × | **not met** |" in text
    assert "0.58 ×, 0.84 ×, 0.86 ×: at least 0.85 × in 1 of 3" in text


def test_the_load_at_the_end_is_not_blamed_on_other_processes() -> None:
    cpus = len(os.sched_getaffinity(0))
    idle = f"{cpus / 4:.2f}, 0.50, 0.40"
    busy_end = f"{cpus * 4:.2f}, {cpus * 4:.2f}, {cpus:.2f}"
    notes = _busy((idle, busy_end))
    assert len(notes) == 1 and "the benchmark's own" in notes[0]
    notes = _busy((f"{cpus:.2f}, 1.0, 1.0", idle))
    assert len(notes) == 1 and "not idle when the run began" in notes[0]


def test_a_missed_ceiling_is_also_set_against_the_ceiling_that_hashes() -> None:
    t = _table(
        "B",
        {"kcsync": [3.78] * 3, "raw-put": [2.85] * 3, "raw-put-md5": [3.40] * 3},
    )
    text = _text([t])
    assert "raw PUT + MD5) takes 3.40 s, kcsync 3.78 s = 0.90 × of it" in text


def _w(part: str, files: int, walls: dict[str, float], link: str = "RTT 60 ms, unlimited") -> Table:
    t = Table("W", "w", "swift", files, files * 100_000, "floor" if part == "C" else "ceiling")
    t.part, t.link = part, link
    for tool, w in walls.items():
        t.add(tool, Sample(wall=w, cpu=1.0, rss_mb=50.0, code=0))
    return t


def test_w_bars_compare_kcsync_with_rclone_the_ceilings_and_rclones_small_rerun() -> None:
    tables = [
        _w("A", 300, {"kcsync": 2.5, "rclone": 9.0, "ceiling": 2.25}),
        _w("B", 1, {"kcsync": 10.0, "ceiling": 8.0}),
        _w("C", 10_000, {"kcsync": 3.0, "floor": 2.0}),
        _w("C", 100, {"kcsync": 1.0, "rclone": 2.0, "floor": 0.5}),
    ]
    text = _text(tables)
    assert "| W A (RTT 60 ms, unlimited): ≥ 3 × rclone (defaults) | swift | 3.60 × " in text
    assert "ceiling at its own concurrency | swift | 0.90 × (120 files/s) | **met** |" in text
    assert (
        "| W B (RTT 60 ms, unlimited): ≥ 0.9 × link rate (raw PUT through it) | swift | 0.80 × "
        in text
    )
    assert "**not met**" in text.split("W B")[1].splitlines()[0]
    c = "kcsync at 10,000 files < rclone at 100 | swift | 3.00 s vs 2.00 s | **not met** |"
    assert c in text


def test_w_c_below_60_ms_is_shown_for_context_only() -> None:
    link = "RTT 20 ms, unlimited"
    tables = [
        _w("C", 10_000, {"kcsync": 1.0, "floor": 0.6}, link),
        _w("C", 100, {"kcsync": 0.5, "rclone": 0.6, "floor": 0.4}, link),
    ]
    assert "rclone at 100 (for context; the bar is at 60 ms) | swift |" in _text(tables)


def _cpu_table(cpu: dict[str, float], files: int = 1000) -> Table:
    t = Table("A", "first upload", "rgw", files, files * 100_000, "raw-put")
    for tool, c in cpu.items():
        t.add(tool, Sample(wall=10.0, cpu=c, rss_mb=50.0, code=0))
    return t


def test_cpu_per_small_file_is_held_against_the_client_that_hashes() -> None:
    t = _cpu_table({"kcsync": 1.90, "raw-put": 1.50, "raw-put-md5": 1.80})
    row = "| A: CPU per small file ≤ 1.1 × the bare client's (raw PUT + MD5) | rgw | "
    text = _text([t])
    assert row + "1.90 vs 1.80 ms = 1.06 × (without MD5: 1.50 ms) | **met** |" in text
    text = _text([_cpu_table({"kcsync": 2.20, "raw-put": 1.50, "raw-put-md5": 1.80})])
    assert row + "2.20 vs 1.80 ms = 1.22 × (without MD5: 1.50 ms) | **not met** |" in text
