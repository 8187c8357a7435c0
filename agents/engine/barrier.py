"""The commit barrier: what must be durable, in which order, before offsets are committed.

The framework that consumes (Faust) commits offsets on a timer, on rebalance and on
shutdown; the worker routes every such commit through `CommitBarrier.commit`
(agents/faust_port/consumer.py installs it). Applying an event is synchronous, so one
synchronous snapshot sees a consistent cut:

1. the offsets that may be committed now (every event before them has been applied): for
   input partitions vipstream's own frontier (agents/engine/frontier.py), never the
   framework's list of acknowledged offsets, which can commit past an event its stream
   dropped,
2. the outputs queued so far (those events' outputs, and possibly a few more),
3. every customer state changed since the last commit, as it is now (encoded in slices
   that let events flow meanwhile: agents/engine/store.py `cut`; a state an event is
   about to change is encoded first, so the snapshot holds it as of the cut).

Then, while events keep flowing:

4. the outputs are delivered (broker-acknowledged),
5. the state snapshot is written to the changelog and delivered,
6. the acknowledged snapshot is written to the local table store (agents/engine/store.py),
7. exactly the offsets of step 1 are committed.

Outputs before state: if the worker dies between the two, the events replay and, their
ids not yet in the durable state, produce their outputs again (same ids). State before
offsets: a committed offset never points past state that is not durable. Changelog before
the local store: a store that outlives the process (RocksDB) never holds a state the
changelog lacks. Events applied during steps 4-7 are in the next commit's snapshot. A
delivery failure crashes the worker before anything is committed, so the events are
replayed instead of lost.

A commit the broker refuses (faust-streaming #316: Faust records the offsets as
committed anyway, see agents/faust_port/consumer.py): the barrier puts the previous
committed offsets back and keeps the refused ones to send again with the next commit
(for input partitions the frontier covers them anyway; with the framework's
acknowledgement lists alone, putting them back would leave a gap that stops that
partition's commits for good). Retrying is always safe: everything before a refused
offset was made durable before it was first tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.engine.frontier import InputFrontier
from agents.engine.store import Snapshot

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """An output or a state write was not acknowledged by the broker."""


class Committer(Protocol):
    """The consuming framework's offset bookkeeping, as the barrier uses it. Partitions
    are the framework's own objects (with `topic` and `partition`)."""

    def pending(self, topics: Any) -> list[Any]:
        """Partitions with acknowledged offsets not committed yet (of `topics`, or all)."""

    def acknowledged(self, tps: list[Any]) -> dict[Any, int]:
        """The offsets the framework would commit for these partitions."""

    def forget_acknowledged(self, tp: Any) -> None:
        """Drop the partition's acknowledgements (the frontier stands for them)."""

    def committed(self) -> Mapping[Any, int]:
        """The committed offsets, as the framework records them (a live view)."""

    def assignment(self) -> set[Any]: ...

    async def drain(self) -> None:
        """Hand the framework producer's buffered messages over, and wait for them."""

    def note_committed(self, offsets: dict[Any, int]) -> None:
        """Record offsets committed elsewhere (in a transaction) as the framework's own."""

    async def commit(self, offsets: dict[Any, int], start_new_transaction: bool) -> bool:
        """Commit; False when the broker refused (a rebalance)."""

    def restore_committed(self, tp: Any, previous: int | None) -> None:
        """Undo the framework's record of a refused commit."""


async def await_delivery(futures: list[Any], what: str) -> list[Any]:
    """Wait for send futures; their results (record metadata). DeliveryError if any failed."""
    if not futures:
        return []
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise DeliveryError(
            f"{len(failures)} of {len(futures)} {what} not delivered: {failures[0]!r}"
        )
    return results


StateSnapshot = Any  # opaque to the barrier: from snapshot_state, to write_state and confirm_state


class CommitBarrier:
    """Orders what a commit makes durable; never pauses event processing."""

    def __init__(
        self,
        *,
        take_outputs: Callable[[], list[Any]],
        snapshot_state: Callable[[], StateSnapshot],
        write_state: Callable[[StateSnapshot], Awaitable[list[Any]]],
        confirm_state: Callable[[StateSnapshot, list[Any]], None],
        observe_seconds: Callable[[float], None],
        frontier: InputFrontier | None = None,
        encode_state: Callable[[StateSnapshot], Awaitable[None]] | None = None,
    ) -> None:
        self._frontier = frontier
        self._encode_state = encode_state
        self._take_outputs = take_outputs
        self._snapshot_state = snapshot_state
        self._write_state = write_state
        self._confirm_state = confirm_state
        self._observe = observe_seconds
        #: partition -> an offset whose commit the broker refused, to be committed again
        self._refused: dict[Any, int] = {}

    async def commit(
        self, committer: Committer, topics: Any = None, start_new_transaction: bool = True
    ) -> bool:
        """Make the snapshot durable, then commit its offsets; whether anything was."""
        started = time.perf_counter()
        # -- the synchronous snapshot: no await until all three are taken ---------------
        offsets = self._committable(committer, topics)
        outputs = self._take_outputs()
        state = self._snapshot_state()
        # -- durability, in order, while events keep flowing ----------------------------
        await self._encoded(state)
        await committer.drain()
        await await_delivery(outputs, "output events")
        changelog = await self._write_state(state)
        acks = await await_delivery(changelog, "customer state writes")
        self._confirm_state(state, acks)
        self._observe(time.perf_counter() - started)
        offsets = self._with_refused(committer, offsets)
        if not offsets:
            return False
        recorded = committer.committed()
        before = {tp: recorded.get(tp) for tp in offsets}
        committed = await committer.commit(offsets, start_new_transaction)
        if committed:
            for tp in offsets:
                self._refused.pop(tp, None)
        else:
            self._remember_refused(committer, offsets, before)
        return committed

    async def _encoded(self, state: StateSnapshot) -> None:
        """The snapshot's states encoded as of the cut, in slices (CustomerStore.encode)."""
        if self._encode_state is not None:
            await self._encode_state(state)

    def _committable(self, committer: Committer, topics: Any) -> dict[Any, int]:
        """Input partitions: the frontier where it is past the committed offset (the
        framework's acknowledgements of them are dropped, they only grow). Other topics:
        the framework's."""
        frontier = self._frontier
        tps = committer.pending(topics)
        if frontier is None:
            return committer.acknowledged(tps)
        offsets = committer.acknowledged([tp for tp in tps if not frontier.owns(tp)])
        committed = committer.committed()
        for tp, position in frontier.positions(topics).items():
            current = committed.get(tp)
            if current is None or position > current:
                offsets[tp] = position
        for tp in tps:
            if frontier.owns(tp):
                committer.forget_acknowledged(tp)
        return offsets

    def _with_refused(self, committer: Committer, offsets: dict[Any, int]) -> dict[Any, int]:
        """The offsets to commit now, with those refused before that still need it."""
        if not self._refused:
            return offsets
        assignment = committer.assignment()
        committed = committer.committed()
        merged = dict(offsets)
        for tp, refused in list(self._refused.items()):
            current = committed.get(tp)
            if tp not in assignment or (current is not None and current >= refused):
                # moved to another worker (it resumes from the broker's committed offset
                # and drops the replayed duplicates), or committed since
                del self._refused[tp]
                continue
            merged[tp] = max(refused, merged.get(tp, refused))
        return merged

    def _remember_refused(
        self, committer: Committer, offsets: dict[Any, int], before: dict[Any, int | None]
    ) -> None:
        """Undo the framework's bookkeeping of a refused commit; keep the offsets for a retry."""
        committed = committer.committed()
        restored = {}
        for tp, offset in offsets.items():
            if committed.get(tp) != offset:
                continue  # not recorded by this commit (revoked meanwhile): leave it alone
            committer.restore_committed(tp, before[tp])
            self._refused[tp] = max(offset, self._refused.get(tp, offset))
            restored[tp] = offset
        if restored:
            log.warning(
                "offset commit refused by the broker (a rebalance?); "
                "will commit again with the next commit: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in restored.items()),
            )


# -- exactly once -----------------------------------------------------------------------

#: topic, partition, key, value (None: a tombstone)
Record = tuple[str, int, bytes | None, bytes | None]


class Fenced(RuntimeError):
    """A newer owner of these input partitions fenced this worker's transactions: the
    worker's uncommitted work of them was aborted, and the worker must not go on as if
    it still owned them (it stops; restarted, it rejoins and recovers)."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(
            f"input partitions {sorted(partitions)} were taken over by another worker "
            "(this worker's producers were fenced)"
        )
        self.partitions = partitions


@dataclass
class PartitionCommit:
    """What one input partition's transaction holds: outputs and state records (in
    that order), and the input offsets to commit with them."""

    records: list[Record] = field(default_factory=list)
    #: (input topic, partition) -> the offset to commit (the next one to read)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.offsets)


class Transactions(Protocol):
    """One transaction per owned input partition (agents/kafka/transactions.py)."""

    @property
    def owned(self) -> set[int]:
        """Input partitions whose transactions this worker may commit."""

    async def commit(self, parts: Mapping[int, PartitionCommit]) -> list[Any]:
        """Commit each partition's transaction; the acknowledged batches (with `topic`,
        `partition` and `offset`). Fenced if a newer owner fenced one of them."""


class TransactionalBarrier(CommitBarrier):
    """`processing_guarantee = "exactly_once"`: what a commit makes durable — the
    outputs queued so far, the changed states, the input offsets of step 1 — is one
    transaction per input partition, all or nothing: a crash or a fence at any point
    leaves none of it visible to `read_committed` readers, and the input is replayed
    from the previous commit. Outputs are not sent between commits (consumers could not
    read them before the commit anyway), so they wait for the next commit: at most
    `kafka.commit_interval_seconds`.

    Records of a partition this worker no longer owns (revoked after the events were
    applied, before this commit) are dropped: their input offsets were not committed,
    so the new owner applies those events again and produces them."""

    def __init__(
        self,
        *,
        take_records: Callable[[], tuple[list[tuple[int, Record]], Any]],
        snapshot_state: Callable[[], Snapshot],
        changelog_topic: str,
        transactions: Transactions,
        confirm_state: Callable[[Snapshot, list[Any]], None],
        observe_seconds: Callable[[float], None],
        frontier: InputFrontier | None = None,
        encode_state: Callable[[Snapshot], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            take_outputs=list,
            snapshot_state=snapshot_state,
            write_state=_never,
            confirm_state=confirm_state,
            observe_seconds=observe_seconds,
            frontier=frontier,
            encode_state=encode_state,
        )
        self._take_records = take_records
        self._changelog_topic = changelog_topic
        self._transactions = transactions
        self._one_at_a_time: asyncio.Lock | None = None

    async def commit(
        self, committer: Committer, topics: Any = None, start_new_transaction: bool = True
    ) -> bool:
        """One commit at a time: Faust may start one (its timer, a rebalance) while
        another runs, and a later snapshot's offsets must never commit before an
        earlier snapshot's records."""
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:
            return await self._commit(committer, topics)

    async def _commit(self, committer: Committer, topics: Any) -> bool:
        started = time.perf_counter()
        # -- the synchronous snapshot ---------------------------------------------------
        offsets = self._committable(committer, topics)
        records, done = self._take_records()
        state: Snapshot = self._snapshot_state()
        try:
            await self._encoded(state)
            await committer.drain()  # the value summaries (Faust's producer)
            owned = self._transactions.owned
            parts = {partition: PartitionCommit() for partition in owned}
            for owner, record in records:
                if owner in parts:
                    parts[owner].records.append(record)
            kept = [change for change in state.changes if change[1] in parts]
            topic = self._changelog_topic
            for key, partition, value in kept:
                parts[partition].records.append((topic, partition, key, value))
            committing = {tp: o for tp, o in offsets.items() if tp.partition in parts}
            for tp, offset in committing.items():
                parts[tp.partition].offsets[(tp.topic, tp.partition)] = offset
            acks = await self._transactions.commit({p: part for p, part in parts.items() if part})
            changelog = [ack for ack in acks if ack.topic == topic]
            self._confirm_state(Snapshot(state.number, kept), changelog)
            if committing:
                committer.note_committed(committing)
        except BaseException as exc:
            if done is not None and not done.done():
                done.set_exception(exc)
            raise
        if done is not None and not done.done():
            done.set_result(None)
        self._observe(time.perf_counter() - started)
        return bool(committing)


async def _never(state: Any) -> list[Any]:
    raise AssertionError("a transactional barrier writes state in its transactions")
