"""Metrics through the CLI: a real scrape of the daemon's endpoint, and the --once textfile,
both read with prometheus_client's own parser."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemon_harness import DaemonProcess, wait_for
from tests.e2e.harness import Env

pytestmark = pytest.mark.server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); the parser fails on anything malformed."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str):
    return found.get((name, tuple(sorted(labels.items()))))


def test_daemon_endpoint_is_scraped_and_parsed(env: Env) -> None:
    env.write("keep.txt", b"k")
    port = free_port()
    with DaemonProcess(env, metrics={"listen": f"127.0.0.1:{port}"}) as daemon:
        daemon.wait_reconciled()
        env.write("a.bin", os.urandom(3000))
        env.write("big.bin", os.urandom(1536 * 1024))  # an SLO: segments PUT in parallel
        wait_for(lambda: len(daemon.named("uploaded")) == 3, "three uploads")
        (env.data / "keep.txt").unlink()
        wait_for(lambda: "files/keep.txt" not in env.names(), "the delete")

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            resp = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert resp.status_code == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            return samples(resp.text)

        wait_for(lambda: value(scraped(), "kcsync_deleted_objects_total") == 1, "the count")
        found = scraped()
    assert value(found, "kcsync_uploaded_files_total") == 3
    size = 1 + 3000 + 1536 * 1024
    assert value(found, "kcsync_uploaded_bytes_total") == size
    assert value(found, "kcsync_sent_bytes_total") == size
    assert value(found, "kcsync_failed_files_total") == 0
    for state in ("pending", "running", "dead"):
        assert value(found, "kcsync_queue_jobs", state=state) == 0
    assert value(found, "kcsync_dead_jobs") == 0
    assert value(found, "kcsync_bytes_in_flight") == 0
    assert value(found, "kcsync_last_reconcile_drift") == 1  # keep.txt, at start
    assert value(found, "kcsync_last_reconcile_timestamp_seconds") > 1e9
    assert value(found, "kcsync_last_reconcile_duration_seconds") >= 0
    assert value(found, "kcsync_last_success_timestamp_seconds") > 1e9
    # Two plain PUTs, six 256 KiB segments and a manifest: all answered 2xx.
    assert value(found, "kcsync_http_requests_total", method="PUT", status="2xx") >= 9
    assert value(found, "kcsync_http_requests_total", method="DELETE", status="2xx") >= 1
    assert value(found, "kcsync_http_retries_total") == 0
    assert value(found, "kcsync_token_refreshes_total") == 0
    assert value(found, "kcsync_watcher_overflows_total") == 0
    assert value(found, "kcsync_bandwidth_limit_bytes_per_second") == 0


def test_endpoint_is_off_unless_configured(env: Env) -> None:
    env.write("keep.txt", b"k")
    with DaemonProcess(env) as daemon:
        daemon.wait_reconciled()
        assert not daemon.named("metrics endpoint")


def test_once_writes_the_textfile_and_a_failed_run_keeps_the_last_success(
    env: Env, tmp_path: Path
) -> None:
    prom = tmp_path / "textfile" / "kcsync.prom"
    env.write("a.txt", b"hello")
    first = env.run("--once", metrics={"textfile": str(prom)})
    assert first.code == 0, first.stderr
    found = samples(prom.read_text())
    assert value(found, "kcsync_uploaded_files_total") == 1
    assert value(found, "kcsync_uploaded_bytes_total") == 5
    assert value(found, "kcsync_last_reconcile_drift") == 1
    success = value(found, "kcsync_last_success_timestamp_seconds")
    assert success is not None and success > 1e9
    assert value(found, "kcsync_http_requests_total", method="PUT", status="2xx") >= 1
    assert ("kcsync_watcher_overflows_total", ()) not in found  # no watcher in --once
    assert [p.name for p in prom.parent.iterdir()] == ["kcsync.prom"]  # no temp left

    # A run that fails (a folder that does not exist) still writes the file, and keeps
    # the last success the first run recorded.
    folders = [*env.settings["folders"], {"path": str(tmp_path / "nope"), "prefix": "nope/"}]
    second = env.run("--once", metrics={"textfile": str(prom)}, folders=folders)
    assert second.code == 1
    found = samples(prom.read_text())
    assert value(found, "kcsync_last_success_timestamp_seconds") == success
    assert value(found, "kcsync_uploaded_files_total") == 0
