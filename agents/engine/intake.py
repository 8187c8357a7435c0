"""Every input message, in offset order and without gaps, into the event path.

The consuming framework can drop a message on its way to the agent (faust-streaming:
agents/engine/frontier.py). The intake keeps a frontier per input partition: a message
below it is a replay and is skipped; one above it reveals a hole, which is read straight
from the broker (`HoleReader`, agents/kafka/refetch.py) and applied first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from agents.engine.events import EventPath, InputMessage
from agents.engine.frontier import REPLAYED, FetchedSpan, Hole, InputFrontier
from agents.metrics import Metrics

log = logging.getLogger(__name__)


class HoleReader(Protocol):
    """Reads input partitions outside the group."""

    span: FetchedSpan  # what the last read of each partition found

    def read(
        self, topic: str, partition: int, start: int | None, end: int
    ) -> AsyncIterator[list[Any]]:
        """Batches of records (with topic, partition, offset, key, value, timestamp in
        ms) at offsets start..end-1."""

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of the partition, asked of the broker."""


class Intake:
    def __init__(
        self, frontier: InputFrontier, events: EventPath, reader: HoleReader, metrics: Metrics
    ) -> None:
        self.frontier = frontier
        self._events = events
        self._reader = reader
        self._metrics = metrics

    async def receive(self, tp: Any, message: InputMessage, committed: int | None) -> None:
        """One message the framework delivered (`committed`: the partition's committed
        offset as the framework knows it)."""
        frontier = self.frontier
        verdict = frontier.check(tp, message.offset, committed)
        if verdict is REPLAYED:
            return  # already applied: the frontier is past it
        if isinstance(verdict, Hole) and not await self._fill(tp, verdict):
            return
        self._events.handle(message)
        frontier.advance(tp, message.offset)

    async def _fill(self, tp: Any, hole: Hole) -> bool:
        """Apply the records of a hole in the input, read from the broker; False if the
        partition was revoked meanwhile (its new owner starts from the committed offset,
        which is never past the hole)."""
        frontier, reader, metrics = self.frontier, self._reader, self._metrics
        if hole.start is None:
            # No committed offset known, yet the first message is not the partition's
            # first: ask the broker before reading the partition from its start
            committed = await reader.committed(tp.topic, tp.partition)
            log.info(
                "input %s[%d]: first message at offset %d, no committed offset known; the "
                "broker's is %s",
                tp.topic,
                tp.partition,
                hole.end,
                committed,
                extra={"event": "input_committed_unknown"},
            )
            if committed is not None:
                hole = Hole(min(committed, hole.end), hole.end)
        if hole.start == hole.end:
            frontier.skip_to(tp, hole.end)
            return True
        if reader.span.absent(tp, hole):  # a read for an earlier hole showed these empty
            frontier.skip_to(tp, hole.end)
            metrics.input_gaps.labels("absent").inc()
            return True
        generation = frontier.generation
        found = 0
        async for batch in reader.read(tp.topic, tp.partition, hole.start, hole.end):
            if frontier.generation != generation:
                return False
            for r in batch:
                seconds = r.timestamp / 1000.0  # as Faust converts it
                self._events.handle(
                    InputMessage(r.topic, r.partition, r.offset, r.key, r.value, seconds)
                )
                frontier.advance(tp, r.offset)
            found += len(batch)
        if frontier.generation != generation:
            return False
        frontier.skip_to(tp, hole.end)
        kind = "dropped" if found else "absent"
        metrics.input_gaps.labels(kind).inc()
        metrics.input_refetched.inc(found)
        log.log(
            logging.WARNING if found else logging.INFO,
            "input %s[%d]: offsets %s..%d had not reached the agent; read them from the "
            "broker: %d record(s) applied before offset %d",
            tp.topic,
            tp.partition,
            "start" if hole.start is None else hole.start,
            hole.end - 1,
            found,
            hole.end,
            extra={"event": "input_gap", "kind": kind, "records": found},
        )
        return True
