"""`vipstream backfill FILE...`: every customer's state from a history, computed in one
process with the code the workers run, and written to the state table's changelog, so a
new deployment's workers start from it (they recover their partitions' states from the
changelog) instead of consuming years of events one Faust event at a time.

The history is read as the workers would read it from fresh input topics: each line is
routed to its topic by `event_type` and to its partition by the Kafka default
partitioner on the customer id, and gets the offset it would have there. The same
`Runtime` validates, deduplicates and applies it; the same `ValueEngine` closes the days
as the partitions' watermarks pass them (knowing, like a worker, how far each input
partition goes), merges the population and tiers, with the care rules and their memory.
So the states equal those of pushing the history through the live pipeline (a test
compares them). Outputs (tier changes, care tasks, ...) are counted, and produced to the
output topics only with `--emit-outputs`: a new deployment rarely wants years of past
care tasks sent to its dialer.

Run it before the first worker starts: it refuses a state table that holds data.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2
from faust.types import TP

from agents.app import STATE_TABLE
from agents.highwater import exact_highwaters
from agents.metrics import Metrics
from agents.producing import BatchProducer, ChangelogWriter, Written
from agents.replay import Progress, route_line
from agents.runtime import InputMessage, Runtime
from agents.settings import Settings
from agents.state_store import CustomerStore, Snapshot
from agents.topics import INPUT_EVENT_TYPES, ensure_topics
from agents.value_engine import ValueEngine

_TOPIC_KEYS = list(INPUT_EVENT_TYPES)
_CHUNK = 2_000  # messages applied between two runs of the value engine
_CHECKPOINT = 50_000  # messages between two encodings of the changed states


class BackfillError(RuntimeError):
    """The target is not a new deployment, or the broker refused the writes."""


@dataclass
class BackfillReport:
    lines: int = 0
    invalid_lines: list[tuple[str, int, str]] = field(default_factory=list)
    customers: int = 0
    closed_through: str | None = None
    outputs: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    applied: int = 0
    duplicates: int = 0
    records_written: int = 0
    seconds: float = 0.0


def changelog_topic(settings: Settings) -> str:
    """The name Faust gives the state table's changelog topic."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


@functools.lru_cache(maxsize=1 << 20)
def partition_of(key: bytes, partitions: int) -> int:
    """The Kafka default partitioner (murmur2), as producers place keyed messages (cached:
    aiokafka's murmur2 is pure Python, ~20 µs a key)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def _count_ends(paths: list[Path], settings: Settings, report: BackfillReport) -> dict[TP, int]:
    """First pass: how many messages the history puts in each input partition (a worker
    knows its partitions' high watermarks); unroutable lines are reported."""
    ends: Counter[TP] = Counter()
    names = {k: settings.topics.name(k) for k in _TOPIC_KEYS}
    for path in paths:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.strip()
                if not line:
                    continue
                report.lines += 1
                routed = route_line(line)
                if isinstance(routed, str):
                    report.invalid_lines.append((str(path), number, routed))
                    continue
                topic_key, key = routed
                ends[TP(names[topic_key], partition_of(key, settings.kafka.partitions))] += 1
    return dict(ends)


def _lines(paths: list[Path]) -> Iterator[tuple[int, bytes]]:
    """(bytes read so far, line) of every non-blank line."""
    done = 0
    for path in paths:
        with path.open("rb") as handle:
            for raw in handle:
                done += len(raw)
                line = raw.strip()
                if line:
                    yield done, line


class _OfflineConsumer:
    """What the value engine asks of a Faust consumer: how far each input partition goes
    (the history's message count) and what was committed before (nothing)."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self._ends = ends
        self._committed_offset: dict[TP, int] = {}

    def highwater(self, tp: TP) -> int:
        return self._ends.get(tp, 0)


class _Outputs:
    """The runtime's sender: outputs are counted, and kept to be produced if asked."""

    def __init__(self, settings: Settings, keep: bool) -> None:
        self._names = {k: settings.topics.name(k) for k in type(settings.topics).model_fields}
        self.keep = keep
        self.pending: list[tuple[str, int, bytes | None, bytes]] = []
        self.counts: Counter[str] = Counter()

    def send(self, topic_key: str, partition: int, key: bytes | None, value: bytes) -> None:
        self.counts[self._names[topic_key]] += 1
        if self.keep:
            self.pending.append((self._names[topic_key], partition, key, value))


class _Pipeline:
    """One process playing every partition: the worker's runtime and value engine over an
    in-memory stand-in for the state table."""

    def __init__(self, settings: Settings, ends: dict[TP, int], outputs: _Outputs) -> None:
        self.settings = settings
        self.table = SimpleNamespace(data=SimpleNamespace(data={}, _key_partition={}))
        self.store = CustomerStore(self.table, capacity=settings.state_cache_customers)
        self.metrics = Metrics()
        self.runtime = Runtime(settings, self.store, self.metrics, outputs.send)
        consumer = _OfflineConsumer(ends)
        partitions = set(range(settings.kafka.partitions))
        self.engine = ValueEngine(
            settings,
            self.store,
            self.metrics,
            emit=self.runtime.emit,
            publish=lambda key, value: None,  # workers republish from the progress records
            consumer=lambda: consumer,
            assignment=lambda: partitions,
        )
        self.runtime.value = self.engine
        self.engine.owned(partitions)
        self._names = {k: settings.topics.name(k) for k in _TOPIC_KEYS}
        self._offsets: Counter[tuple[str, int]] = Counter()
        self._now = time.time()
        self.applied = 0

    def apply(self, topic_key: str, key: bytes, line: bytes) -> None:
        """One message, at the offset it would have on a fresh input topic."""
        topic = self._names[topic_key]
        partition = partition_of(key, self.settings.kafka.partitions)
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        self.runtime.handle(InputMessage(topic, partition, offset, key, line, self._now))
        self.applied += 1

    async def settle(self) -> None:
        """Run the value engine until it can close, merge and tier nothing more."""
        while True:
            before = self._position()
            await self.engine.step()
            if self._position() == before:
                break
        self._now = time.time()

    def checkpoint(self) -> None:
        """Encode the changed states into the local store, so the cache can shrink."""
        self.store.confirm(self.store.snapshot(), {})

    def _position(self) -> tuple[Any, ...]:
        ledgers = self.engine.ledgers
        return (
            *sorted((p, g.progress.closed_day, g.progress.tiered_day) for p, g in ledgers.items()),
            max(self.engine.days) if self.engine.days else None,
        )

    def fill(self, report: BackfillReport) -> None:
        local = self.table.data.data
        report.customers = sum(1 for k in local if not k.startswith(b"\x00"))
        closed = [g.progress.closed_day for g in self.engine.ledgers.values()]
        if closed and None not in closed:
            report.closed_through = _day(min(c for c in closed if c is not None))
        report.dead_letters = _dead_letter_reasons(self.metrics)
        report.applied = int(_total(self.metrics.events_applied))
        report.duplicates = int(_total(self.metrics.events_duplicate))


async def backfill(
    settings: Settings,
    files: Iterable[Path],
    *,
    emit_outputs: bool = False,
    progress: bool = True,
    write: bool = True,
) -> BackfillReport:
    """Compute every customer's state from `files` and (with `write`) seed the changelog."""
    started = time.monotonic()
    paths = list(files)
    report = BackfillReport()
    if write:
        await _check_new_deployment(settings)
    outputs = _Outputs(settings, emit_outputs)
    pipeline = _Pipeline(settings, _count_ends(paths, settings, report), outputs)
    total_bytes = sum(p.stat().st_size for p in paths)
    bar = Progress(total_bytes, done_word="applied") if progress else None
    producer = _batch_producer(settings)
    try:
        sender = producer if emit_outputs else None
        acks: list[Awaitable[Written]] = []
        for done, line in _lines(paths):
            routed = route_line(line)
            if isinstance(routed, str):
                continue  # reported by the first pass
            pipeline.apply(*routed, line)
            if pipeline.applied % _CHUNK == 0:
                await pipeline.settle()
                acks += await _send_outputs(outputs, sender)
                if pipeline.applied % _CHECKPOINT == 0:
                    pipeline.checkpoint()
            if bar is not None:
                bar.update(done, pipeline.applied, len(report.invalid_lines))
        await pipeline.settle()
        acks += await _send_outputs(outputs, sender)
        await asyncio.gather(*acks)
        if bar is not None:
            bar.update(total_bytes, pipeline.applied, len(report.invalid_lines), final=True)
        pipeline.checkpoint()
        pipeline.fill(report)
        report.outputs = outputs.counts
        if write:
            data = pipeline.table.data
            report.records_written = await _write_changelog(
                producer, changelog_topic(settings), data.data, data._key_partition
            )
    finally:
        await producer.stop()
    report.seconds = time.monotonic() - started
    return report


def _batch_producer(settings: Settings) -> BatchProducer:
    kafka = settings.kafka
    return BatchProducer(
        settings.bootstrap_servers,
        max_message_bytes=kafka.max_message_bytes,
        delivery_timeout_seconds=kafka.delivery_timeout_seconds,
    )


async def _send_outputs(
    outputs: _Outputs, producer: BatchProducer | None
) -> list[Awaitable[Written]]:
    """The outputs queued since the last call, produced (with --emit-outputs) as the worker
    would: one batch per topic partition, in order."""
    pending, outputs.pending = outputs.pending, []
    return [] if producer is None else await producer.send_all(pending)


def _total(counter: Any) -> float:
    return float(sum(child.value for child in counter._children.values()))


def _dead_letter_reasons(metrics: Metrics) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for (_, reason), child in metrics.events_invalid._children.items():
        reasons[reason] += int(child.value)
    return reasons


def _day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


async def _check_new_deployment(settings: Settings) -> None:
    """Refuse to write into a state table that already holds data."""
    await ensure_topics(settings, wait_seconds=30.0)
    name = changelog_topic(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        settings.kafka.partitions,
                        settings.kafka.replication_factor,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )
            return
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(settings.kafka.partitions)]

        async def listed(*parts: TopicPartition) -> dict[TopicPartition, int]:
            return dict(await consumer.end_offsets(list(parts)))

        ends = await exact_highwaters(listed, settings.bootstrap_servers)(*tps)
    finally:
        await consumer.stop()
    if any(ends.values()):
        raise BackfillError(
            f"the state table's changelog {name!r} already holds {sum(ends.values()):,} "
            "records: backfill seeds a new deployment (another app_id, or delete the topic "
            "and the workers' data directories first)"
        )


async def _write_changelog(
    producer: BatchProducer, topic: str, local: dict[bytes, bytes], owner: dict[bytes, int]
) -> int:
    """Every state and progress record to its changelog partition, as the workers write
    them (customers first, then the partition's progress); acknowledged."""
    ordered = sorted(local.items(), key=lambda item: item[0].startswith(b"\x00"))
    snapshot = Snapshot(0, [(key, owner[key], value) for key, value in ordered])
    await asyncio.gather(*await ChangelogWriter(producer, topic).write(snapshot))
    return len(local)
