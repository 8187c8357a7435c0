"""Tiering a partition for a merged day: the customers re-valued at its close and those
whose score lies between the cuts of the day before and the day's (streams.tiers
.recheck_keys) get their tier for the day (streams.valuation.retier), then the care rules
(streams.care via valuation.care_of_day); what they decide is emitted as built by
streams/outputs.py. Tickets wait for the tier of the day they need, and are prioritised
as soon as it is decided."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agents.engine.book import Book, day_text
from agents.engine.closing import DayCloser, paced
from agents.engine.outputs import Outputs
from agents.engine.population import GlobalDay, Population
from agents.engine.summaries import SummaryPublisher
from agents.logs import Throttle
from agents.metrics import Metrics
from schemas.outputs import CareTask
from streams import care, outputs
from streams.care import DayCare
from streams.codec import care_fingerprint
from streams.customer import CustomerState
from streams.ledger import CUSTOMER_TIER, SPIKE, TIER_CHANGE, PartitionLedger, care_task_key
from streams.tiers import recheck_keys
from streams.units import MICROS_PER_SECOND, day_of
from streams.valuation import care_of_day, due_day, retier, task_value, totals_as_of

log = logging.getLogger(__name__)


class Tiering:
    def __init__(
        self,
        book: Book,
        *,
        population: Population,
        closer: DayCloser,
        publisher: SummaryPublisher,
        outputs: Outputs,
        metrics: Metrics,
        clock: Callable[[], float],
        day_done: Callable[[float], None] | None = None,
    ) -> None:
        self._book = book
        self._population = population
        self._closer = closer
        self._publisher = publisher
        self._outputs = outputs
        self._metrics = metrics
        self._clock = clock
        #: called with the moment a day became closable, once it is tiered and its
        #: outputs are queued (the worker times their delivery)
        self._day_done = day_done
        self._throttle = Throttle(10.0)

    def _now(self) -> int:
        return int(self._clock() * MICROS_PER_SECOND)

    async def maybe_tier(self, ledger: PartitionLedger) -> None:
        progress = ledger.progress
        day = progress.closed_day
        days = self._population.days
        if day is None or progress.tiered_day == day or day not in days:
            return
        merged = days[day]
        cuts = merged.cuts
        previous = days.get(day - 1)
        if previous is None and progress.tiered_day is not None:
            candidates = set(ledger.scores) | ledger.to_tier  # cuts of the day before unknown
        else:
            moved = recheck_keys(None if previous is None else previous.cuts, cuts, ledger.members)
            candidates = ledger.to_tier | ledger.members_of(moved)
        changes = 0
        book = self._book
        generation = book.generation
        ledger.busy = True  # its candidates are out of the ledger until the day is tiered
        try:
            revalued, ledger.to_tier = ledger.to_tier, set()
            async for key in paced(sorted(candidates)):
                if book.generation != generation:
                    return  # revoked meanwhile: the new owner tiers the day again
                changes += self._tier_customer(ledger, key, day, merged, key in revalued)
            await asyncio.sleep(0)
            if book.generation != generation:
                return
            self._release_outbox(ledger, day)
            progress.tiered_day = day
        finally:
            ledger.busy = False
        if not progress.snapshot_complete and not await self._publish_snapshot(ledger, merged):
            return
        self._release_tickets(ledger, day)
        progress.tier_counts = dict(ledger.tier_counts)
        book.touch_progress(ledger)
        self._publisher.maybe_publish(ledger, force=True)  # the tier counts as of `day`
        since = self._closer.closable_since(ledger.partition, day)
        if since is not None and self._day_done is not None:
            self._day_done(since)
        self._metrics.tiered_candidates.observe(len(candidates))
        allowed, _ = self._throttle.allow(f"tiered-{ledger.partition}")
        if changes and allowed:
            log.info(
                "partition %d tiered as of %s: %d of %d candidates changed tier",
                ledger.partition,
                day_text(day),
                changes,
                len(candidates),
                extra={
                    "event": "partition_tiered",
                    "partition": ledger.partition,
                    "day": day_text(day),
                    "changes": changes,
                    "candidates": len(candidates),
                },
            )

    def _tier_customer(
        self, ledger: PartitionLedger, key: bytes, day: int, merged: GlobalDay, revalued: bool
    ) -> int:
        cuts, model = merged.cuts, merged.model
        book = self._book
        state = book.store.get(key, ledger.partition)
        if state is None or state.closed_day is None or state.closed_day > day:
            return 0
        care.settle_day(state.care, day, book.rules.care)  # a function of the day alone
        remembered = care_fingerprint(state.care)
        _, facts = retier(state, day, cuts, rules=book.rules)
        found = care_of_day(
            state,
            day,
            tier_change=None if facts is None else (facts.previous, facts.tier),
            revalued=revalued,
            rules=book.rules,
            model=model,
        )
        ledger.set_due(key, due_day(state, day, book.rules, model))
        if facts is not None:
            text = f"{facts.previous} -> {facts.tier}: {facts.reason}"
            care.note_timeline(state.care, day, "tier", text)
        if found.spike is not None:
            spike = found.spike
            care.note_timeline(
                state.care,
                day,
                "spike",
                f"{spike.test.recent_count} basic questions in {spike.recent_days} days "
                f"(expected {spike.test.expected_count:.1f}, p = {spike.test.p_value:.2g}): "
                f"{spike.suggested_action}",
            )
        self._maybe_publish(ledger, key, state, day, merged)
        if facts is None and care_fingerprint(state.care) == remembered:
            book.store.patch(key, ledger.partition, state)  # nothing decided (tier kept)
        else:
            book.store.put(key, ledger.partition, state)
        value = (
            task_value(state, day, model, book.rules, merged.lifetime_years) if found.tasks else 0.0
        )
        self._emit_care(ledger, key, state.customer_id, day, found, value)
        if facts is None:
            return 0
        ledger.count_tier(key, facts.tier)
        self._count_emitted(ledger, TIER_CHANGE)
        event = outputs.tier_change(
            state.customer_id, day, facts, rules=book.rules, emitted_at=self._now()
        )
        self._outputs.emit("tier_changes", ledger.partition, key, event)
        self._metrics.tier_changes.labels(from_tier=facts.previous, to_tier=facts.tier).inc()
        return 1

    def _maybe_publish(
        self, ledger: PartitionLedger, key: bytes, state: CustomerState, day: int, merged: GlobalDay
    ) -> None:
        """The customer's record on the compacted `customer-tiers`, if what it says
        changed since the last one (streams/outputs.py tier_fingerprint). The caller
        writes or patches the state, which remembers the fingerprint."""
        if not state.judged:
            return
        rules = self._book.rules
        totals = totals_as_of(state, day, rules)
        fingerprint = outputs.tier_fingerprint(state, day, totals)
        if fingerprint == state.published:
            return
        state.published = fingerprint
        event = outputs.customer_tier(
            state,
            day,
            totals=totals,
            rules=rules,
            lifetime_years=merged.lifetime_years,
            model=merged.model,
            emitted_at=self._now(),
        )
        self._outputs.emit("customer_tiers", ledger.partition, key, event)
        self._count_emitted(ledger, CUSTOMER_TIER)

    async def _publish_snapshot(self, ledger: PartitionLedger, merged: GlobalDay) -> bool:
        """Every judged customer's record, once, for a partition whose customers were
        tiered before `customer-tiers` existed (False: revoked part-way, the new owner
        starts again)."""
        book = self._book
        generation = book.generation
        judged = sorted(key for key, tier in ledger.tiers.items() if tier != "new")
        async for key in paced(judged):
            if book.generation != generation:
                return False
            state = book.store.get(key, ledger.partition)
            if state is None or state.tiered_day is None:
                continue
            published = state.published
            self._maybe_publish(ledger, key, state, state.tiered_day, merged)
            if state.published != published:
                book.store.patch(key, ledger.partition, state)
        await asyncio.sleep(0)
        if book.generation != generation:
            return False
        ledger.progress.snapshot_complete = True
        book.touch_progress(ledger)
        log.info(
            "partition %d published all %d judged customers to customer-tiers",
            ledger.partition,
            len(judged),
            extra={"event": "snapshot_published", "partition": ledger.partition},
        )
        return True

    def _count_emitted(self, ledger: PartitionLedger, key: str) -> None:
        ledger.progress.count_emitted(key)
        # In the same snapshot as the customer states written so far, so a crash can
        # neither lose a count nor count an output twice when the day is tiered again.
        self._book.touch_progress(ledger)

    def _emit_care(  # noqa: PLR0917 - one customer's day
        self,
        ledger: PartitionLedger,
        key: bytes,
        customer_id: str,
        day: int,
        found: DayCare,
        value: float,
    ) -> None:
        """The spike now; the care tasks into the partition's outbox, where the day's
        tasks wait for the dialer budget (`_release_outbox`, when the day is tiered). The
        outbox is part of the partition's progress, written with the customer states, so
        a crash mid-day loses no task and a re-tiering repeats none."""
        queued = ledger.queued_task_ids()
        for event in outputs.care_outputs(customer_id, day, found, emitted_at=self._now()):
            if not isinstance(event, CareTask):
                self._outputs.emit("basic_question_spikes", ledger.partition, key, event)
                self._metrics.spikes.inc()
                self._count_emitted(ledger, SPIKE)
                continue
            if event.task_id in queued:
                continue
            at_risk = event.context.get("value_at_risk")
            worth = float(at_risk) if isinstance(at_risk, int | float) else value
            ledger.progress.outbox.append(
                [worth, event.task_id, event.kind, customer_id, event.model_dump_json()]
            )
        if found.tasks:
            self._book.touch_progress(ledger)
        for kind, reason in found.suppressed:
            self._metrics.care_suppressed.labels(kind=kind, reason=reason).inc()

    def _release_outbox(self, ledger: PartitionLedger, day: int) -> None:
        """The day's care tasks within the dialer budget: per kind, the partition's share
        of `care.max_tasks_per_day`, the most valuable first; the rest are counted as
        suppressed `capacity`."""
        progress = ledger.progress
        if not progress.outbox:
            return
        settings = self._book.settings
        budgets = {
            kind: care.partition_budget(total, settings.kafka.partitions, ledger.partition)
            for kind, total in settings.care.max_tasks_per_day.items()
        }
        kept, dropped = care.within_budget(progress.outbox, budgets)
        store = self._book.store
        for _, _, kind, customer_id, body in kept:
            event = CareTask.model_validate_json(body)
            key = customer_id.encode()
            state = store.get(key, ledger.partition)
            if state is not None:
                text = f"{kind} (priority {event.priority}): {event.reason}"
                care.note_timeline(state.care, day, "task", text)
                store.put(key, ledger.partition, state)
            self._outputs.emit("care_tasks", ledger.partition, key, event)
            self._metrics.care_tasks.labels(kind=kind).inc()
            progress.count_emitted(care_task_key(kind))
        for _, _, kind, _, _ in dropped:
            self._metrics.care_suppressed.labels(kind=kind, reason="capacity").inc()
        progress.outbox = []
        self._book.touch_progress(ledger)

    # -- tickets -----------------------------------------------------------------------------
    def ticket_arrived(
        self, partition: int, key: bytes, state: CustomerState, occurred_at: int
    ) -> None:
        """An opened or reopened ticket was applied: prioritise it now if the tier it
        needs is decided, else when its partition tiers that day.

        Tickets already waiting wait for later days than the partition has tiered (those
        are released as each day is tiered), so a ticket whose day is not decided yet
        only moves the customer's wake-up day: no scan of the waiting tickets, which a
        ticket-heavy customer catching up a backlog would pay for every new one."""
        book = self._book
        ledger = book.ledger(partition)
        needs = day_of(occurred_at) - book.ticket_lag
        tiered = ledger.progress.tiered_day
        if tiered is None or needs > tiered:
            current = ledger.tickets_waiting.get(key)
            ledger.tickets_waiting[key] = needs if current is None else min(current, needs)
            return
        self._emit_tickets(partition, key, state, tiered)
        book.store.put(key, partition, state)
        waiting = care.first_ticket_day(state.care, book.ticket_lag)
        if waiting is None:
            ledger.tickets_waiting.pop(key, None)
        else:
            ledger.tickets_waiting[key] = waiting

    def _release_tickets(self, ledger: PartitionLedger, day: int) -> None:
        book = self._book
        for key in sorted(k for k, d in ledger.tickets_waiting.items() if d <= day):
            del ledger.tickets_waiting[key]
            state = book.store.get(key, ledger.partition)
            if state is None:
                continue
            self._emit_tickets(ledger.partition, key, state, day)
            book.store.put(key, ledger.partition, state)
            waiting = care.first_ticket_day(state.care, book.ticket_lag)
            if waiting is not None:
                ledger.tickets_waiting[key] = waiting

    def _emit_tickets(
        self, partition: int, key: bytes, state: CustomerState, tiered_day: int
    ) -> None:
        decisions = care.ready_tickets(
            state.customer_id,
            state.care,
            current_tier=state.tier,
            tiered_day=tiered_day,
            rules=self._book.rules.care,
            lag=self._book.ticket_lag,
        )
        now = self._now()
        for decision in decisions:
            event = outputs.ticket_priority(state.customer_id, decision, emitted_at=now)
            self._outputs.emit("ticket_priorities", partition, key, event)
            self._metrics.ticket_priorities.labels(tier=decision.tier).inc()
