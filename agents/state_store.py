"""Write-back cache of customer states over a Faust table: one changelog write per changed
customer per commit, instead of one per event.

The working state lives here, decoded; the table's store holds the encoded bytes and the
changelog topic makes them durable. The commit barrier (agents/durability.py) takes
`snapshot()` in the same synchronous step as the offsets it will commit, and writes it
with `write_changelog()` before committing them; that keeps at-least-once intact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.codec import decode_state, encode_state
from streams.customer import CustomerState

log = logging.getLogger(__name__)


class CustomerStore:
    """Customer states of the partitions this worker owns, keyed by customer id bytes."""

    def __init__(self, table: Any, *, capacity: int) -> None:
        self._table = table
        self._capacity = capacity
        self._cache: dict[bytes, CustomerState] = {}
        self._dirty: dict[bytes, int] = {}  # key -> partition of the changelog
        #: other records kept in the same table (a partition's progress): key ->
        #: (partition, encoder called at snapshot time)
        self._dirty_records: dict[bytes, tuple[int, Callable[[], bytes]]] = {}

    def get(self, key: bytes) -> CustomerState | None:
        """The customer's state, or None for a customer never seen."""
        state = self._cache.get(key)
        if state is not None:
            return state
        raw = self._read_local(key)
        if raw is None:
            return None
        state = decode_state(raw)
        self._admit(key, state)
        return state

    def put(self, key: bytes, partition: int, state: CustomerState) -> None:
        """Record a changed state; it reaches the changelog at the next flush."""
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
        return self._read_local(key)

    def put_record(self, key: bytes, partition: int, encode: Callable[[], bytes]) -> None:
        """Mark a record changed; `encode` gives its bytes when the next snapshot is taken.

        Records are written after the customer states of the same snapshot: on the same
        changelog partition, so a record never becomes durable before those states.
        """
        self._dirty_records[key] = (partition, encode)

    def partition_of(self, key: bytes) -> int | None:
        partition: int | None = self._table.data._key_partition.get(key)
        return partition

    def keys_of(self, partition: int) -> list[bytes]:
        """Every key this worker's store holds for a partition."""
        store = self._table.data
        return [key for key, p in store._key_partition.items() if p == partition]

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    def snapshot(self) -> list[tuple[bytes, int, bytes]]:
        """(key, partition, encoded state) of every customer changed since the last call.

        Writes the local store too, and starts a new change set: a customer changed after
        this call is in the next snapshot.
        """
        if not self._dirty and not self._dirty_records:
            return []
        changed = []
        for key, partition in self._dirty.items():
            value = encode_state(self._cache[key])
            self._write_local(key, value, partition)
            changed.append((key, partition, value))
        for key, (partition, encode) in self._dirty_records.items():
            value = encode()
            self._write_local(key, value, partition)
            changed.append((key, partition, value))
        self._dirty.clear()
        self._dirty_records.clear()
        self._evict()
        return changed

    def write_changelog(self, changed: list[tuple[bytes, int, bytes]]) -> list[Any]:
        """Queue a snapshot's states on the changelog; the send futures."""
        send = self._table.send_changelog
        return [
            send(partition, key, value, key_serializer="raw", value_serializer="raw")
            for key, partition, value in changed
        ]

    def flush(self) -> list[Any]:
        """snapshot() and write_changelog() at once."""
        return self.write_changelog(self.snapshot())

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
        self._cache.clear()

    def local_size(self) -> int:
        """Customers in this worker's local store (active partitions, and standbys)."""
        return len(self._table.data)

    def _admit(self, key: bytes, state: CustomerState) -> None:
        self._cache[key] = state
        if len(self._cache) > self._capacity + self._capacity // 8:
            self._evict()

    def _evict(self) -> None:
        """Forget the oldest clean entries down to capacity (FIFO; dirty ones stay)."""
        excess = len(self._cache) - self._capacity
        if excess <= 0:
            return
        victims = []
        for key in self._cache:
            if key not in self._dirty:
                victims.append(key)
                if len(victims) >= excess:
                    break
        for key in victims:
            del self._cache[key]

    def _read_local(self, key: bytes) -> bytes | None:
        store = self._table.data
        value = store.get(key)
        return value if value is None or isinstance(value, bytes) else bytes(value)

    def _write_local(self, key: bytes, value: bytes, partition: int) -> None:
        # Faust's store API takes the partition from the "current event"; a flush runs
        # outside any event, so the partition is given explicitly per store type.
        store = self._table.data
        if not hasattr(store, "_key_partition"):
            raise TypeError(f"unsupported table store {type(store).__name__}")
        # faust.stores.memory.Store: the partition map lets Faust drop keys of partitions
        # this worker no longer owns after a rebalance
        store.data[key] = value
        store._key_partition[key] = partition
