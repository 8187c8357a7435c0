"""Write-back cache of customer states over a Faust table: one changelog write per changed
customer per commit, instead of one per event.

The working state lives here, decoded; the table's local store (memory or RocksDB) holds
the encoded bytes and the changelog topic makes them durable. The commit barrier
(agents/engine/barrier.py) takes `snapshot()` in the same synchronous step as the offsets it
will commit, sends it to the changelog (agents/kafka/producing.py), and once the broker has
acknowledged every write calls `confirm()`, which writes the local store. The order
matters for RocksDB, whose data outlives the process: the local store never holds a
state the changelog does not, and the changelog offset it records as "applied up to
here" (which a restart resumes recovery from) is written in the same atomic batch as
the states it covers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.codec import decode_state, encode_state
from streams.customer import CustomerState
from streams.valuation import Derived, derived_of

log = logging.getLogger(__name__)

#: key, changelog partition, encoded value (None: a tombstone, the key is deleted)
Change = tuple[bytes, int, bytes | None]
#: Called at each snapshot with the customers it writes and the derived figures it
#: patches (`CustomerStore.patch`), by changelog partition: records to write before those
#: states, and records to write after them (before the other records, a partition's
#: progress last): agents/engine/book.py, the ledger's journal and checkpoint
#: (agents/engine/checkpoint.py).
SnapshotHook = Callable[
    [dict[int, list[bytes]], dict[int, list[tuple[bytes, Derived]]]],
    tuple[list[Change], list[Change]],
]


@dataclass(frozen=True)
class Snapshot:
    """The states and records changed since the previous snapshot, encoded (once
    `CustomerStore.encode` has run for a snapshot taken with `cut`)."""

    number: int
    changes: list[Change] = field(default_factory=list)
    #: customers whose change in `changes` may still be a placeholder (`cut`)
    pending: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.changes)


class LocalStore(Protocol):
    """The local store of the state table, as vipstream reads and writes it directly (a
    worker's Faust table store through agents/faust_port/stores.py; `DictStore` for the
    engine's harness and the backfill)."""

    def get(self, key: bytes, partition: int | None) -> bytes | None: ...
    def write(
        self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        """Write states of one changelog partition (a value None deletes its key), and the
        changelog offset they are current through, as one atomic step where the store
        supports it."""

    def keys_of(self, partition: int) -> Iterable[bytes]: ...
    def partition_of(self, key: bytes) -> int | None: ...


def highest_offsets(acks: Iterable[Any]) -> dict[int, int]:
    """Changelog partition -> the highest offset among acknowledged writes (record
    acknowledgements with a `partition` and an `offset`: agents.kafka.producing.Written)."""
    offsets: dict[int, int] = {}
    for ack in acks:
        if ack.offset > offsets.get(ack.partition, -1):
            offsets[ack.partition] = ack.offset
    return offsets


class DictStore:
    """A local store in plain dicts: the engine's harness and the backfill's table."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.partitions: dict[bytes, int] = {}

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        return self.data.get(key)

    def write(
        self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        for key, value in items:
            if value is None:
                self.data.pop(key, None)
                self.partitions.pop(key, None)
            else:
                self.data[key] = value
                self.partitions[key] = partition

    def keys_of(self, partition: int) -> list[bytes]:
        return [key for key, p in self.partitions.items() if p == partition]

    def partition_of(self, key: bytes) -> int | None:
        return self.partitions.get(key)


class CustomerStore:
    """Customer states of the partitions this worker owns, keyed by customer id bytes."""

    def __init__(self, local: Callable[[], LocalStore], *, capacity: int) -> None:
        """`local` gives the local store when it is first needed (a Faust table's store
        exists only once the app runs)."""
        self._open_local = local
        self._local: LocalStore | None = None
        self._capacity = capacity
        self._cache: dict[bytes, CustomerState] = {}
        self._dirty: dict[bytes, int] = {}  # key -> partition of the changelog
        #: other records kept in the same table (a partition's progress): key ->
        #: (partition, encoder called at snapshot time)
        self._dirty_records: dict[bytes, tuple[int, Callable[[], bytes]]] = {}
        #: sent to the changelog, not yet confirmed and written locally: key -> the number
        #: of the snapshot that carries its latest value (such states stay in the cache)
        self._inflight: dict[bytes, int] = {}
        self._inflight_records: dict[bytes, bytes] = {}
        self._snapshots = itertools.count(1)
        self.hook: SnapshotHook | None = None
        #: partition -> customer -> derived figures newer than its stored state (a close
        #: or tiering that decided nothing): applied when the state is next decoded
        self._patches: dict[int, dict[bytes, Derived]] = {}
        #: customers patched since the last snapshot -> partition
        self._patched: dict[bytes, int] = {}
        #: customers deleted since the last snapshot (an erasure) -> partition; and those
        #: whose tombstone is in flight -> the number of the snapshot that carries it
        self._deleted: dict[bytes, int] = {}
        self._inflight_deleted: dict[bytes, int] = {}
        #: brings a decoded state up to its patch (streams/valuation.py apply_derived)
        self.apply_patch: Callable[[CustomerState, Derived], None] | None = None
        #: loads a partition's patches (by building its ledger) before one of its states
        #: is decoded: an event can arrive before the engine has built the ledger
        self.ensure_patches: Callable[[int], None] | None = None
        #: customers of a `cut` not encoded yet -> the snapshot's changes and the index of
        #: its placeholder there: encoded before anything can change them (`_freeze`)
        self._unencoded: dict[bytes, tuple[list[Change], int]] = {}

    @property
    def local(self) -> LocalStore:
        if self._local is None:
            self._local = self._open_local()
        return self._local

    def get(self, key: bytes, partition: int | None = None) -> CustomerState | None:
        """The customer's state, or None for a customer never seen. `partition`, when the
        caller knows it, spares a store that keeps one database per partition a search."""
        state = self._cache.get(key)
        if state is not None:
            if self._unencoded:
                self._settle(key)  # the caller may change it: as of the cut first
            return state
        if key in self._deleted or key in self._inflight_deleted:
            return None  # the local store still has it until the tombstone is confirmed
        raw = self.local.get(key, partition)
        if raw is None:
            return None
        owner = partition if partition is not None else self.local.partition_of(key)
        if self.ensure_patches is not None and owner is not None and owner not in self._patches:
            self.ensure_patches(owner)  # its ledger's build loads them
            state = self._cache.get(key)
            if state is not None:
                return state
        state = decode_state(raw)
        derived = None if owner is None else self._patches.get(owner, {}).get(key)
        if derived is not None and self.apply_patch is not None:
            self.apply_patch(state, derived)
        self._admit(key, state)
        return state

    def patch(self, key: bytes, partition: int, state: CustomerState) -> None:
        """Record a state whose change is derived figures only (`streams.valuation
        .Derived`): they reach the changelog compactly, in the next snapshot's journal
        (agents/engine/checkpoint.py), not as a write of the whole state."""
        if self._unencoded:
            self._settle(key)
        if key in self._dirty:
            self._cache[key] = state  # the whole state is written anyway
            return
        if key not in self._cache:
            self._admit(key, state)
        else:
            self._cache[key] = state
        self._patches.setdefault(partition, {})[key] = derived_of(state)
        self._patched[key] = partition

    def patches_of(self, partition: int) -> dict[bytes, Derived]:
        """The partition's customers whose stored state is behind their derived figures."""
        return self._patches.get(partition, {})

    def load_patches(self, partition: int, patches: dict[bytes, Derived]) -> None:
        """The partition's outstanding patches, as its ledger checkpoint and journal hold
        them (a start, or partitions assigned)."""
        self._patches[partition] = patches
        for key in patches:
            if key not in self._inflight:  # (a state in flight is newer than the store's)
                self._cache.pop(key, None)  # decoded without its patch: decode it again

    def forget_patches(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._patches.pop(partition, None)

    def delete(self, key: bytes, partition: int) -> None:
        """Forget a customer (an erasure): a tombstone reaches the changelog at the next
        commit, and the local store drops the key once it is confirmed."""
        if self._unencoded:
            self._settle(key)
        self._dirty.pop(key, None)
        self._patched.pop(key, None)
        self._patches.get(partition, {}).pop(key, None)
        self._cache.pop(key, None)
        self._deleted[key] = partition

    def put(self, key: bytes, partition: int, state: CustomerState) -> None:
        """Record a changed state; it reaches the changelog at the next commit."""
        if self._unencoded:
            self._settle(key)
        self._deleted.pop(key, None)  # a customer again (new events after its erasure)
        self._dirty[key] = partition  # before admitting: eviction must never pick it
        if key not in self._cache:
            self._admit(key, state)
        else:
            self._cache[key] = state

    def get_record(self, key: bytes) -> bytes | None:
        """A non-customer record (bytes as stored), e.g. a partition's progress."""
        pending = self._dirty_records.get(key)
        if pending is not None:
            return pending[1]()
        inflight = self._inflight_records.get(key)
        if inflight is not None:
            return inflight
        return self.local.get(key, None)

    def put_record(self, key: bytes, partition: int, encode: Callable[[], bytes]) -> None:
        """Mark a record changed; `encode` gives its bytes when the next snapshot is taken.

        Records are written after the customer states of the same snapshot: on the same
        changelog partition, so a record never becomes durable before those states.
        """
        self._dirty_records[key] = (partition, encode)

    def partition_of(self, key: bytes) -> int | None:
        return self.local.partition_of(key)

    def keys_of(self, partition: int) -> Iterable[bytes]:
        """Every key this worker's store holds for a partition."""
        return self.local.keys_of(partition)

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    def snapshot(self) -> Snapshot:
        """Every customer and record changed since the last call, encoded as it is now.

        Starts a new change set: a customer changed after this call is in the next
        snapshot. Until `confirm()`, the snapshot's states stay readable from memory.
        """
        snapshot = self.cut()
        for key in snapshot.pending:
            self._settle(key)
        return snapshot

    def cut(self) -> Snapshot:
        """`snapshot()`, with the customer states left to encode (`encode`): the cut is
        synchronous and quick, the encoding (~30 us a state) runs in slices that let the
        event loop go on. A state of the cut is encoded as it was at the cut all the same:
        the store's every way to a state (get, put, patch, delete) encodes a state of an
        unfinished cut before it hands the state out or replaces it."""
        number = next(self._snapshots)
        before: list[Change] = []
        after: list[Change] = []
        written: dict[int, list[bytes]] = {}
        for key, partition in [*self._dirty.items(), *self._deleted.items()]:
            written.setdefault(partition, []).append(key)
            self._patched.pop(key, None)
            patches = self._patches.get(partition)
            if patches:
                patches.pop(key, None)  # the whole state carries its derived figures
        patched: dict[int, list[tuple[bytes, Derived]]] = {}
        for key, partition in self._patched.items():
            derived = self._patches.get(partition, {}).get(key)
            if derived is not None:
                patched.setdefault(partition, []).append((key, derived))
        self._patched.clear()
        if self.hook is not None:
            before, after = self.hook(written, patched)
        if (
            not self._dirty
            and not self._deleted
            and not self._dirty_records
            and not before
            and not after
        ):
            return Snapshot(number)
        changes: list[Change] = list(before)
        pending = list(self._dirty)
        for key, partition in self._dirty.items():
            self._unencoded[key] = (changes, len(changes))
            changes.append((key, partition, b""))  # a placeholder until encoded
            self._inflight[key] = number
        for key, partition in self._deleted.items():
            changes.append((key, partition, None))
            self._inflight_deleted[key] = number
        changes.extend(after)
        for key, _, value in (*before, *after):
            if value is not None:
                self._inflight_records[key] = value
        for key, (partition, encode) in self._dirty_records.items():
            value = encode()
            changes.append((key, partition, value))
            self._inflight_records[key] = value
        self._dirty.clear()
        self._deleted.clear()
        self._dirty_records.clear()
        return Snapshot(number, changes, pending)

    async def encode(self, snapshot: Snapshot, *, slice_seconds: float = 0.01) -> None:
        """Encode the states of a `cut` still waiting, yielding to the event loop every
        `slice_seconds`."""
        unencoded = self._unencoded
        deadline = time.perf_counter() + slice_seconds
        for key in snapshot.pending:
            entry = unencoded.get(key)
            if entry is None or entry[0] is not snapshot.changes:
                continue  # encoded already (something asked for it since the cut)
            self._freeze(key)
            if time.perf_counter() > deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + slice_seconds

    def _settle(self, key: bytes) -> None:
        """Before a state is handed out or replaced: encode it if an unfinished cut
        still waits for it (callers test `_unencoded` first: empty between commits)."""
        if key in self._unencoded:
            self._freeze(key)

    def _freeze(self, key: bytes) -> None:
        """Encode a state of an unfinished cut, as it is now, i.e. as of the cut."""
        changes, index = self._unencoded.pop(key)
        _, partition, _ = changes[index]
        changes[index] = (key, partition, encode_state(self._cache[key]))

    def confirm(self, snapshot: Snapshot, offsets: dict[int, int]) -> None:
        """The broker acknowledged the snapshot: write it to the local store, with the
        highest changelog offset acknowledged per partition (`offsets`)."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, partition, value in snapshot.changes:
            by_partition.setdefault(partition, []).append((key, value))
        for partition, items in sorted(by_partition.items()):
            self.local.write(partition, items, offsets.get(partition))
        for key, _, value in snapshot.changes:
            if value is None:
                if self._inflight_deleted.get(key) == snapshot.number:
                    del self._inflight_deleted[key]
            elif self._inflight.get(key) == snapshot.number:
                del self._inflight[key]
            elif self._inflight_records.get(key) is value:
                del self._inflight_records[key]
        self._evict()

    def forget_cache(self) -> None:
        """Drop decoded states (partitions moved); the store stays the source of truth."""
        if self._dirty or self._dirty_records:
            # Faust commits before revoking, and the agent is paused meanwhile: what is
            # left is a close or tiering that ran on during the rebalance. It is redone
            # from the durable state (valuing a day twice gives the same result).
            log.warning(
                "dropping %d state changes made during the rebalance (a close or "
                "tiering in progress, redone by the partitions' owners)",
                len(self._dirty) + len(self._dirty_records),
            )
            self._dirty.clear()
            self._dirty_records.clear()
        self._deleted.clear()  # an erasure not in a snapshot is applied again (its offset
        # was not committed)
        # Patches not yet in a snapshot are dropped like the changes above; the others
        # are durable in the partitions' journals and checkpoints, and the ledgers of the
        # new assignment load them again.
        self._patched.clear()
        self._patches.clear()
        # States of a commit still in flight stay until it is confirmed.
        self._cache = {k: s for k, s in self._cache.items() if k in self._inflight}

    def _admit(self, key: bytes, state: CustomerState) -> None:
        self._cache[key] = state
        if len(self._cache) > self._capacity + self._capacity // 8:
            self._evict()

    def _evict(self) -> None:
        """Forget the oldest clean entries down to capacity (FIFO; changed ones stay)."""
        excess = len(self._cache) - self._capacity
        if excess <= 0:
            return
        victims = []
        for key in self._cache:
            if key not in self._dirty and key not in self._inflight:
                victims.append(key)
                if len(victims) >= excess:
                    break
        for key in victims:
            del self._cache[key]
