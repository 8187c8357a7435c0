"""vipstream's own Prometheus metrics (CONTRACT.md section 5): base units, `_total` on
counters, and never a customer id as a label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from agents.fastmetrics import FastCollector, FastCounter, FastGauge, FastHistogram

# Event lag spans live traffic (sub-second) to replays of history (months).
_LAG_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    6 * 3600,
    86400,
    7 * 86400,
    30 * 86400,
    365 * 86400,
)
_PROCESSING_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)
_FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """All metrics of one worker, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # updated for every event: the lock-free kind (agents/fastmetrics.py)
        self.events_consumed = FastCounter(
            "vipstream_events_consumed", "Input messages consumed.", ["topic"]
        )
        self.events_invalid = FastCounter(
            "vipstream_events_invalid",
            "Input messages that could not be used, sent to dead-letters, by reason.",
            ["topic", "reason"],
        )
        self.events_duplicate = FastCounter(
            "vipstream_events_duplicate",
            "Input events ignored because their event_id was already applied.",
            ["topic"],
        )
        self.events_applied = FastCounter(
            "vipstream_events_applied", "Input events applied to customer state.", ["topic"]
        )
        self.event_lag = FastHistogram(
            "vipstream_event_lag_seconds",
            "Processing wall-clock time minus the event's occurred_at.",
            _LAG_BUCKETS,
        )
        self.processing = FastHistogram(
            "vipstream_event_processing_seconds",
            "Time to decode, validate and apply one input message.",
            _PROCESSING_BUCKETS,
        )
        self.watermark = FastGauge(
            "vipstream_watermark_timestamp_seconds",
            "Latest event time seen on this worker's partitions less the allowed lateness.",
        )
        self.outputs = FastCounter(
            "vipstream_output_events", "Events produced, by output topic.", ["topic"]
        )
        r.register(
            FastCollector(
                [
                    self.events_consumed,
                    self.events_invalid,
                    self.events_duplicate,
                    self.events_applied,
                    self.event_lag,
                    self.processing,
                    self.watermark,
                    self.outputs,
                ]
            )
        )
        self.state_writes = Counter(
            "vipstream_state_writes_total",
            "Customer states written to the changelog (at most one per customer per commit).",
            registry=r,
        )
        self.commit_flush = Histogram(
            "vipstream_commit_flush_seconds",
            "Time to make outputs and state durable before an offset commit.",
            buckets=_FLUSH_BUCKETS,
            registry=r,
        )
        self.state_recovered = Counter(
            "vipstream_state_recovered_records_total",
            "Changelog records applied to the local table store while recovering state "
            "(all of them with memory://; those written since the last run with rocksdb://).",
            registry=r,
        )
        self.state_customers = Gauge(
            "vipstream_state_customers",
            "Customers whose state this worker holds (active).",
            registry=r,
        )
        self.tier_changes = Counter(
            "vipstream_tier_changes_total",
            "Tier changes emitted, by transition.",
            ["from_tier", "to_tier"],
            registry=r,
        )
        self.customers = Gauge(
            "vipstream_customers",
            "Customers of this worker's partitions, by tier.",
            ["tier"],
            registry=r,
        )
        self.closed_day = Gauge(
            "vipstream_closed_through_timestamp_seconds",
            "End of the latest day this worker has closed for one of its partitions.",
            registry=r,
        )
        self.distribution_day = Gauge(
            "vipstream_distribution_day_timestamp_seconds",
            "End of the latest closed day whose population distribution is merged.",
            registry=r,
        )
        self.distribution_population = Gauge(
            "vipstream_distribution_population",
            "Judged customers in the latest merged population distribution.",
            registry=r,
        )
        self.distribution_merged_at = Gauge(
            "vipstream_distribution_merged_timestamp_seconds",
            "Wall-clock time the latest population distribution was merged.",
            registry=r,
        )
        self.tiered_candidates = Histogram(
            "vipstream_tiering_candidates",
            "Customers re-checked when a partition is tiered for a closed day.",
            buckets=(0, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
            registry=r,
        )
        self.spikes = Counter(
            "vipstream_basic_question_spikes_total",
            "Basic-question spike events emitted.",
            registry=r,
        )
        self.care_tasks = Counter(
            "vipstream_care_tasks_total",
            "Care tasks emitted for the outbound dialer, by kind.",
            ["kind"],
            registry=r,
        )
        self.care_suppressed = Counter(
            "vipstream_care_tasks_suppressed_total",
            "Care tasks not emitted, by kind and reason (opted_out, cooldown).",
            ["kind", "reason"],
            registry=r,
        )
        self.ticket_priorities = Counter(
            "vipstream_ticket_priorities_total",
            "Ticket priorities emitted, by the tier they were decided with.",
            ["tier"],
            registry=r,
        )
        self.processing_errors = FastCounter(
            "vipstream_processing_errors",
            "Unexpected errors while applying a valid event (dead-lettered, worker kept up).",
        )
        r.register(FastCollector([self.processing_errors]))

    def render(self) -> bytes:
        """Prometheus text exposition format."""
        return generate_latest(self.registry)


def sample_totals(text: str) -> dict[str, float]:
    """Each sample name's value summed over its labels, from Prometheus text
    (e.g. `vipstream_events_consumed_total` over every topic); `_created` samples skipped."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals
