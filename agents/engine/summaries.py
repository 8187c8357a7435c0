"""The value-summary bus: every partition's latest published message, read by every
worker (the messages travel on the compacted `<app_id>-value-summaries` topic; reading
it is agents/kafka/summaries.py), and this worker's publishing of its own partitions'.

A partition's message says how far it has got (closed and tiered days, its first day,
its watermark, whether it is idle) and carries the population summaries of its last two
closed days, its tier counts and its emitted-output counts. Every worker merges the same
messages into the same population (agents/engine/population.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from agents.engine.book import Book
from agents.engine.ports import Publish
from agents.engine.watermarks import Watermarks
from streams.ledger import PartitionLedger
from streams.units import day_of


class SummaryBus:
    """Every partition's latest message (by partition number)."""

    def __init__(self) -> None:
        self.latest: dict[int, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.connected = False

    def receive(self, value: bytes | None) -> None:
        if not value:
            return
        message = orjson.loads(value)
        self.latest[int(message["partition"])] = message
        self.changed.set()


class SummaryPublisher:
    """Publishes this worker's partitions' messages when they change (or when asked)."""

    def __init__(self, book: Book, bus: SummaryBus, marks: Watermarks, publish: Publish) -> None:
        self._book = book
        self._bus = bus
        self._marks = marks
        self._publish = publish
        self._last: dict[int, tuple[Any, ...]] = {}

    def forget(self, partitions: list[int] | None = None) -> None:
        """Publish again from scratch (all partitions, or the ones given)."""
        if partitions is None:
            self._last.clear()
        for partition in partitions or ():
            self._last.pop(partition, None)

    def maybe_publish(self, ledger: PartitionLedger, *, force: bool = False) -> None:
        progress = ledger.progress
        watermark, idle = self._marks.watermark(ledger)
        start_ready = idle or all(t in progress.first for t in self._marks.topics_with_data(ledger))
        first_day = min(progress.first.values()) if progress.first else None
        shape = (
            progress.closed_day,
            first_day,
            start_ready,
            idle,
            None if watermark is None else day_of(watermark),
        )
        if not force and self._last.get(ledger.partition) == shape:
            return
        self._last[ledger.partition] = shape
        message = {
            "partition": ledger.partition,
            "closed_day": progress.closed_day,
            "first_day": first_day,
            "start_ready": start_ready,
            "idle": idle,
            "watermark": watermark,
            "days": {str(d): s for d, s in progress.published.items()},
            "tiered_day": progress.tiered_day,
            "tier_counts": progress.tier_counts,
            "emitted": progress.emitted,
            "started_day": progress.started_day,
            "model": progress.model,
            # the closed day of its last durable snapshot: how far back a crash can take
            # it, so the partitions ahead keep the summaries it would merge again
            "durable_closed": self._book.durable_closed.get(ledger.partition),
        }
        value = orjson.dumps(message)
        self._publish(str(ledger.partition).encode(), value)
        self._bus.receive(value)  # this worker need not wait for its own message
