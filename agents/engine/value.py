"""The daily close of the value book, coordinated across partitions and workers.

Each partition *closes* UTC day E once its watermark has passed the end of E: the
customers touched since the last close, or due (a bucket leaves the window, the end of
being `new`, a downgrade's dwell time), get their value as of E, and the partition
publishes its score summary for E on the `<app_id>-value-summaries` topic, which every
worker reads. When every partition has published E, every worker merges the same
summaries into the same cut points and re-tiers its own customers as of E: those
re-valued at E and those whose score lies between the cuts of E-1 and E. A partition
closes E+1 only after it has tiered E, so no partition is ever more than one day ahead
of the slowest; the summaries of the last two closed days travel in each message.

Tiers are therefore a function of event time and history alone: one worker or several,
a replay or live traffic, give the same tier changes (same ids). The partition watermark
is the latest event time of the slowest of its input topics that still has unread
messages (a caught-up topic does not hold the others back), less the allowed lateness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from agents.engine.store import CustomerStore
from agents.logs import Throttle
from agents.metrics import Metrics
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES, summaries_topic
from schemas.outputs import BasicQuestionSpike, CareTask, CategoryCount, TicketPriority, TierChange
from streams import care
from streams.care import CareRules, DayCare, TicketDecision
from streams.customer import CustomerState
from streams.ids import deterministic_id
from streams.ledger import (
    SPIKE,
    TIER_CHANGE,
    PartitionLedger,
    Progress,
    StartReport,
    care_task_key,
    first_day_to_close,
    next_merge_day,
    sum_counts,
)
from streams.sketch import ScoreSummary
from streams.tiers import Cuts, make_cuts, recheck_keys
from streams.units import MICROS_PER_DAY, MICROS_PER_SECOND, amount, day_of, from_micros
from streams.valuation import ValueRules, buyer_flags, care_of_day, due_day, evaluate, retier
from streams.value import benefit_cost_ratio, expected_lifetime_years

log = logging.getLogger(__name__)

_CHUNK = 2000  # customers handled between two yields to the event loop
_KEPT_CUTS = 4  # days of cut points kept in memory


def progress_key(partition: int) -> bytes:
    """The reserved table key of a partition's progress (customer ids cannot hold NUL)."""
    return b"\x00progress\x00" + str(partition).encode()


def is_reserved(key: bytes) -> bool:
    return key.startswith(b"\x00")


@dataclass
class GlobalDay:
    """The merged population of one closed day."""

    cuts: Cuts
    churned_share: float | None
    lifetime_years: float


class SummaryBus:
    """Every partition's latest published message, read by every worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.topic = summaries_topic(settings)
        self.latest: dict[int, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.connected = False

    def receive(self, value: bytes | None) -> None:
        if not value:
            return
        message = orjson.loads(value)
        self.latest[int(message["partition"])] = message
        self.changed.set()

    async def follow_forever(self) -> None:
        """Read the summaries topic from the start, then follow it."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
                tp = TopicPartition(self.topic, 0)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                self.connected = True
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                    for records in batch.values():
                        for record in records:
                            self.receive(record.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect: the bus must outlive broker outages
                log.warning(
                    "value summaries: reading %s failed (%r); retrying",
                    self.topic,
                    exc,
                    extra={"event": "summaries_read_failed"},
                )
                self.connected = False
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


class ValueEngine:
    """Ledgers of the partitions this worker owns; closes, publishes, merges, re-tiers."""

    def __init__(
        self,
        settings: Settings,
        store: CustomerStore,
        metrics: Metrics,
        *,
        emit: Callable[[str, int, bytes | None, Any], None],
        publish: Callable[[bytes, bytes], Any],
        consumer: Callable[[], Any],
        assignment: Callable[[], set[int] | None],
        clock: Callable[[], float] = time.time,
        day_done: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = ValueRules(
            settings.value,
            settings.clv,
            settings.tiering,
            CareRules(settings.spikes, settings.care, settings.tickets),
        )
        self._ticket_lag = care.tier_lag_days(settings.ingest.allowed_lateness_seconds)
        self._retention_days = self.rules.retention_days  # a property chain, read per event
        self._progress_records: dict[int, tuple[PartitionLedger, bytes, Callable[[], bytes]]] = {}
        self.store = store
        self.metrics = metrics
        self.bus = SummaryBus(settings)
        self._emit = emit
        self._publish = publish
        self._consumer = consumer
        self._assignment = assignment
        self._clock = clock
        self._partitions = settings.kafka.partitions
        self._alpha = settings.tiering.sketch_relative_accuracy
        self._lateness = settings.ingest.allowed_lateness_seconds * MICROS_PER_SECOND
        self._topics = {settings.topics.name(k): t for k, t in INPUT_EVENT_TYPES.items()}
        self.ledgers: dict[int, PartitionLedger] = {}
        self.days: dict[int, GlobalDay] = {}
        self._processed_next: dict[tuple[str, int], int] = {}
        self._last_published: dict[int, tuple[Any, ...]] = {}
        self._log_throttle = Throttle(10.0)
        self.generation = 0  # bumped whenever partitions are revoked
        #: partition -> (the next day to close, when its watermark was first seen past it)
        self._closable_since: dict[int, tuple[int, float]] = {}
        #: called with that moment once the day is tiered and its outputs are queued
        self._day_done = day_done

    @property
    def processed_next(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset after the last message this worker applied
        since it was last given the partition (read-only: for the consumer-lag metric)."""
        return self._processed_next

    # -- called by the runtime for every message -----------------------------------------
    def note_offset(self, topic: str, partition: int, offset: int) -> None:
        self._processed_next[(topic, partition)] = offset + 1

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
        ledger = self.ledger(partition)
        if created:
            ledger.count_tier(None, state.tier)
        progress = ledger.progress
        if occurred_at > progress.latest.get(topic, -(2**62)):
            progress.latest[topic] = occurred_at
        day = day_of(occurred_at)
        first = progress.first.get(topic)
        if first is None or day < first:
            progress.first[topic] = day
        if state.stale:
            closed = progress.closed_day
            ledger.mark_stale(key, day if closed is None else max(day, closed + 1))
        self._touch_progress(ledger)

    def bucket_floor_day(self, partition: int) -> int | None:
        """Events dated before this day are too old for any window still to be closed."""
        ledger = self.ledgers.get(partition)
        closed = None if ledger is None else ledger.progress.closed_day
        return None if closed is None else closed - self._retention_days + 2

    # -- ledgers ---------------------------------------------------------------------------
    def ledger(self, partition: int) -> PartitionLedger:
        ledger = self.ledgers.get(partition)
        if ledger is None:
            ledger = self.ledgers[partition] = self._build(partition)
        return ledger

    def forget(self) -> None:
        """Partitions moved: ledgers are rebuilt from the store for the new assignment.

        A close or a tiering in progress (they yield between chunks) notices the new
        generation at its next step and stops without writing anything more: the
        partition may already belong to another worker.
        """
        self.generation += 1
        self.ledgers.clear()
        self._last_published.clear()
        self._closable_since.clear()
        # Positions read here before the partitions moved are stale once another worker
        # has read on: until this worker reads again, the committed offset says where
        # the group is.
        self._processed_next.clear()

    def _build(self, partition: int) -> PartitionLedger:
        started = time.perf_counter()
        ledger = PartitionLedger(partition, self._alpha)
        raw = self.store.get_record(progress_key(partition))
        if raw is not None:
            ledger.progress = Progress.from_json(orjson.loads(raw))
        closed = ledger.progress.closed_day
        count = 0
        for key in self.store.keys_of(partition):
            if is_reserved(key):
                continue
            state = self.store.get(key, partition)
            if state is None:
                continue
            count += 1
            ledger.count_tier(None, state.tier)
            if state.judged and state.score is not None:
                ledger.index(key, state.score)
            self._restore_stale(ledger, key, state, closed)
            if state.closed_day is not None and (
                state.tiered_day is None or state.tiered_day < state.closed_day
            ):
                ledger.to_tier.add(key)  # valued since its tier was last decided
            if closed is not None and state.closed_day is not None:
                ledger.set_due(key, due_day(state, closed, self.rules))
                ledger.set_buyer(key, *buyer_flags(state, closed, self.rules))
            waiting = care.first_ticket_day(state.care, self._ticket_lag)
            if waiting is not None:
                ledger.tickets_waiting[key] = waiting
        log.info(
            "value ledger of partition %d built: %d customers, closed through %s, in %.2fs",
            partition,
            count,
            _day_text(closed),
            time.perf_counter() - started,
            extra={
                "event": "ledger_built",
                "partition": partition,
                "customers": count,
                "closed_through": _day_text(closed),
            },
        )
        return ledger

    @staticmethod
    def _restore_stale(
        ledger: PartitionLedger, key: bytes, state: CustomerState, closed: int | None
    ) -> None:
        """After a rebuild: every open day with figures needs its close, and a customer
        with changes no close has seen needs the next one (its events' days are not
        known any more; re-valuing a customer whose closed days did not change is
        harmless: the value as of a day is a function of its buckets)."""
        opened = closed if closed is not None else -(2**31)
        for day in state.days:
            if day > opened:
                ledger.mark_stale(key, day)
        # A quiet customer valued before the latest close is up to date: its states are
        # written before the partition's progress, on the same changelog partition.
        if state.stale:
            if closed is not None:
                ledger.mark_stale(key, closed + 1)
            elif state.closed_day is None:
                # never closed, and its events may have left no bucket (a contact
                # preference): the live ledger closes it on its first event's day
                ledger.mark_stale(key, day_of(state.first_seen_at))

    def _touch_progress(self, ledger: PartitionLedger) -> None:
        # called for every applied event: the key and the encoder are made once per ledger
        record = self._progress_records.get(ledger.partition)
        if record is None or record[0] is not ledger:
            record = (
                ledger,
                progress_key(ledger.partition),
                lambda: orjson.dumps(ledger.progress.to_json()),
            )
            self._progress_records[ledger.partition] = record
        self.store.put_record(record[1], ledger.partition, record[2])

    # -- the periodic work -----------------------------------------------------------------
    async def run_forever(self) -> None:
        follower = asyncio.create_task(self.bus.follow_forever())
        try:
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
        finally:
            follower.cancel()

    async def step(self) -> None:
        """Close what can be closed, publish, merge what is complete, re-tier."""
        for own in list(self.ledgers.values()):
            self._maybe_publish(own)  # the start day is decided from fresh own news
        for partition in list(self.ledgers):
            ledger = self.ledgers.get(partition)
            if ledger is None:
                continue
            await self._maybe_close(ledger)
            self._maybe_publish(ledger)
        self._maybe_merge()
        for partition in list(self.ledgers):
            ledger = self.ledgers.get(partition)
            if ledger is not None:
                await self._maybe_tier(ledger)
        self._update_gauges()

    def owned(self, partitions: set[int]) -> None:
        """Keep a ledger for exactly the partitions this worker owns."""
        for partition in [p for p in self.ledgers if p not in partitions]:
            del self.ledgers[partition]
            self._last_published.pop(partition, None)
        for partition in sorted(partitions):
            self.ledger(partition)

    # -- watermarks ------------------------------------------------------------------------
    def watermark(self, ledger: PartitionLedger) -> tuple[int | None, bool]:
        """(the partition's watermark, whether every input topic is caught up)."""
        progress = ledger.progress
        lagging: list[int | None] = []
        known = []
        consumer = self._consumer()
        for topic in self._topics:
            latest = progress.latest.get(topic)
            if latest is not None:
                known.append(latest)
            if not self._caught_up(consumer, topic, ledger.partition):
                lagging.append(latest)
        if lagging:
            if any(x is None for x in lagging):
                return None, False  # a topic not read yet could still bring older days
            watermark: int | None = min(x for x in lagging if x is not None) - self._lateness
        else:
            # Idle (nothing unread): follow the pack, so a partition whose customers went
            # quiet, or that has none, does not hold every other partition's close back.
            own = max(known) - self._lateness if known else None
            pack = self._pack_watermark()
            marks = [m for m in (own, pack) if m is not None]
            watermark = max(marks) if marks else None
        if watermark is None:
            return None, not lagging
        if self.settings.ingest.watermark_mode == "wall_clock":
            watermark = max(watermark, int(self._clock() * MICROS_PER_SECOND) - self._lateness)
        return watermark, not lagging

    def _caught_up(self, consumer: Any, topic: str, partition: int) -> bool:
        tp = TP(topic, partition)
        try:
            highwater = consumer.highwater(tp)
        except (AssertionError, KeyError, AttributeError, TypeError):
            return False
        if highwater is None:
            return False
        position = self._processed_next.get((topic, partition))
        if position is None:
            position = consumer._committed_offset.get(tp) or 0
        return bool(position >= highwater)

    def _pack_watermark(self) -> int | None:
        """For a partition with no events at all: follow the other partitions."""
        marks = [m.get("watermark") for m in self.bus.latest.values()]
        known = [w for w in marks if w is not None]
        return max(known) if known else None

    def start_day(self) -> int | None:
        """The first day to close (streams.ledger.first_day_to_close), from every
        partition's latest message; this worker's own are published first in each step,
        so they are never older than its ledgers."""
        reports = [
            StartReport(m.get("started_day"), bool(m.get("start_ready")), m.get("first_day"))
            for m in self.bus.latest.values()
        ]
        return first_day_to_close(reports, self._partitions)

    # -- closing ---------------------------------------------------------------------------
    async def _maybe_close(self, ledger: PartitionLedger) -> None:
        progress = ledger.progress
        if progress.closed_day is not None and progress.tiered_day != progress.closed_day:
            return  # lock-step: tier the last closed day first
        day = self.start_day() if progress.closed_day is None else progress.closed_day + 1
        if day is None:
            return
        watermark, _ = self.watermark(ledger)
        if watermark is None or watermark < (day + 1) * MICROS_PER_DAY:
            return
        noted = self._closable_since.get(ledger.partition)
        if noted is None or noted[0] != day:
            self._closable_since[ledger.partition] = (day, self._clock())
        previous = self.days.get(day - 1)
        lifetime = (
            previous.lifetime_years
            if previous is not None
            else expected_lifetime_years(self.settings.clv, None)
        )
        candidates = ledger.pop_stale(day) | ledger.pop_due(day)
        generation = self.generation
        for chunk in _chunks(sorted(candidates)):
            for key in chunk:
                self._close_customer(ledger, key, day, lifetime)
            await asyncio.sleep(0)
            if self.generation != generation:
                return  # revoked meanwhile: the new owner closes the day again
        progress.closed_day = day
        if progress.started_day is None:
            progress.started_day = day
        buyers, silent = ledger.churn_counts()
        progress.published = {d: s for d, s in progress.published.items() if d >= day - 1}
        progress.published[day] = {
            "summary": ledger.summary.to_json(),
            "buyers": buyers,
            "silent": silent,
        }
        self._touch_progress(ledger)
        self.metrics.closed_day.set((day + 1) * MICROS_PER_DAY / MICROS_PER_SECOND)
        self._maybe_publish(ledger, force=True)
        allowed, held = self._log_throttle.allow(f"closed-{ledger.partition}")
        if allowed:  # a backfill closes thousands of days: one line per 10 s per partition
            log.info(
                "partition %d closed %s and published its population summary%s",
                ledger.partition,
                _day_text(day),
                f" ({held} more days since the last line)" if held else "",
                extra={
                    "event": "summary_published",
                    "partition": ledger.partition,
                    "day": _day_text(day),
                    "judged": ledger.summary.count,
                    "held_back": held,
                },
            )

    def _close_customer(
        self, ledger: PartitionLedger, key: bytes, day: int, lifetime: float
    ) -> None:
        state = self.store.get(key, ledger.partition)
        if state is None:
            return
        result = evaluate(state, day, lifetime_years=lifetime, rules=self.rules)
        ledger.index(key, result.score if result.judged else None)
        ledger.set_buyer(key, result.buyer, result.silent)
        ledger.set_due(key, result.due_day)
        if result.exists:
            ledger.to_tier.add(key)
        self.store.put(key, ledger.partition, state)

    # -- publishing ------------------------------------------------------------------------
    def _maybe_publish(self, ledger: PartitionLedger, *, force: bool = False) -> None:
        progress = ledger.progress
        watermark, idle = self.watermark(ledger)
        start_ready = idle or all(t in progress.first for t in self._topics_with_data(ledger))
        first_day = min(progress.first.values()) if progress.first else None
        shape = (
            progress.closed_day,
            first_day,
            start_ready,
            idle,
            None if watermark is None else day_of(watermark),
        )
        if not force and self._last_published.get(ledger.partition) == shape:
            return
        self._last_published[ledger.partition] = shape
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
        }
        value = orjson.dumps(message)
        self._publish(str(ledger.partition).encode(), value)
        self.bus.receive(value)  # this worker need not wait for its own message

    def _topics_with_data(self, ledger: PartitionLedger) -> list[str]:
        """Input topics of the partition that are not caught up (their first event may
        still be unread) or have had events."""
        consumer = self._consumer()
        return [
            t
            for t in self._topics
            if t in ledger.progress.first or not self._caught_up(consumer, t, ledger.partition)
        ]

    # -- merging ---------------------------------------------------------------------------
    def _maybe_merge(self) -> None:
        messages = self.bus.latest
        if len(messages) < self._partitions:
            return
        order = range(self._partitions)
        offered = [[int(d) for d in messages[p].get("days", {})] for p in order]
        started = [messages[p].get("started_day") for p in order]
        empty = {"summary": ScoreSummary(self._alpha).to_json(), "buyers": 0, "silent": 0}
        while True:
            day = next_merge_day(max(self.days) if self.days else None, offered, started)
            if day is None:
                return
            # a partition that started after `day` has nobody in it that day
            self._merge(day, [messages[p]["days"].get(str(day), empty) for p in order])

    def _merge(self, day: int, parts: list[dict[str, Any]]) -> None:
        summary = ScoreSummary.merged(
            self._alpha, (ScoreSummary.from_json(p["summary"]) for p in parts)
        )
        buyers = sum(p["buyers"] for p in parts)
        silent = sum(p["silent"] for p in parts)
        share = silent / buyers if buyers else None
        cuts = make_cuts(summary, self.settings.tiering, day)
        self.days[day] = GlobalDay(cuts, share, expected_lifetime_years(self.settings.clv, share))
        for old in sorted(self.days)[:-_KEPT_CUTS]:
            del self.days[old]
        self.metrics.distribution_day.set((day + 1) * MICROS_PER_DAY / MICROS_PER_SECOND)
        self.metrics.distribution_population.set(summary.count)
        self.metrics.distribution_merged_at.set(self._clock())
        allowed, held = self._log_throttle.allow("merged")
        if allowed:  # a backfill merges thousands of days: one line per 10 s is enough
            log.info(
                "population of %s merged: %d judged customers; cuts %s%s",
                _day_text(day),
                summary.count,
                _cuts_text(cuts),
                f" ({held} more days merged since the last line)" if held else "",
                extra={
                    "event": "population_merged",
                    "day": _day_text(day),
                    "judged": summary.count,
                    "held_back": held,
                },
            )

    # -- tiering ---------------------------------------------------------------------------
    async def _maybe_tier(self, ledger: PartitionLedger) -> None:
        progress = ledger.progress
        day = progress.closed_day
        if day is None or progress.tiered_day == day or day not in self.days:
            return
        cuts = self.days[day].cuts
        previous = self.days.get(day - 1)
        if previous is None and progress.tiered_day is not None:
            candidates = set(ledger.scores) | ledger.to_tier  # cuts of the day before unknown
        else:
            moved = recheck_keys(None if previous is None else previous.cuts, cuts, ledger.members)
            candidates = ledger.to_tier | ledger.members_of(moved)
        revalued, ledger.to_tier = ledger.to_tier, set()
        changes = 0
        generation = self.generation
        for chunk in _chunks(sorted(candidates)):
            for key in chunk:
                changes += self._tier_customer(ledger, key, day, cuts, key in revalued)
            await asyncio.sleep(0)
            if self.generation != generation:
                return  # revoked meanwhile: the new owner tiers the day again
        progress.tiered_day = day
        self._release_tickets(ledger, day)
        progress.tier_counts = dict(ledger.tier_counts)
        self._touch_progress(ledger)
        self._maybe_publish(ledger, force=True)  # the tier counts as of `day`
        since = self._closable_since.pop(ledger.partition, None)
        if since is not None and since[0] == day and self._day_done is not None:
            self._day_done(since[1])
        self.metrics.tiered_candidates.observe(len(candidates))
        allowed, _ = self._log_throttle.allow(f"tiered-{ledger.partition}")
        if changes and allowed:
            log.info(
                "partition %d tiered as of %s: %d of %d candidates changed tier",
                ledger.partition,
                _day_text(day),
                changes,
                len(candidates),
                extra={
                    "event": "partition_tiered",
                    "partition": ledger.partition,
                    "day": _day_text(day),
                    "changes": changes,
                    "candidates": len(candidates),
                },
            )

    def _tier_customer(
        self, ledger: PartitionLedger, key: bytes, day: int, cuts: Cuts, revalued: bool
    ) -> int:
        state = self.store.get(key, ledger.partition)
        if state is None or state.closed_day is None or state.closed_day > day:
            return 0
        _, facts = retier(state, day, cuts, rules=self.rules)
        found = care_of_day(
            state,
            day,
            tier_change=None if facts is None else (facts.previous, facts.tier),
            revalued=revalued,
            rules=self.rules,
        )
        ledger.set_due(key, due_day(state, day, self.rules))
        self.store.put(key, ledger.partition, state)
        self._emit_care(ledger, key, state.customer_id, day, found)
        if facts is None:
            return 0
        ledger.count_tier(facts.previous, facts.tier)
        self._count_emitted(ledger, TIER_CHANGE)
        totals = facts.totals
        as_of = from_micros((day + 1) * MICROS_PER_DAY)
        event = TierChange(
            event_id=deterministic_id("tier", state.customer_id, day, facts.previous, facts.tier),
            customer_id=state.customer_id,
            as_of=as_of,
            emitted_at=from_micros(int(self._clock() * MICROS_PER_SECOND)),
            previous_tier=facts.previous,  # type: ignore[arg-type]
            tier=facts.tier,  # type: ignore[arg-type]
            score=facts.score,
            percentile=max(0.0, min(100.0, facts.percentile)),
            revenue=amount(totals.revenue),
            service_cost=amount(totals.service_cost),
            ratio=benefit_cost_ratio(
                totals.revenue, totals.service_cost, self.settings.value.cost_floor
            ),
            window_days=self.settings.value.window_days,
            reason=facts.reason,
        )
        self._emit("tier_changes", ledger.partition, key, event)
        self.metrics.tier_changes.labels(from_tier=facts.previous, to_tier=facts.tier).inc()
        return 1

    # -- care and tickets ----------------------------------------------------------------------
    def _count_emitted(self, ledger: PartitionLedger, key: str) -> None:
        ledger.progress.count_emitted(key)
        # In the same snapshot as the customer states written so far, so a crash can
        # neither lose a count nor count an output twice when the day is tiered again.
        self._touch_progress(ledger)

    def _emit_care(
        self, ledger: PartitionLedger, key: bytes, customer_id: str, day: int, found: DayCare
    ) -> None:
        as_of = from_micros((day + 1) * MICROS_PER_DAY)
        now = from_micros(int(self._clock() * MICROS_PER_SECOND))
        spike = found.spike
        if spike is not None:
            test = spike.test
            self._emit(
                "basic_question_spikes",
                ledger.partition,
                key,
                BasicQuestionSpike(
                    event_id=spike.event_id,
                    customer_id=customer_id,
                    as_of=as_of,
                    emitted_at=now,
                    recent_count=test.recent_count,
                    recent_days=spike.recent_days,
                    baseline_per_day=test.baseline_per_day,
                    expected_count=test.expected_count,
                    p_value=test.p_value,
                    top_categories=[
                        CategoryCount(category=c, count=n) for c, n in spike.top_categories
                    ],
                    repeat_solved_share=spike.repeat_solved_share,
                    suggested_action=spike.suggested_action,
                ),
            )
            self.metrics.spikes.inc()
            self._count_emitted(ledger, SPIKE)
        for task in found.tasks:
            self._emit(
                "care_tasks",
                ledger.partition,
                key,
                CareTask(
                    event_id=task.task_id,
                    customer_id=customer_id,
                    as_of=as_of,
                    emitted_at=now,
                    task_id=task.task_id,
                    kind=task.kind,  # type: ignore[arg-type]
                    priority=task.priority,
                    tier=task.tier,  # type: ignore[arg-type]
                    reason=task.reason,
                    due_at=from_micros(task.due_at),
                    expires_at=from_micros(task.expires_at),
                    context=task.context,
                ),
            )
            self.metrics.care_tasks.labels(kind=task.kind).inc()
            self._count_emitted(ledger, care_task_key(task.kind))
        for kind, reason in found.suppressed:
            self.metrics.care_suppressed.labels(kind=kind, reason=reason).inc()

    def ticket_arrived(
        self, partition: int, key: bytes, state: CustomerState, occurred_at: int
    ) -> None:
        """An opened or reopened ticket was applied: prioritise it now if the tier it
        needs is decided, else when its partition tiers that day.

        Tickets already waiting wait for later days than the partition has tiered (those
        are released as each day is tiered), so a ticket whose day is not decided yet
        only moves the customer's wake-up day: no scan of the waiting tickets, which a
        ticket-heavy customer catching up a backlog would pay for every new one."""
        ledger = self.ledger(partition)
        needs = day_of(occurred_at) - self._ticket_lag
        tiered = ledger.progress.tiered_day
        if tiered is None or needs > tiered:
            current = ledger.tickets_waiting.get(key)
            ledger.tickets_waiting[key] = needs if current is None else min(current, needs)
            return
        self._emit_tickets(partition, key, state, tiered)
        self.store.put(key, partition, state)
        waiting = care.first_ticket_day(state.care, self._ticket_lag)
        if waiting is None:
            ledger.tickets_waiting.pop(key, None)
        else:
            ledger.tickets_waiting[key] = waiting

    def _release_tickets(self, ledger: PartitionLedger, day: int) -> None:
        for key in sorted(k for k, d in ledger.tickets_waiting.items() if d <= day):
            del ledger.tickets_waiting[key]
            state = self.store.get(key, ledger.partition)
            if state is None:
                continue
            self._emit_tickets(ledger.partition, key, state, day)
            self.store.put(key, ledger.partition, state)
            waiting = care.first_ticket_day(state.care, self._ticket_lag)
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
            rules=self.rules.care,
            lag=self._ticket_lag,
        )
        now = from_micros(int(self._clock() * MICROS_PER_SECOND))
        for decision in decisions:
            event = _ticket_event(state.customer_id, decision, now)
            self._emit("ticket_priorities", partition, key, event)
            self.metrics.ticket_priorities.labels(tier=decision.tier).inc()

    # -- reading -----------------------------------------------------------------------------
    def latest_day(self) -> GlobalDay | None:
        return self.days[max(self.days)] if self.days else None

    def tier_counts(self) -> tuple[int | None, dict[str, int]]:
        """(the day every partition's tiers are decided for, customers per tier then).

        Partitions tier in lock-step, so at any moment they are at most one day apart;
        while they differ, the counts mix the two days and the earlier day is reported.
        """
        messages = list(self.bus.latest.values())
        days = [m.get("tiered_day") for m in messages]
        counts: dict[str, int] = {}
        for message in messages:
            for tier, n in (message.get("tier_counts") or {}).items():
                counts[tier] = counts.get(tier, 0) + n
        known = [d for d in days if d is not None]
        complete = len(messages) == self._partitions and len(known) == len(days)
        return (min(known) if complete and known else None), counts

    def emitted_counts(self) -> dict[str, int]:
        """Outputs emitted by the tiering of every partition, whole-system (as of each
        partition's last published tiered day; keys as in `Progress.emitted`)."""
        return sum_counts(m.get("emitted") for m in self.bus.latest.values())

    def tiered_day(self, key: bytes) -> int | None:
        """The last day the tiers of this customer's partition were decided for."""
        partition = self.store.partition_of(key)
        ledger = None if partition is None else self.ledgers.get(partition)
        return None if ledger is None else ledger.progress.tiered_day

    def current_day(self, state: CustomerState) -> int:
        """The day windows end on for live figures: the latest event day of the customer's
        partition (its own latest, if the partition is not known here)."""
        latest = [
            max(ledger.progress.latest.values())
            for ledger in self.ledgers.values()
            if ledger.progress.latest
        ]
        return day_of(max([state.last_event_at, *latest]))

    def _update_gauges(self) -> None:
        totals: dict[str, int] = {}
        for ledger in self.ledgers.values():
            for tier, n in ledger.tier_counts.items():
                totals[tier] = totals.get(tier, 0) + n
        for tier in ("vip", "gold", "silver", "bronze", "new"):
            self.metrics.customers.labels(tier=tier).set(totals.get(tier, 0))


def _chunks(keys: list[bytes]) -> Iterable[list[bytes]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def _day_text(day: int | None) -> str:
    return "nothing" if day is None else from_micros(day * MICROS_PER_DAY).strftime("%Y-%m-%d")


def _cuts_text(cuts: Cuts) -> str:
    parts = []
    for tier in ("vip", "gold", "silver"):
        score = cuts.entry_score[tier]
        parts.append(f"{tier} {'-' if score is None else f'{score:.3g}'}")
    return ", ".join(parts)


def _ticket_event(customer_id: str, decision: TicketDecision, now: Any) -> TicketPriority:
    return TicketPriority(
        event_id=decision.event_id,
        customer_id=customer_id,
        as_of=from_micros(decision.occurred_at),
        emitted_at=now,
        ticket_id=decision.ticket_id,
        tier=decision.tier,  # type: ignore[arg-type]
        priority=decision.priority,
        sla_minutes=decision.sla_minutes,
        reason=decision.reason,
    )
