"""The daily close of the value book, coordinated across partitions and workers.

Each partition *closes* UTC day E once its watermark has passed the end of E
(agents/engine/closing.py): the customers touched since the last close, or due, get
their value as of E, and the partition publishes its score summary for E on the
value-summary bus (agents/engine/summaries.py), which every worker reads. When every
partition has published E, every worker merges the same summaries into the same cut
points (agents/engine/population.py) and re-tiers its own customers as of E
(agents/engine/tiering.py): those re-valued at E and those whose score lies between the
cuts of E-1 and E. A partition closes E+1 only after it has tiered E, so no partition is
ever more than one day ahead of the slowest; the summaries of the last two closed days
travel in each message.

Tiers are therefore a function of event time and history alone: one worker or several,
a replay or live traffic, give the same tier changes (same ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from agents.engine.book import Book
from agents.engine.closing import DayCloser
from agents.engine.outputs import Outputs
from agents.engine.population import GlobalDay, Population
from agents.engine.ports import InputPositions, Publish
from agents.engine.store import CustomerStore
from agents.engine.summaries import SummaryBus, SummaryPublisher
from agents.engine.tiering import Tiering
from agents.engine.watermarks import Watermarks
from agents.metrics import Metrics
from agents.settings import Settings
from streams.customer import CustomerState
from streams.ledger import PartitionLedger
from streams.predictive import PopulationModel
from streams.units import day_of
from streams.valuation import ValueRules


class ValueEngine:
    """Ledgers of the partitions this worker owns; closes, publishes, merges, re-tiers.

    The event path reaches it only through `DayBook` (note_offset, note_applied,
    bucket_floor_day, ticket_arrived); the web views through the reading methods.
    """

    def __init__(
        self,
        settings: Settings,
        store: CustomerStore,
        metrics: Metrics,
        *,
        outputs: Outputs,
        publish: Publish,
        positions: Callable[[], InputPositions],
        assignment: Callable[[], set[int] | None],
        clock: Callable[[], float] = time.time,
        day_done: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.book = Book(settings, store, monotonic=monotonic)
        self.bus = SummaryBus()
        self.marks = Watermarks(self.book, self.bus, positions, clock)
        self.publisher = SummaryPublisher(self.book, self.bus, self.marks, publish)
        self.population = Population(settings, self.bus, metrics, clock)
        self.closer = DayCloser(
            self.book,
            marks=self.marks,
            publisher=self.publisher,
            population=self.population,
            metrics=metrics,
            clock=clock,
        )
        self.tiering = Tiering(
            self.book,
            population=self.population,
            closer=self.closer,
            publisher=self.publisher,
            outputs=outputs,
            metrics=metrics,
            clock=clock,
            day_done=day_done,
        )
        self._assignment = assignment

    # -- the day book, as the event path sees it ----------------------------------------
    @property
    def rules(self) -> ValueRules:
        return self.book.rules

    @property
    def ledgers(self) -> dict[int, PartitionLedger]:
        return self.book.ledgers

    @property
    def days(self) -> dict[int, GlobalDay]:
        return self.population.days

    @property
    def processed_next(self) -> dict[tuple[str, int], int]:
        return self.book.processed_next

    @property
    def generation(self) -> int:
        return self.book.generation

    def note_offset(self, topic: str, partition: int, offset: int) -> None:
        self.book.note_offset(topic, partition, offset)

    def note_applied(
        self,
        topic: str,
        partition: int,
        key: bytes,
        occurred_at: int,
        state: CustomerState,
        *,
        created: bool = False,
    ) -> None:
        self.book.note_applied(topic, partition, key, occurred_at, state, created=created)

    def bucket_floor_day(self, partition: int) -> int | None:
        return self.book.bucket_floor_day(partition)

    def erase(self, partition: int, key: bytes, requested_at: int) -> None:
        self.book.erase(partition, key, requested_at)

    def erased_at(self, partition: int, customer_id: str) -> int | None:
        return self.book.erased_at(partition, customer_id)

    def ticket_arrived(
        self, partition: int, key: bytes, state: CustomerState, occurred_at: int
    ) -> None:
        self.tiering.ticket_arrived(partition, key, state, occurred_at)

    # -- ledgers -----------------------------------------------------------------------------
    def ledger(self, partition: int) -> PartitionLedger:
        return self.book.ledger(partition)

    def owned(self, partitions: set[int]) -> None:
        """Keep a ledger for exactly the partitions this worker owns."""
        self.publisher.forget(self.book.owned(partitions))

    def forget(self) -> None:
        """Partitions moved: ledgers are rebuilt from the store for the new assignment."""
        self.book.forget()
        self.publisher.forget()
        self.closer.forget()

    # -- the periodic work -------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Step whenever a summary arrives, and every `check_interval_seconds`."""
        interval = self.settings.tiering.check_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.bus.changed.wait(), timeout=interval)
            self.bus.changed.clear()
            owned = self._assignment()
            if owned is None:  # rebalancing or recovering the tables
                continue
            self.owned(owned)
            await self.step()

    async def step(self) -> None:
        """Close what can be closed, publish, merge what is complete, re-tier."""
        ledgers = self.book.ledgers
        for own in list(ledgers.values()):
            self.publisher.maybe_publish(own)  # the start day is decided from fresh own news
        for partition in list(ledgers):
            ledger = ledgers.get(partition)
            if ledger is None:
                continue
            await self.closer.maybe_close(ledger)
            self.publisher.maybe_publish(ledger)
        self.population.maybe_merge()
        for partition in list(ledgers):
            ledger = ledgers.get(partition)
            if ledger is not None:
                await self.tiering.maybe_tier(ledger)
        self._update_gauges()

    # -- reading -----------------------------------------------------------------------------
    def latest_day(self) -> GlobalDay | None:
        return self.population.latest_day()

    def tier_counts(self) -> tuple[int | None, dict[str, int]]:
        return self.population.tier_counts()

    def population_model(self) -> PopulationModel | None:
        """The purchase and spend models fitted last (None: not yet)."""
        return self.population.model

    def emitted_counts(self) -> dict[str, int]:
        return self.population.emitted_counts()

    def tiered_day(self, key: bytes) -> int | None:
        """The last day the tiers of this customer's partition were decided for."""
        partition = self.store.partition_of(key)
        ledger = None if partition is None else self.book.ledgers.get(partition)
        return None if ledger is None else ledger.progress.tiered_day

    def current_day(self, state: CustomerState) -> int:
        """The day windows end on for live figures: the latest event day of the customer's
        partition (its own latest, if the partition is not known here)."""
        latest = [
            max(ledger.progress.latest.values())
            for ledger in self.book.ledgers.values()
            if ledger.progress.latest
        ]
        return day_of(max([state.last_event_at, *latest]))

    def watermark(self, ledger: PartitionLedger) -> tuple[int | None, bool]:
        return self.marks.watermark(ledger)

    def start_day(self) -> int | None:
        return self.marks.start_day()

    def _update_gauges(self) -> None:
        totals: dict[str, int] = {}
        for ledger in self.book.ledgers.values():
            for tier, n in ledger.tier_counts.items():
                totals[tier] = totals.get(tier, 0) + n
        for tier in ("vip", "gold", "silver", "bronze", "new"):
            self.metrics.customers.labels(tier=tier).set(totals.get(tier, 0))
