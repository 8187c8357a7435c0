"""`vipstream erase` on Apache Kafka: the running worker confirms it, the customers are
gone from /customers and get tombstones on customer-tiers and contact-preferences, and
neither a restart that rebuilds the state from the changelog nor a replay of their
older input brings them back; everybody else is untouched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.conftest import RunningBroker
from tests.support import Worker, cli, isolated_env, settle, simulate_history

pytestmark = pytest.mark.integration

CUSTOMERS = 60


def last_values(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The latest value of every key on the topic (None: a tombstone), read_committed."""

    async def run() -> dict[bytes, bytes | None]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        found: dict[bytes, bytes | None] = {}
        try:
            while batch := await consumer.getmany(timeout_ms=3000):
                for records in batch.values():
                    for record in records:
                        if record.key is not None:
                            found[record.key] = record.value
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())


def answers(worker: Worker) -> dict[str, tuple[int, Any]]:
    return {f"C{n:07d}": worker.get(f"/customers/C{n:07d}") for n in range(CUSTOMERS)}


def test_erased_customers_stay_erased_after_a_restart_and_a_replay(
    broker: RunningBroker, tmp_path: Path
) -> None:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__EXACT_LOG_END="false")
    prefix = env["VIPSTREAM_TOPICS__PREFIX"]
    history = simulate_history(
        env,
        tmp_path / "history.jsonl",
        customers=CUSTOMERS,
        days=120,
        seed=31,
        start="2025-06-02T00:00:00Z",
    )
    lines = sum(1 for line in history.read_bytes().splitlines() if line.strip())
    first = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        first.wait_healthy(timeout=90)
        cli(["replay", "--quiet", str(history)], env, timeout=300)
        settle([first], lines)
        before = answers(first)
        judged = [
            c for c, (status, body) in before.items() if status == 200 and body["tier"] != "new"
        ]
        erased = judged[:2]
        assert len(erased) == 2
        result = cli(["erase", *erased, "--wait", "60"], env, timeout=120)
        assert "confirmed" in result.stderr
        for customer in erased:
            assert first.get(f"/customers/{customer}")[0] == 404
        assert cli(["erase", ""], env, check=False).returncode == 2  # not a customer id
    finally:
        first.stop()

    tiers = last_values(broker.bootstrap, f"{prefix}customer-tiers")
    preferences = last_values(broker.bootstrap, f"{prefix}contact-preferences")
    for customer in erased:
        assert tiers[customer.encode()] is None  # the record's tombstone is the latest
        assert preferences[customer.encode()] is None
    kept = [c for c in judged if c not in erased]
    assert all(tiers[c.encode()] is not None for c in kept)

    # a new worker process rebuilds the state from the changelog, then the whole
    # history is produced again (a replay of older input)
    second = Worker(env, tmp_path / "w2", tmp_path / "w2.log").start()
    try:
        second.wait_healthy(timeout=90)
        for customer in erased:
            assert second.get(f"/customers/{customer}")[0] == 404
        cli(["replay", "--quiet", str(history)], env, timeout=300)
        settle([second], lines)
        after = answers(second)
        dropped = second.metric("vipstream_events_erased_total")
    finally:
        second.stop()
    for customer in erased:
        assert after[customer][0] == 404
    assert dropped > 0
    for customer in kept:  # the replay is all duplicates for everybody else
        assert after[customer][1]["tier"] == before[customer][1]["tier"]
        assert after[customer][1]["lifetime_revenue"] == before[customer][1]["lifetime_revenue"]
