"""The state table's changelog restored in bulk, ahead of Faust's own recovery.

Faust's recovery applies a changelog one record at a time through its whole per-message
machinery: the consumer thread's hand-off, four futures per message in
`Consumer._drain_messages`, the conductor, a queue, an `asyncio.wait_for` per record and
a Counter over every partition per record in `Recovery._slurp_changelogs`. About 4,000
records/s on the bench machine, so a worker with a million customers read its changelog
for minutes before serving.

`Recovery._restart_recovery` asks `_build_offsets` where each active changelog partition
is to be read from, after it has learnt the partitions' high watermarks. This module
replaces `_build_offsets` on the recovery instance: before Faust's own, it reads the
active partitions of the state table's changelog from where the local store is current
(`active_offsets`: the RocksDB store's recorded offset, the offset Faust last read, or
nothing) up to those high watermarks, with one plain consumer (agents/kafka/bulk_read.py),
writes the records to the local store with the adapters the commit barrier uses
(agents/faust_port/stores.py: a RocksDB batch records its offset with it), and moves the
partitions' start offsets past them. Faust's recovery then finds nothing left to read, or
reads the rest its own way: the records are the same, applied in the same order.

Faust waits for `_build_offsets` at most `broker_request_timeout` and then gives up on the
whole recovery, so the bulk read stops after 70 % of that timeout and leaves what
remains to Faust (`kafka.bulk_restore = false` leaves it all to Faust). A rebalance
meanwhile cancels it (Faust restarts its recovery); what was written stays written and
is read again, harmlessly.

tests/agents/test_faust_port.py fails when `_build_offsets`, `active_offsets` or
`active_highwaters` move upstream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agents.engine.store import LocalStore
from agents.kafka.bulk_read import Key, ReadResult, Span

log = logging.getLogger(__name__)

#: the share of Faust's wait for `_build_offsets` (`broker_request_timeout`) the bulk read
#: may take before it leaves the rest to Faust
SHARE_OF_FAUST_WAIT = 0.7


def bulk_read_seconds(request_timeout_seconds: float) -> float:
    """How long the bulk read may go on, given the timeout Faust's recovery runs with."""
    return SHARE_OF_FAUST_WAIT * request_timeout_seconds


#: reads spans of partitions, handing their records to a callback (read_spans, bound to
#: the worker's client settings)
SpanReader = Callable[[dict[Key, Span], Callable[[Key, list[Any]], None]], Awaitable[ReadResult]]


def install_bulk_restore(
    recovery: Any,
    *,
    changelog_topic: str,
    local: Callable[[], LocalStore],
    read: SpanReader,
    counted: Callable[[int], None],
) -> None:
    """Make `recovery` (a faust Recovery) restore `changelog_topic`'s active partitions in
    bulk before it reads them itself. Idempotent."""
    if getattr(recovery, "_vipstream_bulk_restore", False):
        return
    build_offsets = recovery._build_offsets

    async def restore_then_build_offsets(
        consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:
        if destination is recovery.active_offsets:
            await restore(
                recovery,
                tps,
                changelog_topic=changelog_topic,
                store=local(),
                read=read,
                counted=counted,
            )
        await build_offsets(consumer, tps, destination, title)

    recovery._build_offsets = restore_then_build_offsets
    recovery._vipstream_bulk_restore = True


async def restore(
    recovery: Any,
    tps: Any,
    *,
    changelog_topic: str,
    store: LocalStore,
    read: SpanReader,
    counted: Callable[[int], None],
) -> None:
    """Read the changelog partitions among `tps` up to their high watermarks into `store`;
    advance Faust's start offsets past what was read."""
    offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
    chosen: dict[Key, Any] = {}
    spans: dict[Key, Span] = {}
    for tp in tps:
        high = highwaters.get(tp)  # Faust's: the offset of the last record to read
        if tp.topic != changelog_topic or high is None or high < 0:
            continue
        done = offsets.get(tp)
        start = None if done is None or done < 0 else done + 1
        if start is not None and start > high:
            continue
        key = (tp.topic, tp.partition)
        chosen[key] = tp
        spans[key] = Span(start, high + 1)
    if not spans:
        return

    def apply(key: Key, records: list[Any]) -> None:
        store.write(key[1], [(r.key, r.value) for r in records], records[-1].offset)
        counted(len(records))

    log.info(
        "restoring %d partitions of %s in bulk",
        len(spans),
        changelog_topic,
        extra={"event": "changelog_restore_started", "partitions": sorted(k[1] for k in spans)},
    )
    started = time.perf_counter()
    result = await read(spans, apply)
    for key, through in result.through.items():
        tp = chosen[key]
        previous = offsets.get(tp)
        offsets[tp] = through if previous is None else max(previous, through)
    seconds = time.perf_counter() - started
    left = sorted(key[1] for key in spans.keys() - result.finished)
    extra = {
        "event": "changelog_restored",
        "records": result.records,
        "partitions": len(spans),
        "seconds": round(seconds, 3),
        "left_to_faust": left,
    }
    if result.error is not None:
        log.warning(
            "bulk restore of %s stopped by %r after %d records; Faust's recovery reads "
            "partitions %s from where it stopped",
            changelog_topic,
            result.error,
            result.records,
            left,
            extra=extra,
        )
    elif left:
        log.info(
            "bulk restore of %s: %d records in %.1fs, time up; Faust's recovery reads the "
            "rest of partitions %s",
            changelog_topic,
            result.records,
            seconds,
            left,
            extra=extra,
        )
    else:
        log.info(
            "state restored in bulk from %s: %d records of %d partitions in %.1fs",
            changelog_topic,
            result.records,
            len(spans),
            seconds,
            extra=extra,
        )
