"""`vipstream backfill FILE...`: every customer's state from a history, computed with the
code the workers run, and written to the state table's changelog, so a new deployment's
workers start from it (they recover their partitions' states from the changelog)
instead of consuming years of events one Faust event at a time.

The history is read as the workers would read it from fresh input topics: each line is
routed to its topic by `event_type` and to its partition by the Kafka default
partitioner on the customer id, and gets the offset it would have there. The same
event path validates, deduplicates and applies it; the same `ValueEngine` closes the days
as the partitions' watermarks pass them (knowing, like a worker, how far each input
partition goes), merges the population and tiers, with the care rules and their memory.
So the states equal those of pushing the history through the live pipeline (a test
compares them). Outputs (tier changes, care tasks, ...) are counted, and produced to the
output topics only with `--emit-outputs`: a new deployment rarely wants years of past
care tasks sent to its dialer.

With `processes` > 1 the partitions are shared by that many spawned child processes,
which settle their value engines together at the same lines as one process does, handing
each other their population summaries (`agents.tools.backfill_exchange`): the same states and
outputs, in less time when there are free cores.

Run it before the first worker starts: it refuses a state table that holds data.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.engine.harness import Harness
from agents.engine.store import Snapshot
from agents.fastmetrics import FastCounter
from agents.kafka.admin import ensure_topics
from agents.kafka.highwater import exact_highwaters
from agents.kafka.producing import BatchProducer, ChangelogWriter, Written
from agents.kafka.security import client_options
from agents.metrics import Metrics
from agents.settings import Settings
from agents.tools.backfill_exchange import PROGRESS, ExchangeError, Hub, Link
from agents.tools.replay import Progress, route_line
from agents.topics import INPUT_EVENT_TYPES
from agents.worker.app import STATE_TABLE
from streams.keys import partition_of

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


def _count_ends(
    paths: list[Path], settings: Settings, report: BackfillReport
) -> dict[tuple[str, int], int]:
    """First pass: how many messages the history puts in each input partition (a worker
    knows its partitions' high watermarks); unroutable lines are reported."""
    ends: Counter[tuple[str, int]] = Counter()
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
                ends[(names[topic_key], partition_of(key, settings.kafka.partitions))] += 1
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


class _Outputs:
    """The runtime's sender: outputs are counted, and kept to be produced if asked."""

    def __init__(self, settings: Settings, keep: bool) -> None:
        self._names = {k: settings.topics.name(k) for k in type(settings.topics).model_fields}
        self.keep = keep
        self.last_alone = settings.kafka.exact_log_end
        self.pending: list[tuple[str, int, bytes | None, bytes | None]] = []
        self.counts: Counter[str] = Counter()

    def send(self, topic_key: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.counts[self._names[topic_key]] += 1
        if self.keep:
            self.pending.append((self._names[topic_key], partition, key, value))


class _Pipeline(Harness):
    """One process playing every partition (or, in a child of `--processes`, its share of
    them): the engine's harness (the worker's event path and value engine over an
    in-memory store). What the engine publishes goes to `publish` (nowhere, with one
    process)."""

    def fill(self, report: BackfillReport) -> None:
        local = self.local.data
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
    processes: int = 1,
) -> BackfillReport:
    """Compute every customer's state from `files` and (with `write`) seed the changelog,
    in this process or in `processes` child processes (at most one per partition), each
    owning a share of the partitions; the results are the same."""
    started = time.monotonic()
    paths = list(files)
    report = BackfillReport()
    if write:
        await _check_new_deployment(settings)
    ends = _count_ends(paths, settings, report)
    total_bytes = sum(p.stat().st_size for p in paths)
    bar = Progress(total_bytes, done_word="applied") if progress else None
    count = min(max(processes, 1), settings.kafka.partitions)
    if count == 1:
        job = _Job(settings, paths, ends, None, emit_outputs, write)
        part, _ = await _play(job, _Local(bar, len(report.invalid_lines)))
    else:
        jobs = [
            _Job(
                settings,
                paths,
                ends,
                frozenset(range(i, settings.kafka.partitions, count)),
                emit_outputs,
                write,
            )
            for i in range(count)
        ]

        def moved(done: int, applied: int) -> None:
            if bar is not None:
                bar.update(done, applied, len(report.invalid_lines))

        hub = Hub(_child, jobs, on_progress=moved)
        try:
            # in this thread, blocking the loop (nothing else runs in it meanwhile), so an
            # interrupt unwinds through the hub, which stops the children
            parts = hub.run()
        except ExchangeError as exc:
            raise BackfillError(f"a backfill process failed: {exc}") from exc
        part = _combined(parts)
    if bar is not None:
        bar.update(total_bytes, part.applied, len(report.invalid_lines), final=True)
    report.customers = part.customers
    report.closed_through = part.closed_through
    report.outputs = part.outputs
    report.dead_letters = part.dead_letters
    report.applied = part.applied
    report.duplicates = part.duplicates
    report.records_written = part.records_written
    report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class _Job:
    """What one process plays: the partitions it owns (None: all of them)."""

    settings: Settings
    paths: list[Path]
    ends: dict[tuple[str, int], int]
    partitions: frozenset[int] | None
    emit_outputs: bool
    write: bool


class _Local:
    """The one-process run's stand-in for the exchange: nobody else to wait for."""

    def __init__(self, bar: Progress | None, invalid: int) -> None:
        self._bar = bar
        self._invalid = invalid

    async def barrier(self, pipeline: _Pipeline, number: int, done: int) -> None:
        await pipeline.settle()
        if self._bar is not None:
            self._bar.update(done, pipeline.applied, self._invalid)


class _Remote:
    """A child's side of the exchange: settles with the other children at each barrier."""

    def __init__(self, link: Link) -> None:
        self._link = link

    async def barrier(self, pipeline: _Pipeline, number: int, done: int) -> None:
        self._link.send((PROGRESS, done, pipeline.applied))
        await self._link.barrier(
            number, functools.partial(pipeline.settle, one_day=True), pipeline.engine.bus.receive
        )


async def _child(job: _Job, link: Link) -> BackfillReport:
    """A child process of `--processes`: its partitions, settled with the others'."""
    report, _ = await _play(job, _Remote(link), publish=link.publish)
    return report


async def _play(
    job: _Job,
    exchange: _Local | _Remote,
    *,
    publish: Callable[[bytes, bytes], None] | None = None,
) -> tuple[BackfillReport, _Pipeline]:
    """Apply the history's lines of the job's partitions; settle the value engine every
    `_CHUNK` lines of the whole history (every process at the same lines); write."""
    settings = job.settings
    outputs = _Outputs(settings, job.emit_outputs)
    pipeline = _Pipeline(
        settings, ends=job.ends, partitions=job.partitions, send=outputs.send, publish=publish
    )
    partitions = settings.kafka.partitions
    mine = pipeline.partitions
    report = BackfillReport()
    producer = _batch_producer(settings)
    try:
        sender = producer if job.emit_outputs else None
        acks: list[Awaitable[Written]] = []
        routed_lines = barriers = 0
        done = 0
        for done, line in _lines(job.paths):
            routed = route_line(line)
            if isinstance(routed, str):
                continue  # reported by the first pass
            routed_lines += 1
            topic_key, key = routed
            if partition_of(key, partitions) in mine:
                pipeline.apply(topic_key, key, line)
            if routed_lines % _CHUNK == 0:
                barriers += 1
                await exchange.barrier(pipeline, barriers, done)
                acks += await _send_outputs(outputs, sender)
                if routed_lines % _CHECKPOINT == 0:
                    pipeline.checkpoint()
        await exchange.barrier(pipeline, barriers + 1, done)
        acks += await _send_outputs(outputs, sender)
        await asyncio.gather(*acks)
        pipeline.checkpoint()
        pipeline.fill(report)
        report.outputs = outputs.counts
        if job.write:
            local = pipeline.local
            report.records_written = await _write_changelog(
                producer, changelog_topic(settings), local.data, local.partitions
            )
    finally:
        await producer.stop()
    return report, pipeline


def _combined(parts: list[BackfillReport]) -> BackfillReport:
    """The children's reports as one (each counted its own partitions)."""
    report = BackfillReport()
    closed = [p.closed_through for p in parts]
    report.closed_through = None if None in closed else min(c for c in closed if c)
    for part in parts:
        report.customers += part.customers
        report.outputs.update(part.outputs)
        report.dead_letters.update(part.dead_letters)
        report.applied += part.applied
        report.duplicates += part.duplicates
        report.records_written += part.records_written
    return report


def default_processes(settings: Settings) -> int:
    """`--processes auto`: one per usable CPU, at most one per partition."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, settings.kafka.partitions))


def _batch_producer(settings: Settings) -> BatchProducer:
    kafka = settings.kafka
    return BatchProducer(
        client_options(settings),
        max_message_bytes=kafka.max_message_bytes,
        delivery_timeout_seconds=kafka.delivery_timeout_seconds,
    )


async def _send_outputs(
    outputs: _Outputs, producer: BatchProducer | None
) -> list[Awaitable[Written]]:
    """The outputs queued since the last call, produced (with --emit-outputs) as the worker
    would: one batch per topic partition, in order."""
    pending, outputs.pending = outputs.pending, []
    if producer is None:
        return []
    return await producer.send_all(pending, last_alone=outputs.last_alone)


def _total(counter: FastCounter) -> float:
    return float(sum(counter.values().values()))


def _dead_letter_reasons(metrics: Metrics) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for (_, reason), count in metrics.events_invalid.values().items():
        reasons[reason] += int(count)
    return reasons


def _day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


async def _check_new_deployment(settings: Settings) -> None:
    """Refuse to write into a state table that already holds data."""
    await ensure_topics(settings, wait_seconds=30.0)
    name = changelog_topic(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
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
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(settings.kafka.partitions)]

        async def listed(*parts: TopicPartition) -> dict[TopicPartition, int]:
            return dict(await consumer.end_offsets(list(parts)))

        ends = await exact_highwaters(listed, client_options(settings))(*tps)
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
