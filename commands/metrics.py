"""Prometheus metrics of the bot, served by `GET /metrics`.

Everything lives in a dedicated `CollectorRegistry` held by a `Metrics` object, never in
prometheus_client's global registry: tests can build a fresh `Metrics()` and read exact values,
and importing this module twice (or two apps in one process) never raises "Duplicated timeseries".
The module-level functions record into one default instance, which is what the bot serves.

Values that other parts own (workflows by state, approvals waiting, the last fleet scan) are not
pushed here: a source
function is registered and called at scrape time, so the numbers are never stale.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# `*_created` series (one timestamp per label set) double the exposition for no operational use.
disable_created_metrics()

PREFIX = "sigfox_bot"

StateCounts = Callable[[], Mapping[str, int]]
Count = Callable[[], int]
# The last fleet scan: its duration in seconds and the devices it saw by token state.
ScanFigures = tuple[float, Mapping[str, int]]
ScanSource = Callable[[], ScanFigures | None]
# When the last fleet scan that completed finished (Unix time), None before any.
LastSuccess = Callable[[], float | None]
T = TypeVar("T")

# A path segment that is an identifier (device id such as "1A2B3C", a 24-hex object id, a number)
# rather than a resource name. Requiring a digit keeps words made of hex letters ("add") intact.
_ID_SEGMENT = re.compile(r"^(?=[^/]*\d)[0-9A-Za-z_-]+$")


def endpoint_template(path: str) -> str:
    """`/devices/1A2B3C/messages?limit=1` -> `/devices/{id}/messages`.

    Label values must come from a small set, or every device would create new time series.
    """
    path = path.split("?", 1)[0].rstrip("/") or "/"
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return "/".join(parts) or "/"


ANSWER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.375, 0.5, 0.75,
                  1.0, 1.5, 2.0, 3.0, 5.0)


class _CallbackGauges(Collector):
    """Gauges read from source functions at scrape time; a failing source is skipped, not fatal."""

    def __init__(self) -> None:
        self.workflow_states: StateCounts | None = None
        self.approvals_waiting: Count | None = None
        self.undelivered_digests: Count | None = None
        self.scan: ScanSource | None = None
        self.recorded_scan: ScanFigures | None = None
        self.last_success: LastSuccess | None = None
        self.now: Callable[[], float] = time.time  # the bot's clock, for the scan's age

    def collect(self) -> Iterable[Metric]:
        yield from self._workflows()
        yield from self._approvals()
        yield from self._digests()
        yield from self._scan()

    def describe(self) -> Iterable[Metric]:
        # Declared without samples so registration does not call the sources.
        return []

    def _workflows(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(f"{PREFIX}_workflows", "Workflows by state.", labels=["state"])
        counts: Mapping[str, int] = _safely(self.workflow_states, {})
        for state, n in sorted(counts.items()):
            family.add_metric([str(state)], float(n))
        yield family

    def _approvals(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_approvals_waiting", "Approvals requested and not yet decided."
        )
        if self.approvals_waiting is not None:
            family.add_metric([], float(_safely(self.approvals_waiting, 0)))
        yield family

    def _digests(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_alert_digests_undelivered",
            "Alert digests Slack has not taken yet, waiting in the notification log."
        )
        if self.undelivered_digests is not None:
            family.add_metric([], float(_safely(self.undelivered_digests, 0)))
        yield family

    def _scan(self) -> Iterable[Metric]:
        duration = GaugeMetricFamily(f"{PREFIX}_last_scan_duration_seconds",
                                     "Duration of the last fleet scan.")
        devices = GaugeMetricFamily(f"{PREFIX}_devices_by_token_state",
                                    "Devices seen by the last scan, by token state.",
                                    labels=["state"])
        # A registered source (the scans kept in the database) outlives a restart; a scan this
        # process pushed (`record_scan`) counts when there is no source or it knows no scan.
        figures = _safely(self.scan, None) or self.recorded_scan
        if figures is not None:
            seconds, by_state = figures
            duration.add_metric([], float(seconds))
            for state, n in sorted(by_state.items()):
                devices.add_metric([str(state)], float(n))
        yield duration
        yield devices
        last = GaugeMetricFamily(f"{PREFIX}_last_successful_scan_timestamp_seconds",
                                 "When the last fleet scan that completed finished (Unix time); "
                                 "alert on time() minus this.")
        age = GaugeMetricFamily(f"{PREFIX}_last_successful_scan_age_seconds",
                                "Seconds since the last successful fleet scan finished, by the "
                                "bot's clock.")
        # No sample until a scan has succeeded: absent() says "never", not "since 1970".
        finished = _safely(self.last_success, None)
        if finished is not None:
            last.add_metric([], float(finished))
            age.add_metric([], max(self.now() - float(finished), 0.0))
        yield last
        yield age


def _safely(source: Callable[[], T] | None, default: T) -> T:
    if source is None:
        return default
    try:
        return source()
    except Exception:  # a broken source must not take the whole scrape down
        log.exception("metrics source %r failed", source)
        return default


class _CollectionPauses(Collector):
    """The garbage collector's pauses (every thread waits while it walks the heap), timed by a
    `gc.callbacks` entry. A collection may start in a thread that holds one of prometheus's
    locks, which are not re-entrant: the callback only adds to plain numbers, turned into
    metrics when scraped. `busy()` says whether Slack requests are being answered."""

    def __init__(self) -> None:
        self.busy: Callable[[], bool] = lambda: False
        self._started = 0.0
        self._busy_at_start = False
        self._totals: dict[tuple[str, str], list[float]] = {}  # (generation, during) -> [n, s]

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._busy_at_start = self.busy()
            return
        key = (str(info["generation"]), "true" if self._busy_at_start else "false")
        totals = self._totals.setdefault(key, [0.0, 0.0])
        totals[0] += 1
        totals[1] += time.perf_counter() - self._started

    def collect(self) -> Iterable[Metric]:
        labels = ["generation", "during_acks"]
        count = CounterMetricFamily(f"{PREFIX}_gc_pauses", "Garbage collections run, by "
                                    "generation and whether Slack requests were being "
                                    "answered.", labels=labels)
        seconds = CounterMetricFamily(f"{PREFIX}_gc_pause_seconds", "Time the garbage "
                                      "collector held every thread, by generation and whether "
                                      "Slack requests were being answered.", labels=labels)
        for key, (n, total) in sorted(self._totals.items()):
            count.add_metric(list(key), n)
            seconds.add_metric(list(key), total)
        yield count
        yield seconds

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """All of the bot's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sigfox_calls = Counter(
            f"{PREFIX}_sigfox_api_calls",
            "Sigfox API calls by method, endpoint and HTTP status.",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.sigfox_rate_limited = Counter(
            f"{PREFIX}_sigfox_api_rate_limited",
            "Sigfox API answers 429, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.slack_calls = Counter(
            f"{PREFIX}_slack_api_calls",
            "Slack Web API calls by method and outcome.",
            ["method", "ok"],
            registry=r,
        )
        self.slack_errors = Counter(
            f"{PREFIX}_slack_api_errors",
            "Slack Web API errors by method and error code.",
            ["method", "error"],
            registry=r,
        )
        self.scan_failures = Counter(
            f"{PREFIX}_scan_failures",
            "Fleet scans that did not complete (Sigfox refused, unreachable, or an error).",
            registry=r,
        )
        # A tick never sleeps on Sigfox: it takes as long as its due steps' calls. Buckets
        # from a quiet tick (a few ms) to one cut short by its budget (the tick interval).
        self.workflow_tick = Histogram(
            f"{PREFIX}_workflow_tick_seconds",
            "Duration of one workflow tick (advancing every due workflow), in real seconds.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        # How a Slack request's answer (the ack Slack waits 3 s for) spends its time, by phase
        # (`bot.web`): read, verify, queue (waiting for a thread), dispatch, dispatch_cpu (the
        # dispatching thread's own CPU; the rest of dispatch is waiting for the GIL or a core),
        # send, total. Buckets from a quiet answer (a few ms) to Slack's 3 s limit and beyond.
        self.slack_answer = Histogram(
            f"{PREFIX}_slack_answer_seconds",
            "Time spent answering a Slack request, by phase.",
            ["phase"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        # Background work (lazy listeners) parked at a safe point while acks were due.
        self.background_parked = Histogram(
            f"{PREFIX}_background_parked_seconds",
            "How long background work waited for the acks in flight, per wait.",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self._callbacks = _CallbackGauges()
        r.register(self._callbacks)
        self.collection_pauses = _CollectionPauses()
        r.register(self.collection_pauses)

    def watch_collections(self, busy: Callable[[], bool]) -> None:
        """Time the garbage collector's pauses from now on (once per process is enough)."""
        self.collection_pauses.busy = busy
        if self.collection_pauses not in gc.callbacks:
            gc.callbacks.append(self.collection_pauses)

    def observe_tick(self, seconds: float) -> None:
        self.workflow_tick.observe(seconds)

    def record_sigfox_call(self, method: str, endpoint: str, status: int | None) -> None:
        """`status` None: no HTTP answer at all (connection refused, timeout)."""
        template = endpoint_template(endpoint)
        label = "error" if status is None else str(status)
        self.sigfox_calls.labels(method.upper(), template, label).inc()
        if status == 429:
            self.sigfox_rate_limited.labels(template).inc()

    def observe_answer(self, phase: str, seconds: float) -> None:
        self.slack_answer.labels(phase).observe(seconds)

    def observe_parked(self, seconds: float) -> None:
        self.background_parked.observe(seconds)

    def record_slack_call(self, method: str, ok: bool, error: str | None = None) -> None:
        self.slack_calls.labels(method, "true" if ok else "false").inc()
        if not ok:
            self.slack_errors.labels(method, error or "unknown").inc()

    def record_scan(self, duration_seconds: float, devices_by_state: Mapping[str, int]) -> None:
        """One scan's results replace the previous ones: a state no longer seen disappears."""
        self._callbacks.recorded_scan = (duration_seconds, dict(devices_by_state))

    def set_scan_source(self, source: ScanSource | None) -> None:
        """Read the last scan at scrape time (it wins over `record_scan`)."""
        self._callbacks.scan = source

    def set_last_success_source(self, source: LastSuccess | None,
                                now: Callable[[], float] = time.time) -> None:
        """`now` is the bot's clock: the age is measured on it."""
        self._callbacks.last_success = source
        self._callbacks.now = now

    def record_scan_failure(self) -> None:
        self.scan_failures.inc()

    def set_workflow_state_source(self, source: StateCounts | None) -> None:
        self._callbacks.workflow_states = source

    def set_approvals_waiting_source(self, source: Count | None) -> None:
        self._callbacks.approvals_waiting = source

    def set_undelivered_digests_source(self, source: Count | None) -> None:
        self._callbacks.undelivered_digests = source

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample's value (full sample name, e.g. `..._total`), for tests and diagnostics."""
        return self.registry.get_sample_value(name, dict(labels or {}))


METRICS = Metrics()


def record_sigfox_call(method: str, endpoint: str, status: int | None) -> None:
    METRICS.record_sigfox_call(method, endpoint, status)


def record_slack_call(method: str, ok: bool, error: str | None = None) -> None:
    METRICS.record_slack_call(method, ok, error)


def record_scan(duration_seconds: float, devices_by_state: Mapping[str, int]) -> None:
    METRICS.record_scan(duration_seconds, devices_by_state)


def observe_tick(seconds: float) -> None:
    METRICS.observe_tick(seconds)


def set_workflow_state_source(source: StateCounts | None) -> None:
    METRICS.set_workflow_state_source(source)


def set_approvals_waiting_source(source: Count | None) -> None:
    METRICS.set_approvals_waiting_source(source)


def set_undelivered_digests_source(source: Count | None) -> None:
    METRICS.set_undelivered_digests_source(source)


def set_scan_source(source: ScanSource | None) -> None:
    METRICS.set_scan_source(source)


def set_last_success_source(source: LastSuccess | None,
                            now: Callable[[], float] = time.time) -> None:
    METRICS.set_last_success_source(source, now)


def record_scan_failure() -> None:
    METRICS.record_scan_failure()


def render_metrics(metrics: Metrics | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type."""
    return (metrics or METRICS).render()
