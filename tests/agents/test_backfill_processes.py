"""`vipstream backfill --processes N` computes what one process computes: the same
state and progress record for every key of the state table, and the same outputs, in
the same order on each partition (all but the wall-clock times), whatever the number of
processes and however the partitions fall to them. No broker: the changelog is not
written, the outputs are collected where they would be produced."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.settings import Settings, load_settings
from agents.tools import backfill
from agents.tools.backfill_exchange import Hub, Link
from agents.tools.simulate_io import write_jsonl
from agents.tools.simulator import SimulationConfig, Simulator
from tests.support import effective_table

Outputs = dict[tuple[str, int], list[bytes]]


def collect(into: list[tuple[str, int, bytes | None, bytes]]) -> Any:
    """A stand-in for producing the outputs: they are kept, in order."""

    async def send(outputs: Any, producer: Any) -> list[Any]:
        pending, outputs.pending = outputs.pending, []
        into.extend(pending)
        return []

    return send


async def played(job: backfill._Job, link: Link | None) -> tuple[dict[bytes, bytes], Outputs]:
    """The state table and the outputs of one process (a spawned child with a link)."""
    sent: list[tuple[str, int, bytes | None, bytes]] = []
    backfill._send_outputs = collect(sent)  # type: ignore[assignment]
    if link is None:
        _, pipeline = await backfill._play(job, backfill._Local(None, 0))
    else:
        _, pipeline = await backfill._play(job, backfill._Remote(link), publish=link.publish)
    by_partition: Outputs = defaultdict(list)
    for topic, partition, _, value in sent:
        # when it was emitted, and a dead letter's when it was read: the clock's
        clock = {"emitted_at", "as_of"} if "dead-letters" in topic else {"emitted_at"}
        body = {k: v for k, v in orjson.loads(value).items() if k not in clock}
        by_partition[(topic, partition)].append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return effective_table(pipeline.local, job.settings), dict(by_partition)


async def child(job: backfill._Job, link: Link) -> tuple[dict[bytes, bytes], Outputs]:
    return await played(job, link)


def simulated(path: Path, customers: int) -> Path:
    config = SimulationConfig(
        customers=customers,
        days=75,
        seed=11,
        start=datetime(2026, 3, 1, tzinfo=UTC),
        invalid_share=0.01,
        duplicate_share=0.02,
    )
    write_jsonl(Simulator(config), path)
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated(tmp_path_factory.mktemp("history") / "history.jsonl", 150)


def settings_of(partitions: int) -> Settings:
    return load_settings({"app_id": "backfill-processes", "kafka": {"partitions": partitions}})


def jobs(settings: Settings, history: Path, processes: int) -> list[backfill._Job]:
    report = backfill.BackfillReport()
    ends = backfill._count_ends([history], settings, report)
    partitions = settings.kafka.partitions
    owned = [frozenset(range(i, partitions, processes)) for i in range(processes)]
    return [backfill._Job(settings, [history], ends, p, True, False) for p in owned]


CASES = [
    ("2 processes, 8 partitions", 8, 2),
    ("3 processes, 8 partitions (uneven)", 8, 3),
    ("4 processes, 4 partitions (one each)", 4, 4),
]


@pytest.mark.parametrize(("why", "partitions", "processes"), CASES, ids=[c[0] for c in CASES])
async def test_processes_compute_what_one_process_computes(
    history: Path, monkeypatch: pytest.MonkeyPatch, why: str, partitions: int, processes: int
) -> None:
    for name in [n for n in os.environ if n.startswith("VIPSTREAM_")]:
        monkeypatch.delenv(name)
    settings = settings_of(partitions)
    (one,) = jobs(settings, history, 1)
    monkeypatch.setattr(backfill, "_send_outputs", backfill._send_outputs)  # restored after
    states, outputs = await played(one, None)
    assert len(states) > 150
    assert sum(len(v) for v in outputs.values()) > 100

    parts = Hub(child, jobs(settings, history, processes)).run()
    merged_states: dict[bytes, bytes] = {}
    merged_outputs: Outputs = {}
    for part_states, part_outputs in parts:
        assert not merged_states.keys() & part_states.keys()  # each key has one owner
        merged_states |= part_states
        assert not merged_outputs.keys() & part_outputs.keys()
        merged_outputs |= part_outputs
    assert merged_states.keys() == states.keys()
    differing = [k for k in states if merged_states[k] != states[k]]
    assert not differing, f"{len(differing)} differ, e.g. {differing[:3]}"
    assert merged_outputs == outputs


SMALL = [
    ("3 customers: most partitions and one child have none", 3),
    ("no customer: only unroutable lines", 0),
]


@pytest.mark.parametrize(("why", "customers"), SMALL, ids=[c[0] for c in SMALL])
async def test_children_without_customers_follow_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str, customers: int
) -> None:
    for name in [n for n in os.environ if n.startswith("VIPSTREAM_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "history.jsonl"
    if customers:
        simulated(path, customers)
    else:
        path.write_bytes(b'{"event_type": "call"}\nnot json\n')
    settings = settings_of(8)
    (one,) = jobs(settings, path, 1)
    monkeypatch.setattr(backfill, "_send_outputs", backfill._send_outputs)
    states, outputs = await played(one, None)
    parts = Hub(child, jobs(settings, path, 4)).run()
    merged_states = {k: v for part_states, _ in parts for k, v in part_states.items()}
    merged_outputs = {k: v for _, part_outputs in parts for k, v in part_outputs.items()}
    assert merged_states == states
    assert merged_outputs == outputs
    if customers:
        owners = [{k for k in part_states if not k.startswith(b"\x00")} for part_states, _ in parts]
        assert [] in [sorted(o) for o in owners], "a child should own no customer"
        assert any(k.startswith(b"C") for k in states)
