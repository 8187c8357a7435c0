"""`vipstream export tiers`: every customer's current tier, read from the compacted
`customer-tiers` topic (no worker needed), as CSV or JSON lines for BI tools.

The topic is read from its start to the end it had when the export began (the last
stable offset: an exactly-once worker's open transaction is not waited for), keeping
the latest record per customer; a tombstone (an erased customer) removes it. Rows are
sorted by customer id, so two exports of the same table are byte-identical.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.faust_port.aiokafka_client import force_metadata_update
from agents.kafka.security import client_options
from agents.settings import Settings
from agents.tools.replay import Progress
from schemas.outputs import CustomerTier

#: the columns of an export: the record's fields but the event envelope
COLUMNS = tuple(
    name
    for name in CustomerTier.model_fields
    if name not in ("event_type", "event_id", "emitted_at", "schema_version")
)


class ExportError(RuntimeError):
    """The topic cannot be read (missing, or not reachable)."""


async def read_table(
    settings: Settings, topic: str, *, progress: Progress | None = None
) -> tuple[dict[bytes, bytes], int]:
    """(customer id -> its latest record, records without a customer key)."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = await _assign(consumer, topic, settings)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        if progress is not None:
            progress.set_total(sum(ends[tp] - starts[tp] for tp in tps))
        table: dict[bytes, bytes] = {}
        invalid = 0
        reading = [tp for tp in tps if ends[tp] > starts[tp]]
        while reading:
            batch = await consumer.getmany(*reading, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                invalid += _keep_latest(table, records, ends[tp])
            positions = {tp: await consumer.position(tp) for tp in tps}
            reading = [tp for tp in reading if positions[tp] < ends[tp]]
            if progress is not None:
                done = sum(min(positions[tp], ends[tp]) - starts[tp] for tp in tps)
                progress.update(done, len(table), invalid, final=not reading)
        return table, invalid
    finally:
        await consumer.stop()


async def _assign(
    consumer: AIOKafkaConsumer, topic: str, settings: Settings
) -> list[TopicPartition]:
    """Every partition of the topic, assigned and at its start."""
    partitions = consumer.partitions_for_topic(topic)
    for _ in range(50):
        if partitions:
            break
        await force_metadata_update(consumer)
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ExportError(f"topic {topic!r} does not exist on {settings.broker}")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return tps


def _keep_latest(table: dict[bytes, bytes], records: Iterable[Any], end: int) -> int:
    """Apply records before `end` to the table; how many had no key."""
    invalid = 0
    for record in records:
        if record.offset >= end:
            break
        if record.key is None:
            invalid += 1
        elif record.value is None:
            table.pop(record.key, None)  # a tombstone: the customer was erased
        else:
            table[record.key] = record.value
    return invalid


def rows(table: dict[bytes, bytes]) -> Iterable[dict[str, Any]]:
    """The records, sorted by customer id (a record that is not valid JSON is skipped)."""
    for key in sorted(table):
        try:
            record = orjson.loads(table[key])
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def write_csv(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    written = 0
    for record in records:
        writer.writerow({k: "" if record.get(k) is None else record[k] for k in COLUMNS})
        written += 1
    return written


def write_jsonl(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    written = 0
    for record in records:
        out.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode() + "\n")
        written += 1
    return written


async def export_tiers(
    settings: Settings, out: TextIO, *, fmt: str, progress: bool = True
) -> tuple[int, int]:
    """Write the table; (customers written, invalid records skipped)."""
    bar = Progress(0, sys.stderr, done_word="customers") if progress else None
    topic = settings.topics.name("customer_tiers")
    table, invalid = await read_table(settings, topic, progress=bar)
    writer = write_csv if fmt == "csv" else write_jsonl
    return writer(rows(table), out), invalid
