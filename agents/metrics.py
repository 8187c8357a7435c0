"""vipstream's own Prometheus metrics (CONTRACT.md section 5): base units, `_total` on
counters, and never a customer id as a label."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

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

    def __init__(self) -> None:  # noqa: PLR0915 - one statement per metric, in one place
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
        self.input_delay = FastHistogram(
            "vipstream_input_delay_seconds",
            "Processing wall-clock time minus the input message's Kafka timestamp: how long "
            "it waited in its topic (event lag less how late it reached Kafka).",
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
                    self.input_delay,
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
        self.transactions = Counter(
            "vipstream_transactions_total",
            "Kafka transactions of processing_guarantee=exactly_once, one per input "
            "partition per commit, by result: committed, aborted (a failure: the worker "
            "replays from its last commit), fenced (a newer owner took the partition).",
            ["result"],
            registry=r,
        )
        for result in ("committed", "aborted", "fenced"):
            self.transactions.labels(result)
        self.transaction_seconds = Histogram(
            "vipstream_transaction_seconds",
            "Time from beginning a partition's transaction to its commit (exactly_once).",
            buckets=_FLUSH_BUCKETS,
            registry=r,
        )
        self.state_recovered = Counter(
            "vipstream_state_recovered_records_total",
            "Changelog records applied to the local table store while recovering state "
            "(all of them with memory://; those written since the last run with rocksdb://).",
            registry=r,
        )
        self.state_recovered_in_bulk = Counter(
            "vipstream_state_recovered_in_bulk_records_total",
            "Of those, the records read in bulk ahead of Faust's recovery "
            "(agents/faust_port/restore.py); the rest Faust read one by one.",
            registry=r,
        )
        self.state_customers = Gauge(
            "vipstream_state_customers",
            "Customers whose state this worker holds (active).",
            registry=r,
        )
        self.commit_stalled_partitions = Gauge(
            "vipstream_commit_stalled_partitions",
            "Input partitions whose committed offset has stayed behind the events applied "
            "for 30 s (commits failing or refused for them).",
            registry=r,
        )
        self.input_gaps = Counter(
            "vipstream_input_gaps_total",
            "Holes in an input partition's offsets as delivered to the agent, each read "
            "back from the broker before going on: kind=dropped, records Faust's stream "
            "dropped (now applied); kind=absent, offsets holding no record (transaction "
            "markers, compaction, retention).",
            ["kind"],
            registry=r,
        )
        self.input_refetched = Counter(
            "vipstream_input_refetched_total",
            "Input records read back from the broker to fill a hole (see "
            "vipstream_input_gaps_total) and applied.",
            registry=r,
        )
        self.committed_offset = Gauge(
            "vipstream_committed_offset",
            "The offset this worker last committed for an input partition it owns (Faust's "
            "own record; -1: none yet); with vipstream_commit_stalled_partitions, where a "
            "stuck partition's commits stand.",
            ["topic", "partition"],
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
        self.model_parameter = Gauge(
            "vipstream_model_parameter",
            "The fitted population model's parameters: model purchases (MBG/NBD or BG/NBD, "
            "time in days: r, alpha, a, b) or spend (Gamma-Gamma: p, q, gamma).",
            ["model", "parameter"],
            registry=r,
        )
        self.model_log_likelihood = Gauge(
            "vipstream_model_log_likelihood",
            "Log-likelihood of the fitted population model on its sample, by model.",
            ["model"],
            registry=r,
        )
        self.model_day = Gauge(
            "vipstream_model_day_timestamp_seconds",
            "End of the closed day the population model in use was fitted on.",
            registry=r,
        )
        self.model_sample = Gauge(
            "vipstream_model_sample_customers",
            "Buyers in the sample the population model in use was fitted on.",
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
        self.day_outputs = Histogram(
            "vipstream_day_outputs_seconds",
            "Wall-clock time from a partition's watermark passing the end of a day to the "
            "broker acknowledging every output of that day's close and tiering (the "
            "contract allows 30 s once the worker has caught up).",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900),
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
        self.loop_stall = FastHistogram(
            "vipstream_event_loop_stall_seconds",
            "How late the event loop woke a 10 ms timer: how long something synchronous "
            "held it (every event and output waited as long).",
            (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        )
        self.gc_pause = FastHistogram(
            "vipstream_gc_full_collection_seconds",
            "Python's full (oldest-generation) garbage collections, how long each held the "
            "worker: they scan every object, decoded customer states included.",
            (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
        )
        self.gc_freezes = FastCounter(
            "vipstream_gc_freezes",
            "Times the live objects were moved out of the garbage collector's sight "
            "(gc_freeze: after a full collection or a ledger build).",
        )
        self.customers_erased = FastCounter(
            "vipstream_customers_erased",
            "Erasure requests applied (vipstream erase): the customer's state and "
            "customer-tiers record got tombstones.",
        )
        self.events_erased = FastCounter(
            "vipstream_events_erased",
            "Input events of an erased customer dated before its erasure, dropped unread "
            "(a replay of older input).",
            ["topic"],
        )
        r.register(
            FastCollector(
                [
                    self.processing_errors,
                    self.customers_erased,
                    self.events_erased,
                    self.loop_stall,
                    self.gc_pause,
                    self.gc_freezes,
                ]
            )
        )
        self.agent_crashes = Counter(
            "vipstream_agent_crashes_total",
            "The event agent failed outside its per-message guard and Faust restarted it "
            "(a vipstream or Faust bug: the log has the traceback).",
            registry=r,
        )
        self.consumer_lag = ConsumerLagCollector()
        r.register(self.consumer_lag)
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
        ProcessCollector(registry=r)

    def count_restored_in_bulk(self, records: int) -> None:
        self.state_recovered.inc(records)
        self.state_recovered_in_bulk.inc(records)

    def render(self) -> bytes:
        """Prometheus text exposition format."""
        return generate_latest(self.registry)


#: (topic, partition, messages behind) of one input topic-partition
PartitionLag = tuple[str, int, int]

CONSUMER_LAG = "vipstream_consumer_lag_messages"
_CONSUMER_LAG_HELP = (
    "Messages of an input topic-partition this worker owns that it has not processed yet "
    "(highwater minus the offset after the last processed message), at scrape time."
)


class ConsumerLagCollector(Collector):
    """`vipstream_consumer_lag_messages{topic,partition}`, computed when scraped.

    A partition label is bounded by the partition count; customer ids never appear.
    Partitions whose highwater is not known yet (no fetch answered) have no sample.
    """

    def __init__(self) -> None:
        self._source: Callable[[], Iterable[PartitionLag]] | None = None

    def watch(self, source: Callable[[], Iterable[PartitionLag]]) -> None:
        """Read the lag from `source` at every scrape (e.g. `input_lag` of a consumer)."""
        self._source = source

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        if self._source is not None:
            for topic, partition, lag in sorted(self._source()):
                family.add_metric([topic, str(partition)], float(lag))
        yield family

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(CONSUMER_LAG, _CONSUMER_LAG_HELP, labels=("topic", "partition"))


def sample_totals(text: str) -> dict[str, float]:
    """Each sample name's value summed over its labels, from Prometheus text
    (e.g. `vipstream_events_consumed_total` over every topic); `_created` samples skipped."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals
