"""A deployment's state table seeded with a large, mature population, in seconds.

Pushing a year of history for 100k or 1M customers through the pipeline takes hours, so
the benchmarks seed the state table's changelog directly, as `vipstream backfill` does:

1. Templates: a year of simulated history for a few hundred customers, played through
   the workers' own `Runtime` and `ValueEngine` in one process (the backfill pipeline),
   so each template is a real customer state: a year of day buckets, a score, a tier
   decided against its population, care memory, duplicate-suppression memory.
2. Clones: customers `C0000000`, `C0000001`, ... (the ids the simulator gives), each
   placed in its partition by the Kafka default partitioner and given the state of a
   template from the same partition, with its own customer id.
3. Progress: each partition's progress record (closed and tiered day, latest event
   times, the population summary it published, customers per tier) recomputed for the
   clones it holds, so workers that recover the table merge a population of the real
   size and serve `/tiers`, and go on closing days where the templates stopped.

The states and progress records are produced to `<app_id>-customer_state-changelog`,
keyed and partitioned as the workers write them. A simulated stream for the same
customers, starting where the templates' history ends, then continues their lives.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.engine.book import is_reserved, progress_key
from agents.kafka.admin import ensure_topics
from agents.kafka.producing import Record
from agents.settings import Settings
from agents.tools import backfill
from agents.tools.simulate_io import write_jsonl
from agents.tools.simulator import SimulationConfig, Simulator
from agents.topics import INPUT_EVENT_TYPES
from streams.codec import encode_state, pack_body, unpack_body
from streams.ledger import Progress
from streams.sketch import ScoreSummary

DAY = 86_400.0
TEMPLATE_SEED = 3


@dataclass(frozen=True)
class Template:
    """One customer state of the template run: its uncompressed body split around its
    customer id."""

    parts: list[bytes]
    score: float | None  # judged score (None: not judged)
    buyer: bool  # bought in the window, and if so...
    silent: bool  # ...nothing for churn_days
    tier: str

    def value(self, customer_id: bytes) -> bytes:
        """The template's state as this customer's (ids are all 8 bytes, so the body's
        recorded lengths hold)."""
        return pack_body(customer_id.join(self.parts))


@dataclass
class Templates:
    by_partition: dict[int, list[Template]]
    progress: dict[int, Progress]
    alpha: float
    topics: dict[str, str]  # input topic key -> the name the template run read it from
    history_end: float  # epoch seconds: where a stream for the clones starts
    events: int
    seconds: float

    def describe(self) -> dict[str, Any]:
        sizes = sorted(
            len(t.value(customer_id(0))) for ts in self.by_partition.values() for t in ts
        )
        closed = self.progress[0].closed_day if self.progress else None
        return {
            "customers": len(sizes),
            "history_events": self.events,
            "seconds": self.seconds,
            "mean_bytes": sum(sizes) / max(len(sizes), 1),
            "max_bytes": sizes[-1] if sizes else 0,
            "closed_day": closed,
        }


@dataclass
class Seeded:
    customers: int
    records: int
    bytes: int
    seconds: float
    tier_counts: Counter[str] = field(default_factory=Counter)


def customer_id(index: int) -> bytes:
    """The simulator's id of its `index`-th customer."""
    return b"C%07d" % index


_WORDS = {n: struct.Struct(f"<{n // 4}I") for n in range(0, 257, 4)}


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The Kafka default partitioner (murmur2 of the key), ~10x faster than aiokafka's
    generic pure-Python murmur2 (a million keys must be placed)."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(key)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for word in _WORDS[whole].unpack_from(key):
        k = (word * m) & mask
        k ^= k >> 24
        h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length & 3
    if rest:
        if rest >= 3:
            h ^= key[whole + 2] << 16
        if rest >= 2:
            h ^= key[whole + 1] << 8
        h ^= key[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


async def make_templates(
    settings: Settings, customers: int, *, history_end: float, work: Path
) -> Templates:
    """A year of history for `customers` customers, ending at `history_end`, played
    through the backfill pipeline (the workers' runtime and value engine)."""
    started = time.perf_counter()
    config = SimulationConfig(
        customers=customers,
        days=365,
        seed=TEMPLATE_SEED,
        start=utc(history_end - 365 * DAY),
        currency=settings.ingest.currency,
    )
    path = work / "templates.jsonl"
    events, _ = write_jsonl(Simulator(config), path)
    report = backfill.BackfillReport()
    ends = backfill._count_ends([path], settings, report)
    # one process: a few hundred customers take seconds, less than starting children
    job = backfill._Job(settings, [path], ends, None, emit_outputs=False, write=False)
    _, pipeline = await backfill._play(job, backfill._Local(None, 0))
    local: dict[bytes, bytes] = pipeline.local.data
    owner: dict[bytes, int] = pipeline.local.partitions
    ledgers = pipeline.engine.ledgers
    by_partition: dict[int, list[Template]] = {p: [] for p in ledgers}
    for key in list(local):
        if is_reserved(key):
            continue
        ledger = ledgers[owner[key]]
        # the state with the derived figures its partition patches it with: the clones
        # are written whole, with no journal to patch them
        state = pipeline.store.get(key, owner[key])
        assert state is not None
        value = encode_state(state)
        by_partition[owner[key]].append(
            Template(
                parts=unpack_body(value).split(key),
                score=ledger.scores.get(key),
                buyer=key in ledger.buyers,
                silent=ledger.buyers.get(key, False),
                tier=state.tier,
            )
        )
    pooled = [t for ts in by_partition.values() for t in ts]
    donor = next(ledgers[p].progress for p, ts in by_partition.items() if ts)
    for partition, ts in by_partition.items():
        if not ts:  # few templates: a partition that got none takes them all
            ts.extend(pooled)
            progress = ledgers[partition].progress
            progress.first, progress.latest = dict(donor.first), dict(donor.latest)
    return Templates(
        by_partition=by_partition,
        progress={p: ledger.progress for p, ledger in ledgers.items()},
        alpha=settings.tiering.sketch_relative_accuracy,
        topics={k: settings.topics.name(k) for k in INPUT_EVENT_TYPES},
        history_end=history_end,
        events=events,
        seconds=time.perf_counter() - started,
    )


def _clones(
    templates: Templates, customers: int, partitions: int
) -> Iterator[tuple[int, bytes, int]]:
    """(partition, customer id, template number in the partition) of every clone,
    templates taken in turn within the customer's partition."""
    turn = dict.fromkeys(range(partitions), 0)
    for index in range(customers):
        key = customer_id(index)
        partition = murmur2_partition(key, partitions)
        yield partition, key, turn[partition] % len(templates.by_partition[partition])
        turn[partition] += 1


def _progress(
    templates: Templates, partition: int, clones: Counter[int], topics: dict[str, str]
) -> bytes:
    """The partition's progress record for the clones it holds (template number ->
    clones of it), naming the deployment's input topics (`topics`: key -> name)."""
    renamed = {templates.topics[k]: name for k, name in topics.items()}
    template = templates.progress[partition]
    pool = templates.by_partition[partition]
    summary = ScoreSummary(templates.alpha)
    buyers = silent = 0
    tiers: Counter[str] = Counter()
    for number, times in clones.items():
        clone = pool[number]
        if clone.score is not None:
            summary.add(clone.score, times)
        buyers += clone.buyer * times
        silent += clone.silent * times
        tiers[clone.tier] += times
    scale = clones.total() / max(len(pool), 1)
    progress = Progress(
        closed_day=template.closed_day,
        tiered_day=template.tiered_day,
        first={renamed[t]: day for t, day in template.first.items()},
        latest={renamed[t]: at for t, at in template.latest.items()},
        published={}
        if template.closed_day is None
        else {
            template.closed_day: {
                "summary": summary.to_json(),
                "buyers": buyers,
                "silent": silent,
            }
        },
        tier_counts=dict(tiers),
        emitted={k: round(n * scale) for k, n in template.emitted.items()},
        started_day=template.started_day,
    )
    return orjson.dumps(progress.to_json())


async def seed(settings: Settings, templates: Templates, customers: int) -> Seeded:
    """Write `customers` clones and their partitions' progress to the (new) changelog of
    `settings.app_id`'s state table; acknowledged."""
    started = time.perf_counter()
    partitions = settings.kafka.partitions
    await ensure_topics(settings, wait_seconds=30.0)
    topic = backfill.changelog_topic(settings)
    await _create_compacted(settings, topic, partitions)
    producer = backfill._batch_producer(settings)
    held: dict[int, Counter[int]] = {p: Counter() for p in range(partitions)}
    written = size = 0
    try:
        pending: list[Record] = []
        for partition, key, number in _clones(templates, customers, partitions):
            value = templates.by_partition[partition][number].value(key)
            pending.append((topic, partition, key, value))
            held[partition][number] += 1
            written += 1
            size += len(value)
            if len(pending) >= 20_000:
                await asyncio.gather(*await producer.send_all(pending))
                pending = []
        # progress last, after the states it covers (as the workers write them)
        topics = {k: settings.topics.name(k) for k in INPUT_EVENT_TYPES}
        for partition, clones in held.items():
            value = _progress(templates, partition, clones, topics)
            pending.append((topic, partition, progress_key(partition), value))
        await asyncio.gather(*await producer.send_all(pending))
    finally:
        await producer.stop()
    tiers: Counter[str] = Counter()
    for partition, clones in held.items():
        for number, times in clones.items():
            tiers[templates.by_partition[partition][number].tier] += times
    return Seeded(
        customers=customers,
        records=written + partitions,
        bytes=size,
        seconds=time.perf_counter() - started,
        tier_counts=tiers,
    )


async def _create_compacted(settings: Settings, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        partitions,
                        settings.kafka.replication_factor,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )
    finally:
        await admin.close()


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
