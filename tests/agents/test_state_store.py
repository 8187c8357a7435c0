"""CustomerStore: reads through to the table's store, coalesces writes, bounds its cache,
and writes the local store only once the changelog has acknowledged a snapshot."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.engine.store import CustomerStore, Snapshot, highest_offsets
from agents.faust_port.stores import local_store_of
from agents.settings import Settings
from agents.worker.app import STATE_TABLE, VipApp, create_app
from streams.codec import decode_state
from streams.customer import CustomerState


def make_store(app: VipApp, capacity: int = 100) -> CustomerStore:
    table = app.tables[STATE_TABLE]
    return CustomerStore(lambda: local_store_of(table), capacity=capacity)


def commit(store: CustomerStore, offset: int = 0) -> Snapshot:
    """What the commit barrier does, with the broker's acknowledgement simulated."""
    snapshot = store.snapshot()
    store.confirm(snapshot, {p: offset for _, p, _ in snapshot.changes})
    return snapshot


@pytest.fixture(params=["memory://", "rocksdb://"])
def any_app(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> VipApp:
    configured = settings.model_copy(update={"store": request.param, "datadir": tmp_path})
    return create_app(configured)


async def test_confirm_writes_the_local_store_of_its_partition(any_app: VipApp) -> None:
    store = make_store(any_app)
    store.put(b"C1", 4, CustomerState("C1", 1, 2))
    commit(store)
    assert store.partition_of(b"C1") == 4
    assert list(store.keys_of(4)) == [b"C1"]
    assert list(store.keys_of(3)) == []
    raw = store.local.get(b"C1", 4)
    assert raw is not None
    assert decode_state(raw).customer_id == "C1"


async def test_nothing_reaches_the_local_store_before_the_changelog_has_it(
    any_app: VipApp,
) -> None:
    store = make_store(any_app, capacity=100)
    for i in range(300):
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", i, i))
    snapshot = store.snapshot()
    assert len(snapshot) == 300
    assert store.local.get(b"C0", 0) is None  # sent, not acknowledged: not local yet
    for i in range(300, 600):  # cache pressure while the commit is in flight
        store.get(f"C{i}".encode(), 0)
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", i, i))
    for i in (0, 150, 299):  # the in-flight states stay readable: never evicted
        state = store.get(f"C{i}".encode(), 0)
        assert state is not None
        assert state.first_seen_at == i
    store.confirm(snapshot, {0: 41})
    assert store.local.get(b"C0", 0) is not None


async def test_reads_fall_back_to_the_store_after_the_cache_is_dropped(any_app: VipApp) -> None:
    store = make_store(any_app)
    store.put(b"C1", 0, CustomerState("C1", 1, 2, revenue=7))
    commit(store)
    store.forget_cache()
    state = store.get(b"C1")
    assert state is not None
    assert state.revenue == 7
    assert store.get(b"unknown") is None
    assert store.get(b"unknown", 0) is None


async def test_the_cache_is_bounded_but_never_drops_unflushed_state(any_app: VipApp) -> None:
    store = make_store(any_app, capacity=100)
    for i in range(500):
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", i, i))
    assert store.dirty_count == 500  # all kept: none is in the changelog yet
    snapshot = store.snapshot()
    assert len(snapshot) == 500
    store.confirm(snapshot, {0: 499})
    assert len(store._cache) <= 100
    for i in (0, 250, 499):  # evicted ones come back from the store
        state = store.get(f"C{i}".encode())
        assert state is not None
        assert state.first_seen_at == i


async def test_a_record_reads_its_latest_value_until_confirmed(any_app: VipApp) -> None:
    store = make_store(any_app)
    store.put_record(b"\x00progress\x001", 1, lambda: b"first")
    assert store.get_record(b"\x00progress\x001") == b"first"
    snapshot = store.snapshot()
    assert store.get_record(b"\x00progress\x001") == b"first"  # in flight
    store.put_record(b"\x00progress\x001", 1, lambda: b"second")
    store.confirm(snapshot, {1: 5})
    assert store.get_record(b"\x00progress\x001") == b"second"
    commit(store, 6)
    assert store.get_record(b"\x00progress\x001") == b"second"


async def test_a_later_snapshot_keeps_a_key_in_flight(any_app: VipApp) -> None:
    store = make_store(any_app, capacity=100)
    store.put(b"C1", 0, CustomerState("C1", 1, 1, revenue=1))
    first = store.snapshot()
    store.put(b"C1", 0, CustomerState("C1", 1, 1, revenue=2))
    second = store.snapshot()
    store.confirm(first, {0: 1})
    assert b"C1" in store._inflight  # its newer value is not local yet
    store.confirm(second, {0: 2})
    assert b"C1" not in store._inflight
    raw = store.local.get(b"C1", 0)
    assert raw is not None
    assert decode_state(raw).revenue == 2


async def test_rocksdb_records_the_changelog_offset_with_the_states(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings.model_copy(update={"store": "rocksdb://", "datadir": tmp_path}))
    store = make_store(app)
    table = app.tables[STATE_TABLE]
    topic = table.changelog_topic.get_topic_name()
    tp = SimpleNamespace(topic=topic, partition=2)
    assert table.data.persisted_offset(tp) is None
    store.put(b"C1", 2, CustomerState("C1", 1, 2))
    commit(store, offset=17)
    assert table.data.persisted_offset(tp) == 17  # recovery resumes after it
    assert list(store.keys_of(2)) == [b"C1"]  # Faust's offset key is not a customer


def test_highest_offsets_per_partition() -> None:
    acks = [SimpleNamespace(partition=p, offset=o) for p, o in [(0, 5), (1, 2), (0, 9), (0, 7)]]
    assert highest_offsets(acks) == {0: 9, 1: 2}
    assert highest_offsets([]) == {}


async def test_a_cut_holds_every_state_as_of_the_cut_however_it_changes_meanwhile(
    any_app: VipApp,
) -> None:
    """The barrier cuts synchronously and encodes in slices while events flow: a state
    changed after the cut (through get/put, a patch, a deletion) is in the cut as it was,
    and in the next snapshot as it is."""
    store = make_store(any_app)
    for i in range(6):
        store.put(f"C{i}".encode(), 0, CustomerState(f"C{i}", 1, 2, revenue=i))
    cut = store.cut()
    changed = store.get(b"C1", 0)
    assert changed is not None
    changed.revenue = 99  # an event applied after the cut
    store.put(b"C1", 0, changed)
    store.put(b"C2", 0, CustomerState("C2", 1, 2, revenue=77))  # a new object
    store.delete(b"C3", 0)  # erased
    kept = store.get(b"C4", 0)  # only read
    patched = store.get(b"C5", 0)
    assert patched is not None
    patched.revenue = 55
    store.patch(b"C5", 0, patched)
    await store.encode(cut, slice_seconds=0.0)  # a yield after every state
    encoded = {key: decode_state(v) for key, _, v in cut.changes if v}
    assert {k: s.revenue for k, s in encoded.items()} == {f"C{i}".encode(): i for i in range(6)}
    assert kept is not None
    assert kept.revenue == 4
    store.confirm(cut, {0: 1})
    following = store.snapshot()
    assert {
        key: None if v is None else decode_state(v).revenue
        for key, _, v in following.changes
        if not key.startswith(b"\x00")
    } == {b"C1": 99, b"C2": 77, b"C3": None}


async def test_a_cut_holds_placeholders_until_encoded(
    any_app: VipApp,
) -> None:
    store = make_store(any_app)
    store.put(b"C1", 0, CustomerState("C1", 1, 2, revenue=5))
    cut = store.cut()
    assert cut.changes == [(b"C1", 0, b"")]  # a placeholder until encoded
    await store.encode(cut)
    (change,) = cut.changes
    assert decode_state(change[2] or b"").revenue == 5
