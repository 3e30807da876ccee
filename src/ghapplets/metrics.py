"""Prometheus metrics of one platform instance (own registry, so tests can run several).

Under ``ghapplets serve`` several processes (gateways and the worker) count for one node: the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multi-process mode), every
process writes its values there, and ``/metrics`` on any of them renders the sum of all.

Label values are bounded: a ``source`` label is a configured source's name, an ``applet`` label
an installed applet's name, a ``reason`` a :class:`~ghapplets.exceptions.RejectReason`, an
``outcome`` an attempt outcome, a log sink's ``reason`` a
:class:`~ghapplets.logsink.DropReason`. Anything else (a POST to an unknown source, a job of an
applet that is no longer installed) counts under :data:`UNKNOWN`, so no request can add a
series.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "_unknown"  # the one label value for anything not configured (no name starts with _)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# The Splunk log sink (ghapplets.logsink) is one per process, not per Metrics: its counters live
# here, and every Metrics registry shows them (in multi-process mode they are written to the
# shared folder like any other value).
LOG_EVENTS_SHIPPED = Counter(
    "ghapplets_log_events_shipped", "Log lines Splunk's HTTP Event Collector took", registry=None
)
LOG_EVENTS_DROPPED = Counter(
    "ghapplets_log_events_dropped",
    "Log lines not shipped to Splunk, by reason",
    ["reason"],
    registry=None,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "ghapplets_webhooks_received", "Webhooks accepted and stored", ["source"], registry=r
        )
        self.rejected = Counter(
            "ghapplets_webhooks_rejected",
            "Webhooks refused, by reason",
            ["source", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "ghapplets_webhooks_duplicate", "Webhooks already stored", ["source"], registry=r
        )
        self.queue_depth = Gauge(
            "ghapplets_queue_depth",
            "Messages not yet settled",
            ["stream"],
            registry=r,
            multiprocess_mode="livemax",  # every process reads the same queue: the same value
        )
        self.job_start_latency = Histogram(
            "ghapplets_job_start_latency_seconds",
            "From webhook receipt to the first attempt's start",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.job_duration = Histogram(
            "ghapplets_job_duration_seconds",
            "Applet run time per attempt",
            ["applet", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "ghapplets_job_retries", "Attempts that will be retried", ["applet"], registry=r
        )
        self.dead_letters = Counter(
            "ghapplets_dead_letters", "Jobs dead-lettered", ["applet"], registry=r
        )
        self.abandoned_calls = Counter(
            "ghapplets_applet_calls_abandoned",
            "Calls past their timeout whose handler could not be stopped (a sync Python "
            "handler's thread): each keeps one of its applet's slots until it returns",
            ["applet"],
            registry=r,
        )
        r.register(LOG_EVENTS_SHIPPED)
        r.register(LOG_EVENTS_DROPPED)

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROC_ENV)
        if not shared:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=shared)
        return generate_latest(combined)
