"""Deciding what closes: a partition closes day E once its watermark has passed the end
of E and it has tiered E - 1 (lock-step). The customers with new figures up to E, or due
that day (a bucket leaves the window, the end of being `new`, a downgrade's dwell time, a
care timer), are valued as of E (streams.valuation.evaluate), and the partition publishes
its population summary for E."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from agents.engine.book import Book, day_text
from agents.engine.population import GlobalDay, Population, is_fit_day
from agents.engine.summaries import SummaryPublisher
from agents.engine.watermarks import Watermarks
from agents.logs import Throttle
from agents.metrics import Metrics
from streams.ledger import PartitionLedger
from streams.predictive import PopulationModel, model_to_json
from streams.units import MICROS_PER_DAY, MICROS_PER_SECOND
from streams.valuation import evaluate, repeat_as_of
from streams.value import expected_lifetime_years

log = logging.getLogger(__name__)

#: the longest a close or tiering works before it lets the event loop run other work
#: (events, commits, the web): the loop's stalls stay about this short
SLICE_SECONDS = 0.01
#: at most this many days of summaries are kept for partitions that fall behind
_KEPT_DAYS = 64
_T = TypeVar("_T")


async def paced(
    items: Iterable[_T],
    slice_seconds: float = SLICE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncIterator[_T]:
    """The items, with a turn of the event loop whenever `slice_seconds` of work on them
    have passed (customers differ too much in cost for a fixed count per turn). The
    caller checks after each item whether it may go on (a rebalance meanwhile)."""
    deadline = clock() + slice_seconds
    for item in items:
        yield item
        if clock() >= deadline:
            await asyncio.sleep(0)
            deadline = clock() + slice_seconds


class DayCloser:
    def __init__(
        self,
        book: Book,
        *,
        marks: Watermarks,
        publisher: SummaryPublisher,
        population: Population,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._book = book
        self._marks = marks
        self._publisher = publisher
        self._population = population
        self._metrics = metrics
        self._clock = clock
        self._throttle = Throttle(10.0)
        #: partition -> (the next day to close, when its watermark was first seen past it)
        self._closable_since: dict[int, tuple[int, float]] = {}

    def forget(self) -> None:
        self._closable_since.clear()

    def closable_since(self, partition: int, day: int) -> float | None:
        """When the partition's watermark was first seen past the end of `day` (once: it
        is forgotten), if `day` is the one it noted."""
        since = self._closable_since.pop(partition, None)
        return since[1] if since is not None and since[0] == day else None

    async def maybe_close(self, ledger: PartitionLedger) -> None:
        progress = ledger.progress
        if progress.closed_day is not None and progress.tiered_day != progress.closed_day:
            return  # lock-step: tier the last closed day first
        day = self._marks.start_day() if progress.closed_day is None else progress.closed_day + 1
        if day is None:
            return
        watermark, _ = self._marks.watermark(ledger)
        if watermark is None or watermark < (day + 1) * MICROS_PER_DAY:
            return
        noted = self._closable_since.get(ledger.partition)
        if noted is None or noted[0] != day:
            self._closable_since[ledger.partition] = (day, self._clock())
        previous = self._population.days.get(day - 1)
        lifetime = (
            previous.lifetime_years
            if previous is not None
            else expected_lifetime_years(self._book.settings.clv, None)
        )
        model = None if previous is None else previous.model
        book = self._book
        generation = book.generation
        ledger.busy = True  # its candidates are out of the ledger until the day is closed
        try:
            candidates = ledger.pop_stale(day) | ledger.pop_due(day)
            async for key in paced(sorted(candidates)):
                if book.generation != generation:
                    return  # revoked meanwhile: the new owner closes the day again
                self._close_customer(ledger, key, day, lifetime, model)
            await asyncio.sleep(0)
            if book.generation != generation:
                return
            progress.closed_day = day
        finally:
            ledger.busy = False
        progress.model = _model_record(previous)
        if progress.started_day is None:
            progress.started_day = day
        buyers, silent = ledger.churn_counts()
        keep = min(day - 1, max(day - _KEPT_DAYS, self._slowest_durable_day(ledger)))
        progress.published = {d: s for d, s in progress.published.items() if d >= keep}
        progress.published[day] = {
            "summary": ledger.summary.to_json(),
            "buyers": buyers,
            "silent": silent,
        }
        if is_fit_day(day, book.settings.prediction):
            progress.published[day]["sample"] = ledger.sample.to_json()
        book.touch_progress(ledger)
        self._metrics.closed_day.set((day + 1) * MICROS_PER_DAY / MICROS_PER_SECOND)
        self._publisher.maybe_publish(ledger, force=True)
        allowed, held = self._throttle.allow(f"closed-{ledger.partition}")
        if allowed:  # a backfill closes thousands of days: one line per 10 s per partition
            log.info(
                "partition %d closed %s and published its population summary%s",
                ledger.partition,
                day_text(day),
                f" ({held} more days since the last line)" if held else "",
                extra={
                    "event": "summary_published",
                    "partition": ledger.partition,
                    "day": day_text(day),
                    "judged": ledger.summary.count,
                    "held_back": held,
                },
            )

    def _slowest_durable_day(self, ledger: PartitionLedger) -> int:
        """The earliest day another partition may have to merge again after a crash:
        the slowest partition as of its last durable snapshot (this worker's own, and
        the others' as their messages say). Partitions close in lock-step, but a crash
        can leave one partition's snapshot durable and another's not: the one that got
        ahead keeps the summaries of the days the others must close again, else they
        would wait for its summaries forever."""
        book = self._book
        days = [d for d in book.durable_closed.values() if d is not None]
        for partition, message in self._marks.bus_messages().items():
            if partition in book.ledgers:
                continue
            durable = message.get("durable_closed", message.get("closed_day"))
            if durable is not None:
                days.append(int(durable))
        closed = ledger.progress.closed_day
        floor = min(days) if days else closed
        return (floor if floor is not None else 0) - 1

    def _close_customer(
        self,
        ledger: PartitionLedger,
        key: bytes,
        day: int,
        lifetime: float,
        model: PopulationModel | None,
    ) -> None:
        store = self._book.store
        state = store.get(key, ledger.partition)
        if state is None:
            return
        result = evaluate(state, day, lifetime_years=lifetime, rules=self._book.rules, model=model)
        ledger.index(key, result.score if result.judged else None)
        ledger.set_buyer(key, result.buyer, result.silent)
        ledger.set_due(key, result.due_day)
        ledger.sample.note(key, repeat_as_of(state, day), day)
        if result.exists:
            ledger.to_tier.add(key)
        # the close derives figures and decides nothing: the state is not rewritten
        store.patch(key, ledger.partition, state)


def _model_record(previous: GlobalDay | None) -> dict[str, Any] | None:
    """The model a partition closed its day with, for its progress and summary message
    (a worker that starts again takes it): the model, why there is none yet, or None."""
    if previous is None:
        return None
    if previous.model is not None:
        return model_to_json(previous.model)
    return None if previous.model_pending is None else {"pending": previous.model_pending}
