"""The state table's Faust stores, as the engine's `LocalStore` (agents/engine/store.py).

Faust's stores offer no API to write a batch of raw values with the changelog offset
they are current through in one step, nor to list one partition's keys: vipstream's
commit barrier needs both (a RocksDB store must never hold a state the changelog lacks,
and must record the offset it is current through atomically with it). So these
adapters reach into the stores' private attributes; tests/agents/test_faust_port.py
fails when one of them moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import rocksdict

from agents.engine.store import LocalStore


class MemoryLocal:
    """faust.stores.memory.Store: a dict, plus the key -> partition map Faust uses to drop
    the keys of partitions this worker no longer owns."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        value = self._store.data.get(key)
        return value if value is None or isinstance(value, bytes) else bytes(value)

    def write(
        self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        data, partitions = self._store.data, self._store._key_partition
        for key, value in items:
            if value is None:  # a tombstone
                data.pop(key, None)
                partitions.pop(key, None)
            else:
                data[key] = value
                partitions[key] = partition

    def keys_of(self, partition: int) -> list[bytes]:
        return [key for key, p in self._store._key_partition.items() if p == partition]

    def partition_of(self, key: bytes) -> int | None:
        partition: int | None = self._store._key_partition.get(key)
        return partition


class RocksLocal:
    """faust.stores.rocksdb.Store (rocksdict driver): one database per changelog partition,
    each holding the changelog offset it is current through under Faust's offset key."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        store = self._store
        if partition is not None:
            value: bytes | None = store._db_for_partition(partition).get(key)
            if value is not None:
                store._key_index[key] = partition
            return value
        found = store._get_bucket_for_key(key)
        return None if found is None else bytes(found[1])

    def write(
        self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        store = self._store
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            if value is None:  # a tombstone
                batch.delete(key)
                store._key_index.pop(key, None)
            else:
                batch.put(key, value)
                store._key_index[key] = partition
        if offset is not None:
            batch.put(store.offset_key, str(offset).encode())
        store._db_for_partition(partition).write(batch)

    def keys_of(self, partition: int) -> Iterable[bytes]:
        store = self._store
        return list(store._visible_keys(store._db_for_partition(partition)))

    def partition_of(self, key: bytes) -> int | None:
        store = self._store
        partition: int | None = store._key_index.get(key)
        if partition is None:
            for candidate, db in list(store._dbs.items()):
                if db.key_may_exist(key) and db.get(key) is not None:
                    store._key_index[key] = candidate
                    return int(candidate)
        return partition


def local_store_of(table: Any) -> LocalStore:
    """The adapter for the table's store type; a clear error for one vipstream cannot use."""
    store = table.data
    if hasattr(store, "_key_partition"):
        return MemoryLocal(store)
    if hasattr(store, "_db_for_partition") and getattr(store, "use_rocksdict", False):
        return RocksLocal(store)
    raise TypeError(f"unsupported table store {type(store).__module__}.{type(store).__name__}")
