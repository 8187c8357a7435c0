"""Where each partition's event time stands, and where the population's first day is.

A partition's watermark is the latest event time of the slowest of its input topics that
still has unread messages (a caught-up topic does not hold the others back), less the
allowed lateness; an idle partition follows the most advanced one (the pack), so quiet
partitions do not hold the population's closes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.engine.book import Book
from agents.engine.ports import InputPositions
from streams.ledger import PartitionLedger, StartReport, first_day_to_close
from streams.units import MICROS_PER_SECOND

if TYPE_CHECKING:
    from agents.engine.summaries import SummaryBus


class Watermarks:
    def __init__(
        self,
        book: Book,
        bus: SummaryBus,
        positions: Callable[[], InputPositions],
        clock: Callable[[], float],
    ) -> None:
        self._book = book
        self._bus = bus
        self._positions = positions
        self._clock = clock
        self._wall_clock = book.settings.ingest.watermark_mode == "wall_clock"

    def watermark(self, ledger: PartitionLedger) -> tuple[int | None, bool]:
        """(the partition's watermark, whether every input topic is caught up)."""
        progress = ledger.progress
        lagging: list[int | None] = []
        known = []
        positions = self._positions()
        for topic in self._book.topics:
            latest = progress.latest.get(topic)
            if latest is not None:
                known.append(latest)
            if not self._caught_up(positions, topic, ledger.partition):
                lagging.append(latest)
        lateness = self._book.lateness
        if lagging:
            if any(x is None for x in lagging):
                return None, False  # a topic not read yet could still bring older days
            watermark: int | None = min(x for x in lagging if x is not None) - lateness
        else:
            # Idle (nothing unread): follow the pack, so a partition whose customers went
            # quiet, or that has none, does not hold every other partition's close back.
            own = max(known) - lateness if known else None
            pack = self.pack()
            marks = [m for m in (own, pack) if m is not None]
            watermark = max(marks) if marks else None
        if watermark is None:
            return None, not lagging
        if self._wall_clock:
            watermark = max(watermark, int(self._clock() * MICROS_PER_SECOND) - lateness)
        return watermark, not lagging

    def caught_up(self, topic: str, partition: int) -> bool:
        return self._caught_up(self._positions(), topic, partition)

    def _caught_up(self, positions: InputPositions, topic: str, partition: int) -> bool:
        highwater = positions.highwater(topic, partition)
        if highwater is None:
            return False
        position = self._book.processed_next.get((topic, partition))
        if position is None:
            position = positions.committed(topic, partition) or 0
        return position >= highwater

    def bus_messages(self) -> dict[int, dict[str, Any]]:
        """Every partition's latest message (agents/engine/summaries.py)."""
        return self._bus.latest

    def pack(self) -> int | None:
        """For a partition with no events at all: follow the other partitions."""
        marks = [m.get("watermark") for m in self._bus.latest.values()]
        known = [w for w in marks if w is not None]
        return max(known) if known else None

    def topics_with_data(self, ledger: PartitionLedger) -> list[str]:
        """Input topics of the partition that are not caught up (their first event may
        still be unread) or have had events."""
        positions = self._positions()
        return [
            t
            for t in self._book.topics
            if t in ledger.progress.first or not self._caught_up(positions, t, ledger.partition)
        ]

    def start_day(self) -> int | None:
        """The first day to close (streams.ledger.first_day_to_close), from every
        partition's latest message; this worker's own are published first in each step,
        so they are never older than its ledgers."""
        reports = [
            StartReport(m.get("started_day"), bool(m.get("start_ready")), m.get("first_day"))
            for m in self._bus.latest.values()
        ]
        return first_day_to_close(reports, self._book.partitions)
