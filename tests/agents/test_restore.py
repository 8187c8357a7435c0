"""agents/faust_port/restore.py: the active partitions of the state table's changelog are
read in bulk from where the store is current to Faust's high watermarks, and Faust's
start offsets are moved past exactly what was read, whether the read finished, ran out of
time, or failed."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from faust.types import TP

from agents.faust_port.restore import install_bulk_restore
from agents.kafka.bulk_read import Key, ReadResult, Span

CHANGELOG = "app-customer_state-changelog"


@dataclass
class Record:
    key: bytes
    value: bytes | None
    offset: int


class Store:
    """The LocalStore the restore writes to."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, list[tuple[bytes, bytes | None]], int | None]] = []

    def write(
        self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None
    ) -> None:
        self.writes.append((partition, items, offset))

    def get(self, key: bytes, partition: int | None) -> bytes | None:
        raise NotImplementedError

    def keys_of(self, partition: int) -> list[bytes]:
        raise NotImplementedError

    def partition_of(self, key: bytes) -> int | None:
        raise NotImplementedError


class Recovery:
    """What of faust's Recovery the restore uses."""

    def __init__(self, offsets: dict[TP, int | None], highwaters: dict[TP, int | None]) -> None:
        self.active_offsets: Counter[TP] = Counter()
        for tp, offset in offsets.items():
            self.active_offsets[tp] = offset  # type: ignore[assignment]
        self.active_highwaters = dict(highwaters)
        self.standby_offsets: Counter[TP] = Counter()
        self.built: list[tuple[str, dict[TP, int | None]]] = []

    async def _build_offsets(
        self, consumer: Any, tps: Any, destination: Counter[TP], title: str
    ) -> None:
        self.built.append((title, dict(destination)))


class Reader:
    """Hands over one record per offset of each span, up to `limit` records per
    partition; then reports as read_spans does (or fails with `error`)."""

    def __init__(self, limit: int = 10**9, error: Exception | None = None) -> None:
        self.limit = limit
        self.error = error
        self.spans: dict[Key, Span] = {}

    async def __call__(self, spans: dict[Key, Span], apply: Any) -> ReadResult:
        self.spans = dict(spans)
        result = ReadResult()
        for key, span in spans.items():
            start = 0 if span.start is None else span.start
            records = [Record(b"k%d" % o, b"v", o) for o in range(start, span.end)]
            taken = records[: self.limit]
            if taken:
                apply(key, taken)
                result.records += len(taken)
                result.through[key] = taken[-1].offset
            if len(taken) == len(records):
                result.finished.add(key)
                result.through[key] = span.end - 1
        result.error = self.error
        return result


def tp(partition: int, topic: str = CHANGELOG) -> TP:
    return TP(topic, partition)


def run(recovery: Recovery, reader: Reader, tps: set[TP], *, active: bool = True) -> Store:
    store = Store()
    counted: list[int] = []
    install_bulk_restore(
        recovery,
        changelog_topic=CHANGELOG,
        local=lambda: store,  # type: ignore[arg-type,return-value]
        read=reader,
        counted=counted.append,
    )
    destination = recovery.active_offsets if active else recovery.standby_offsets
    asyncio.run(recovery._build_offsets(None, tps, destination, "active" if active else "standby"))
    assert sum(counted) == sum(len(items) for _, items, _ in store.writes)
    return store


@pytest.mark.parametrize(
    ("offset", "highwater", "span", "after"),
    [
        (None, 9, Span(None, 10), 9),  # memory store: nothing held, from the first offset
        (-1, 9, Span(None, 10), 9),  # Faust's "nothing read"
        (4, 9, Span(5, 10), 9),  # RocksDB: current through offset 4
        (9, 9, None, 9),  # current: nothing to read
        (3, None, None, 3),  # no high watermark known: left to Faust
        (None, -1, None, None),  # an empty partition
    ],
)
def test_each_partition_is_read_from_where_the_store_is_current_to_faust_s_highwater(
    offset: int | None, highwater: int | None, span: Span | None, after: int | None
) -> None:
    recovery = Recovery({tp(0): offset}, {tp(0): highwater})
    reader = Reader()
    store = run(recovery, reader, {tp(0)})
    assert reader.spans.get((CHANGELOG, 0)) == span
    assert recovery.active_offsets[tp(0)] == after
    # Faust's own offset building runs afterwards, on the moved offsets
    assert recovery.built == [("active", {tp(0): after})]
    if span is not None:
        assert [offset for _, _, offset in store.writes] == [span.end - 1]
        assert store.writes[0][0] == 0


def test_partitions_of_other_topics_and_standby_reads_are_left_to_faust() -> None:
    other = tp(0, "another-table-changelog")
    recovery = Recovery({tp(1): None, other: None}, {tp(1): 5, other: 5})
    reader = Reader()
    run(recovery, reader, {tp(1), other})
    assert set(reader.spans) == {(CHANGELOG, 1)}
    assert recovery.active_offsets[other] is None

    standby = Recovery({}, {tp(2): 5})
    standby.standby_offsets[tp(2)] = None  # type: ignore[assignment]
    reader = Reader()
    run(standby, reader, {tp(2)}, active=False)
    assert reader.spans == {}
    assert standby.built == [("standby", {tp(2): None})]


@pytest.mark.parametrize("error", [None, ConnectionError("broker gone")])
def test_a_read_cut_short_moves_the_start_only_past_what_was_applied(
    error: Exception | None,
) -> None:
    """Time up or a broker error: Faust reads the rest, from the first record not applied."""
    recovery = Recovery({tp(0): None, tp(1): 2, tp(2): None}, {tp(0): 99, tp(1): 99, tp(2): 1})
    store = run(recovery, Reader(limit=3, error=error), {tp(0), tp(1), tp(2)})
    assert recovery.active_offsets[tp(0)] == 2  # records 0, 1, 2 applied
    assert recovery.active_offsets[tp(1)] == 5  # records 3, 4, 5 applied
    assert recovery.active_offsets[tp(2)] == 1  # read to its end
    assert sorted((p, off) for p, _, off in store.writes) == [(0, 2), (1, 5), (2, 1)]


def test_installing_twice_restores_once() -> None:
    recovery = Recovery({tp(0): None}, {tp(0): 3})
    reader = Reader()
    store = Store()
    for _ in range(2):
        install_bulk_restore(
            recovery,
            changelog_topic=CHANGELOG,
            local=lambda: store,  # type: ignore[arg-type,return-value]
            read=reader,
            counted=lambda n: None,
        )
    asyncio.run(recovery._build_offsets(None, {tp(0)}, recovery.active_offsets, "active"))
    assert len(store.writes) == 1
    assert len(recovery.built) == 1
