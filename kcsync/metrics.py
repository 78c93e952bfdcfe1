"""Prometheus metrics: the daemon's /metrics endpoint and the --once textfile.

Nothing here counts by itself: at each scrape a collector reads the counters the run
keeps anyway (Stats, the HTTP client, the authenticator, the queue, the watcher), so the
hot paths gain no calls and the numbers cannot disagree with the summary or with
`kcsync status`. One registry per process (never prometheus_client's global one), so
tests can build several.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcsync.errors import ConfigError
from kcsync.progress import Stats

# prometheus_client is imported where it is used, not here: it costs a --once run from
# cron about 90 ms of its start (as much as the rest of the CLI's imports), and RunFacts,
# which every run keeps, needs none of it.
if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

    from kcsync.swift.auth import Authenticator
    from kcsync.swift.client import SwiftClient

# Always reported, 0 when empty: a series that comes and goes breaks rate() and alerts.
QUEUE_STATES = ("pending", "running", "dead")
SUCCESS = "kcsync_last_success_timestamp_seconds"


@dataclass
class RunFacts:
    """What the reconciles and runs of this process found; set by the daemon and run_once."""

    last_reconcile_at: float | None = None
    last_reconcile_duration: float | None = None
    last_reconcile_drift: int | None = None
    last_success_at: float | None = None
    sent_bytes: int = 0  # read from files for sending, as it goes (resends included)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reconciled(self, *, at: float, duration: float, drift: int, ok: bool) -> None:
        self.last_reconcile_at = at
        self.last_reconcile_duration = duration
        self.last_reconcile_drift = drift
        if ok:
            self.last_success_at = at + duration

    def counting(self, pace: Callable[[int], None]) -> Callable[[int], None]:
        """``pace`` that also adds to sent_bytes: told every block read for sending."""

        def counted(n: int) -> None:
            with self._lock:
                self.sent_bytes += n
            pace(n)

        return counted


@dataclass
class Sources:
    """Where each number comes from; the daemon fills in what it has (a --once run has no
    watcher)."""

    stats: Stats
    facts: RunFacts
    client: SwiftClient
    auth: Authenticator
    queue_counts: Callable[[], dict[str, int]]
    in_flight: Callable[[], int]
    bandwidth_limit: Callable[[], int]
    watcher_overflows: Callable[[], int] | None = None


class _Collector:
    def __init__(self, sources: Sources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self._s
        st = s.stats
        yield _counter("kcsync_uploaded_files", "Files uploaded (verified by Etag)", st.uploaded)
        yield _counter(
            "kcsync_uploaded_bytes",
            "Bytes of the files uploaded, counted as each completes",
            st.uploaded_bytes,
        )
        yield _counter(
            "kcsync_sent_bytes",
            "Bytes read from files for sending, as they go (resent bytes included)",
            s.facts.sent_bytes,
        )
        yield _counter(
            "kcsync_adopted_files",
            "Files found already in the bucket (or copied on a rename)",
            st.adopted,
        )
        yield _counter("kcsync_deleted_objects", "Objects deleted from the bucket", st.deleted)
        yield _counter(
            "kcsync_failed_files", "Jobs that failed every attempt (dead)", st.failed_count
        )
        yield _counter(
            "kcsync_skipped_files", "Files skipped as unreadable or unsyncable", st.bad_count
        )
        yield _counter(
            "kcsync_refused_deletes", "Deletes refused by the delete guard", st.refused_deletes
        )
        yield _counter(
            "kcsync_removed_local_files",
            "Local files removed after a verified upload (after_upload: delete)",
            st.removed_local,
        )
        counts = s.queue_counts()
        queue = GaugeMetricFamily(
            "kcsync_queue_jobs", "Jobs in the queue by state", labels=["state"]
        )
        for state in sorted(set(QUEUE_STATES) | set(counts)):
            queue.add_metric([state], counts.get(state, 0))
        yield queue
        yield _gauge(
            "kcsync_dead_jobs",
            "Jobs that failed every attempt and wait for a reconcile (see kcsync status)",
            counts.get("dead", 0),
        )
        yield _gauge(
            "kcsync_bytes_in_flight", "Bytes of request bodies being sent now", s.in_flight()
        )
        yield _gauge(
            "kcsync_bandwidth_limit_bytes_per_second",
            "The bandwidth limit in force (0: none)",
            s.bandwidth_limit(),
        )
        f = s.facts
        if f.last_reconcile_at is not None:
            yield _gauge(
                "kcsync_last_reconcile_timestamp_seconds",
                "When the last reconcile started (Unix time)",
                f.last_reconcile_at,
            )
            yield _gauge(
                "kcsync_last_reconcile_duration_seconds",
                "How long the last reconcile took",
                f.last_reconcile_duration or 0.0,
            )
            yield _gauge(
                "kcsync_last_reconcile_drift",
                "Changes the last reconcile found that nobody had queued",
                f.last_reconcile_drift or 0,
            )
        if f.last_success_at is not None:
            yield _gauge(
                SUCCESS,
                "When the last fully successful reconcile or run ended (Unix time)",
                f.last_success_at,
            )
        http = CounterMetricFamily(
            "kcsync_http_requests",
            "HTTP requests to the storage by method and answer class (error: no answer)",
            labels=["method", "status"],
        )
        for (method, status), n in sorted(dict(s.client.answers).items()):
            http.add_metric([method, status], n)
        yield http
        yield _counter(
            "kcsync_http_retries", "Requests sent again after a failed attempt", s.client.retries
        )
        yield _counter(
            "kcsync_token_refreshes",
            "Tokens obtained after the first one",
            max(0, s.auth.tokens - 1),
        )
        if s.watcher_overflows is not None:
            yield _counter(
                "kcsync_watcher_overflows",
                "Times the kernel dropped file events (each triggers a reconcile)",
                s.watcher_overflows(),
            )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    from prometheus_client.core import CounterMetricFamily

    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, doc, value=value)


def registry_for(sources: Sources) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(sources))
    return registry


class Endpoint:
    """The daemon's /metrics, served by prometheus_client on its own (daemon) thread."""

    def __init__(self, registry: CollectorRegistry, address: tuple[str, int]) -> None:
        from prometheus_client import start_http_server

        host, port = address
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            # Named by its key: another process on the port, or an address not of this host.
            problem = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError("metrics.listen", problem) from None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Write the node_exporter textfile: to a temporary name in the same directory, then
    renamed over the old one (prometheus_client does both), so the collector never reads
    half a file. The temporary name does not end in .prom, so it is never collected."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def previous_success(path: Path) -> float | None:
    """The last success a textfile recorded: a failed --once run carries it over, so an
    alert on its age keeps counting from the last run that worked."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == SUCCESS:
                    return float(sample.value)
    except ValueError:
        return None  # not ours, or damaged: forget it rather than fail the run
    return None


def scrape_value(text: str, name: str, **labels: Any) -> float | None:
    """One sample's value from exposition text (tests and the benchmark read it so)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
