"""The value book: one ledger per partition this worker owns (streams.ledger), built from
the customer states in the store, kept current by every applied event, and persisted as
each partition's progress record beside its customers' states.

What the per-event path tells the day close goes through here (`note_offset`,
`note_applied`, `bucket_floor_day`): the event path never calls the day close, and the
day close never calls the event path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import orjson

from agents.engine.checkpoint import (
    CheckpointError,
    CheckpointPolicy,
    Journal,
    PendingCheckpoint,
    Reference,
    decode_checkpoint,
    encode_checkpoint,
    patches_json,
    patches_of_json,
    read_journal,
    run_now,
)
from agents.engine.store import Change, CustomerStore
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES
from streams import care
from streams.care import CareRules
from streams.customer import CustomerState
from streams.ids import erasure_hash
from streams.ledger import PartitionLedger, Progress
from streams.units import MICROS_PER_DAY, MICROS_PER_SECOND, day_of, from_micros
from streams.valuation import (
    Derived,
    ValueRules,
    apply_derived,
    buyer_flags,
    due_day,
    repeat_as_of,
)

log = logging.getLogger(__name__)


def progress_key(partition: int) -> bytes:
    """The reserved table key of a partition's progress (customer ids cannot hold NUL)."""
    return b"\x00progress\x00" + str(partition).encode()


def is_reserved(key: bytes) -> bool:
    return key.startswith(b"\x00")


def rules_of(settings: Settings) -> ValueRules:
    return ValueRules(
        settings.value,
        settings.clv,
        settings.tiering,
        CareRules(settings.spikes, settings.care, settings.tickets),
        settings.prediction,
    )


def day_text(day: int | None) -> str:
    return "nothing" if day is None else from_micros(day * MICROS_PER_DAY).strftime("%Y-%m-%d")


class Book:
    """Ledgers of the partitions this worker owns, and what the event path tells them."""

    def __init__(
        self,
        settings: Settings,
        store: CustomerStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        #: partition -> its journal and checkpoint bookkeeping (agents/engine/checkpoint.py)
        self.journals: dict[int, Journal] = {}
        self.policy = CheckpointPolicy(interval_seconds=settings.checkpoint_interval_seconds)
        self._monotonic = monotonic
        #: whether the worker is stopping or rebalancing (the commit then checkpoints
        #: every partition with changes: agents/worker/app.py sets it)
        self.urgent: Callable[[], bool] = lambda: False
        #: called after a ledger is built (the worker freezes what the build decoded out of
        #: the garbage collector's sight: agents/worker/loop_watch.py)
        self.ledger_built: Callable[[], None] = lambda: None
        #: runs a checkpoint's encoding (a thread in the worker: agents/worker/app.py);
        #: by default at once, here
        self.offload: Callable[[Callable[[], list[tuple[bytes, bytes]]]], Future[Any]] = run_now
        #: partition -> its closed day as of the previous snapshot, and as of the one
        #: before (durable: a snapshot is taken only once the previous one is)
        self._snapshotted: dict[int, int | None] = {}
        self.durable_closed: dict[int, int | None] = {}
        self.rules = rules_of(settings)
        self.ticket_lag = care.tier_lag_days(settings.ingest.allowed_lateness_seconds)
        self.partitions = settings.kafka.partitions
        self.alpha = settings.tiering.sketch_relative_accuracy
        self.lateness = settings.ingest.allowed_lateness_seconds * MICROS_PER_SECOND
        #: full input topic name -> the event type it carries
        self.topics = {settings.topics.name(k): t for k, t in INPUT_EVENT_TYPES.items()}
        self.ledgers: dict[int, PartitionLedger] = {}
        self.generation = 0  # bumped whenever partitions are revoked
        self._retention_days = self.rules.retention_days  # a property chain, read per event
        self._processed_next: dict[tuple[str, int], int] = {}
        self._progress_records: dict[int, tuple[PartitionLedger, bytes, Callable[[], bytes]]] = {}
        rules = self.rules
        self._building: set[int] = set()
        store.hook = self.snapshot_records
        store.ensure_patches = self._ensure_patches
        store.apply_patch = lambda state, derived: apply_derived(state, derived, rules)

    @property
    def processed_next(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset after the last message this worker applied
        since it was last given the partition (read-only: caught-up tests, consumer lag)."""
        return self._processed_next

    # -- what the event path tells ---------------------------------------------------------
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
            ledger.count_tier(key, state.tier)
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
        self.touch_progress(ledger)

    def erase(self, partition: int, key: bytes, requested_at: int) -> None:
        """Forget a customer (an erasure request): its state gets a tombstone at the next
        commit, the ledger forgets it, and the partition's progress remembers a hash of
        its id with the time, so its older input is dropped (`erased_at`)."""
        ledger = self.ledger(partition)
        ledger.erase_customer(key, erasure_hash(key.decode()), requested_at)
        self.store.delete(key, partition)
        self.touch_progress(ledger)

    def erased_at(self, partition: int, customer_id: str) -> int | None:
        """When the customer was erased (epoch µs), if it was; its input dated at or
        before that is not applied. A hash per event only where someone was erased."""
        erased = self.ledger(partition).progress.erased
        return erased.get(erasure_hash(customer_id)) if erased else None

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

    def owned(self, partitions: set[int]) -> list[int]:
        """Keep a ledger for exactly the partitions this worker owns; the ones dropped."""
        dropped = [p for p in self.ledgers if p not in partitions]
        for partition in dropped:
            del self.ledgers[partition]
            self.journals.pop(partition, None)
            self._snapshotted.pop(partition, None)
            self.durable_closed.pop(partition, None)
        self.store.forget_patches(dropped)
        for partition in sorted(partitions):
            self.ledger(partition)
        return dropped

    def forget(self) -> None:
        """Partitions moved: ledgers are rebuilt from the store for the new assignment.

        A close or a tiering in progress (they yield between chunks) notices the new
        generation at its next step and stops without writing anything more: the
        partition may already belong to another worker.
        """
        self.generation += 1
        self.ledgers.clear()
        self.journals.clear()
        self._snapshotted.clear()
        self.durable_closed.clear()
        # Positions read here before the partitions moved are stale once another worker
        # has read on: until this worker reads again, the committed offset says where
        # the group is.
        self._processed_next.clear()

    def touch_progress(self, ledger: PartitionLedger) -> None:
        """The partition's progress changed: it goes with the next snapshot."""
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

    # -- checkpoints (agents/engine/checkpoint.py) ------------------------------------------
    def snapshot_records(
        self, written: dict[int, list[bytes]], patched: dict[int, list[tuple[bytes, Derived]]]
    ) -> tuple[list[Change], list[Change]]:
        """The store's snapshot hook: journal records of the customers it writes and the
        derived figures it patches (before the states), and the checkpoints that are due
        (after them)."""
        before: list[Change] = []
        for partition in sorted(written.keys() | patched.keys()):
            self.ledger(partition)  # its journal is known once its ledger is
            journal = self.journals[partition]
            had = journal.reference
            before.extend(
                journal.records(partition, written.get(partition, []), patched.get(partition))
            )
            if had is not None and journal.reference is None:
                self._journal_wrapped(partition)
        for partition, ledger in self.ledgers.items():
            self.durable_closed[partition] = self._snapshotted.get(partition)
            self._snapshotted[partition] = ledger.progress.closed_day
        after: list[Change] = []
        now = self._monotonic()
        urgent = self.urgent()
        for partition, journal in self.journals.items():
            pending = journal.pending
            if pending is not None and (urgent or pending.records.done()):
                after.extend(self._take_checkpoint(partition, journal, pending))
        for partition in self._checkpoints_due(now, urgent):
            ledger, journal = self.ledgers[partition], self.journals[partition]
            pending = self._start_checkpoint(partition, ledger, journal, now)
            if urgent:  # the worker stops or its partitions move: no next snapshot
                after.extend(self._take_checkpoint(partition, journal, pending))
        return before, after

    def _start_checkpoint(
        self, partition: int, ledger: PartitionLedger, journal: Journal, now: float
    ) -> PendingCheckpoint:
        """Copy the ledger as of this snapshot (quick) and encode the copy off the event
        loop (`offload`); the records go out with the next snapshot (`_take_checkpoint`),
        naming the journal from the one after this snapshot's: a start reads the
        checkpoint, then the customers journaled since this snapshot."""
        number = journal.last_number + 1
        build = ledger.checkpoint_copy()
        patches = list(self.store.patches_of(partition).items())
        max_bytes = self.settings.kafka.max_message_bytes

        def encode() -> list[tuple[bytes, bytes]]:
            saved = build()
            saved["patches"] = patches_json(patches)
            return encode_checkpoint(partition, number, saved, max_bytes)

        journal.pending = PendingCheckpoint(number, journal.next_number, self.offload(encode))
        journal.last_number = number
        journal.journaled = set()
        journal.last_checkpoint = now
        return journal.pending

    def _take_checkpoint(
        self, partition: int, journal: Journal, pending: PendingCheckpoint
    ) -> list[Change]:
        """The records of an encoded checkpoint, and the partition's progress naming it
        (written after them in the same snapshot)."""
        journal.pending = None
        if not journal.keeps(pending.journal_from):
            return []  # the journal it needs is overwritten already: the next one is due
        records = pending.records.result()
        journal.reference = Reference(pending.number, len(records), pending.journal_from)
        ledger = self.ledgers[partition]
        ledger.progress.checkpoint = journal.reference.to_json()
        self.touch_progress(ledger)
        return [(key, partition, value) for key, value in records]

    def _checkpoints_due(self, now: float, urgent: bool) -> list[int]:
        """The partitions to checkpoint in this snapshot: every one that has none yet,
        all that are due when the worker stops or its partitions move, else the due one
        checkpointed longest ago (each gets its turn). Encoding a ledger holds the event
        loop (~0.1 s at 12k customers); spread over commits, the stalls stay one
        partition's."""
        due = []
        for partition, ledger in self.ledgers.items():
            journal = self.journals.get(partition)
            if journal is None or ledger.busy or journal.pending is not None:
                continue
            if self.policy.due(journal, ledger.customers, now, urgent=urgent):
                due.append((journal.reference is not None, journal.last_checkpoint, partition))
        if urgent or not due:
            return [partition for _, _, partition in due]
        due.sort()
        return [partition for has, _, partition in due if not has] or [due[0][2]]

    def _journal_wrapped(self, partition: int) -> None:
        """The journal outran its ring before a checkpoint could be taken (a close that
        kept the partition busy for thousands of commits): a start must build the ledger
        from the states, so every patched customer is written whole in this snapshot."""
        ledger = self.ledgers[partition]
        ledger.progress.checkpoint = None
        self.touch_progress(ledger)
        patched = list(self.store.patches_of(partition))
        for key in patched:
            state = self.store.get(key, partition)
            if state is not None:
                self.store.put(key, partition, state)
        self.store.load_patches(partition, {})  # the whole states carry them now
        log.warning(
            "the ledger journal of partition %d wrapped before a checkpoint: %d patched "
            "customers written whole; the next start builds the ledger from every state",
            partition,
            len(patched),
            extra={"event": "journal_wrapped", "partition": partition},
        )

    def _ensure_patches(self, partition: int) -> None:
        if partition not in self.ledgers and partition not in self._building:
            self.ledger(partition)

    def _build(self, partition: int) -> PartitionLedger:
        self._building.add(partition)
        try:
            return self._build_now(partition)
        finally:
            self._building.discard(partition)

    def _build_now(self, partition: int) -> PartitionLedger:
        started = time.perf_counter()
        progress = Progress()
        raw = self.store.get_record(progress_key(partition))
        if raw is not None:
            progress = Progress.from_json(orjson.loads(raw))
        journal = self.journals[partition] = Journal(last_checkpoint=self._monotonic())
        reference = Reference.from_json(progress.checkpoint)
        ledger = None
        if reference is not None:
            journal.last_number = reference.number
            journal.next_number = reference.journal_from
            ledger = self._from_checkpoint(partition, progress, reference, journal)
        how = "its checkpoint and the customers changed since"
        if ledger is None:
            self.store.load_patches(partition, {})
            ledger = self._scan(partition, progress)
            how = "every customer's state"
        self._snapshotted[partition] = self.durable_closed[partition] = progress.closed_day
        count = len(journal.journaled) if journal.reference is not None else ledger.customers
        log.info(
            "value ledger of partition %d built from %s: %d customers, %d states read, "
            "closed through %s, in %.2fs",
            partition,
            how,
            ledger.customers,
            count,
            day_text(ledger.progress.closed_day),
            time.perf_counter() - started,
            extra={
                "event": "ledger_built",
                "partition": partition,
                "customers": ledger.customers,
                "states_read": count,
                "from_checkpoint": journal.reference is not None,
                "closed_through": day_text(ledger.progress.closed_day),
            },
        )
        self.ledger_built()
        return ledger

    def _new_ledger(self, partition: int, progress: Progress) -> PartitionLedger:
        ledger = PartitionLedger(partition, self.alpha, self.settings.prediction.sample_customers)
        ledger.progress = progress
        return ledger

    def _from_checkpoint(
        self, partition: int, progress: Progress, reference: Reference, journal: Journal
    ) -> PartitionLedger | None:
        """The ledger from its checkpoint and the customers journaled since (None: the
        checkpoint cannot be used, logged)."""
        read = self.store.get_record
        ledger = self._new_ledger(partition, progress)
        try:
            saved = decode_checkpoint(partition, reference, read)
            ledger.load_checkpoint(saved)
            found = read_journal(
                partition, reference.journal_from, read, patches_of_json(saved["patches"])
            )
        except (CheckpointError, KeyError, TypeError, ValueError) as exc:
            log.warning(
                "the ledger checkpoint of partition %d cannot be used (%s): building the "
                "ledger from every customer's state",
                partition,
                exc,
                extra={"event": "checkpoint_unusable", "partition": partition},
            )
            return None
        self.store.load_patches(partition, found.patches)
        journal.next_number = found.next_number
        journal.reference = reference
        journal.journaled = found.keys
        closed = progress.closed_day
        for key in sorted(found.keys):
            ledger.forget_customer(key)
            state = self.store.get(key, partition)
            if state is not None:
                self._derive(ledger, key, state, closed)
        return ledger

    def _scan(self, partition: int, progress: Progress) -> PartitionLedger:
        """The ledger from every customer state of the partition."""
        ledger = self._new_ledger(partition, progress)
        closed = progress.closed_day
        for key in self.store.keys_of(partition):
            if is_reserved(key):
                continue
            state = self.store.get(key, partition)
            if state is not None:
                self._derive(ledger, key, state, closed)
        return ledger

    def _derive(
        self, ledger: PartitionLedger, key: bytes, state: CustomerState, closed: int | None
    ) -> None:
        """What the ledger holds about one customer, from its state."""
        ledger.count_tier(key, state.tier)
        if state.judged and state.score is not None:
            ledger.index(key, state.score)
        _restore_stale(ledger, key, state, closed)
        if state.closed_day is not None and (
            state.tiered_day is None or state.tiered_day < state.closed_day
        ):
            ledger.to_tier.add(key)  # valued since its tier was last decided
        if closed is not None and state.closed_day is not None:
            ledger.set_due(key, due_day(state, closed, self.rules))
            ledger.set_buyer(key, *buyer_flags(state, closed, self.rules))
        if state.closed_day is not None:
            ledger.sample.note(key, repeat_as_of(state, state.closed_day), state.closed_day)
        waiting = care.first_ticket_day(state.care, self.ticket_lag)
        if waiting is not None:
            ledger.tickets_waiting[key] = waiting


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
