"""CustomerStore: reads through to the table's store, coalesces writes, bounds its cache."""

from __future__ import annotations

from agents.app import STATE_TABLE, VipApp
from agents.state_store import CustomerStore
from streams.codec import decode_state
from streams.customer import CustomerState


def make_store(app: VipApp, capacity: int = 100) -> CustomerStore:
    return CustomerStore(app.tables[STATE_TABLE], capacity=capacity)


async def test_flush_writes_the_local_store_with_its_partition(app: VipApp) -> None:
    store = make_store(app)
    store.put(b"C1", 4, CustomerState("C1", 1, 2))
    store.flush()
    memory = app.tables[STATE_TABLE].data
    assert decode_state(memory.data[b"C1"]).customer_id == "C1"
    assert memory._key_partition[b"C1"] == 4


async def test_reads_fall_back_to_the_store_after_the_cache_is_dropped(app: VipApp) -> None:
    store = make_store(app)
    store.put(b"C1", 0, CustomerState("C1", 1, 2, revenue=7))
    store.flush()
    store.forget_cache()
    state = store.get(b"C1")
    assert state is not None
    assert state.revenue == 7
    assert store.get(b"unknown") is None


async def test_the_cache_is_bounded_but_never_drops_unflushed_state(app: VipApp) -> None:
    store = make_store(app, capacity=100)
    for i in range(500):
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", i, i))
    assert store.dirty_count == 500  # all kept: none is in the changelog yet
    futures = store.flush()
    assert len(futures) == 500
    assert len(store._cache) <= 100
    for i in (0, 250, 499):  # evicted ones come back from the store
        state = store.get(f"C{i}".encode())
        assert state is not None
        assert state.first_seen_at == i


async def test_local_size_counts_the_store(app: VipApp) -> None:
    store = make_store(app)
    for i in range(3):
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", 0, 0))
    store.flush()
    assert store.local_size() == 3
