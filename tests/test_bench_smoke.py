"""A seconds-long run of the benchmark harness, so it cannot rot. It asserts that every
scenario produced a row for every tool, never how fast anything was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.server


def test_quick_harness_run_reports_every_tool(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--backends",
            "swift",
            "--scenarios",
            "A,B,C,D,E,F,G,R,W",
            "--repeat",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
    for heading in ("## A", "## B", "## C", "## D", "## G", "## R"):
        # C and D have two tables on Swift: kcsync at full size, and all tools on fewer files
        sections = [part.split("\n## ", 1)[0] for part in report.split(heading)[1:]]
        assert sections, f"no {heading} section"
        for tool in ("| kcsync |", "| rclone |", "| swift |"):
            assert any(tool in section for section in sections), f"{heading}: no row for {tool}"
    big = report.split("## B", 1)[1].split("\n## ", 1)[0]
    assert "| raw PUT (ceiling) |" in big and "| raw PUT + MD5 |" in big
    daemon = report.split("## E", 1)[1].split("\n## ", 1)[0]
    assert "| single files | 3 |" in daemon and "| burst | 30 |" in daemon
    memory = report.split("## F", 1)[1].split("\n## ", 1)[0]
    assert "| 100 | rerun |" in memory
    restore = report.split("## R", 1)[1].split("\n## ", 1)[0]
    assert "| raw GET (ceiling) |" in restore
    # W: every part through the proxy (quick: RTT 20 ms, 100 Mbit/s), every request via it.
    for part in ("WA", "WB", "WC"):
        section = report.split(f"## {part} ", 1)[1].split("\n## ", 1)[0]
        assert "over RTT 20 ms, 100 Mbit/s" in section
        for tool in ("| kcsync |", "| rclone |", "| swift |"):
            assert tool in section, f"{part}: no row for {tool}"
        via = section.split("Through the proxy (server log: client 127.0.0.2): ", 1)[1]
        proxied, total = via.split(" requests")[0].split(" of ")
        assert proxied == total and int(total) > 0, via
    bars = report.split("## The bars", 1)[1].split("\n## ", 1)[0]
    for bar in (
        "A: ≥ 0.9 × raw PUT",
        "C: ≤ 1.5 × floor",
        "E: single files",
        "G: re-sent",
        "R (small files): ≥ 0.9 × raw GET",
        "R (large file): peak RSS < 100 MB",
        "W A (RTT 20 ms, 100 Mbit/s): ≥ 3 × rclone (defaults)",
        "W B (RTT 20 ms, 100 Mbit/s): ≥ 0.9 × link rate",
        "W C (RTT 20 ms, 100 Mbit/s): kcsync at 10 files < rclone at 10",
    ):
        assert bar in bars
