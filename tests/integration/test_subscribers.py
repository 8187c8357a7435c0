"""A new subscriber's start on Apache Kafka (README "For subscribers"): after a simulated
year and the log cleaner's compaction of `customer-tiers`, the README's own aiokafka
example (run here as written) learns every customer's tier, equal to what
`/customers/{id}` answers; following `tier-changes` from where it stopped keeps it equal
after more days of events; `vipstream export tiers` writes the same table."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import RunningBroker
from tests.integration.test_compaction import count_records, create_compacted
from tests.support import ROOT, Worker, cli, isolated_env, settle, simulate_history, wait_for

pytestmark = pytest.mark.integration

CUSTOMERS = 300


def readme_example() -> dict[str, Any]:
    """The README's subscriber example, executed: its functions by name."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: subscriber -->\n```python\n(.*?)\n```", text, re.S)
    assert found is not None, "README lost its subscriber example"
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(found.group(1), "README.md", "exec"), namespace)  # our own README
    return namespace


def history_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def assert_tiers_match(worker: Worker, tiers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Every customer's tier on /customers equals the subscriber's; the judged ones are
    all in its table and nobody else is. Counts per tier."""
    counts: dict[str, int] = {}
    for n in range(CUSTOMERS):
        customer = f"C{n:07d}"
        status, body = worker.get(f"/customers/{customer}")
        if status == 404:  # the simulation never produced this customer
            assert customer not in tiers
            continue
        assert status == 200
        if body["tier"] == "new":
            assert customer not in tiers, (customer, tiers.get(customer))
        else:
            assert tiers[customer]["tier"] == body["tier"], customer
        counts[body["tier"]] = counts.get(body["tier"], 0) + 1
    return counts


def test_a_new_subscriber_learns_every_tier_from_the_compacted_snapshot(
    broker: RunningBroker, tmp_path: Path
) -> None:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__EXACT_LOG_END="false")
    prefix = env["VIPSTREAM_TOPICS__PREFIX"]
    tiers_topic, changes_topic = f"{prefix}customer-tiers", f"{prefix}tier-changes"
    create_compacted(broker, [tiers_topic])  # the log cleaner acts within seconds
    year = simulate_history(
        env,
        tmp_path / "year.jsonl",
        customers=CUSTOMERS,
        days=365,
        seed=25,
        start="2025-01-06T00:00:00Z",
    )
    worker = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        worker.wait_healthy(timeout=90)
        cli(["replay", "--quiet", str(year)], env, timeout=600)
        settle([worker], history_lines(year))
        changes, changes_end = count_records(broker, changes_topic)

        def compacted() -> bool:
            kept, end = count_records(broker, tiers_topic)
            return kept < end / 3

        wait_for(compacted, timeout=120, what="customer-tiers compacted", interval=2.0)
        kept, tiers_end = count_records(broker, tiers_topic)
        example = readme_example()
        tiers, follow_from = asyncio.run(
            example["current_tiers"](broker.bootstrap, tiers_topic, changes_topic)
        )
        counts = assert_tiers_match(worker, tiers)
        assert len(tiers) > CUSTOMERS / 2
        print(
            f"\nafter a simulated year of {CUSTOMERS} customers: customer-tiers "
            f"{tiers_end} records written, {kept} kept after compaction "
            f"({len(tiers)} customers); tier-changes {changes_end} records; tiers {counts}"
        )

        # more days of events: the subscriber follows tier-changes from where it stopped
        later = simulate_history(
            env,
            tmp_path / "later.jsonl",
            customers=CUSTOMERS,
            days=20,
            seed=26,
            start="2026-01-06T00:00:00Z",
        )
        cli(["replay", "--quiet", str(later)], env, timeout=600)
        settle([worker], history_lines(year) + history_lines(later))

        def change(record: Any) -> None:
            event = orjson.loads(record.value)
            known = tiers.get(event["customer_id"])
            if known is None or event["as_of"] > known["as_of"]:
                tiers[event["customer_id"]] = {**(known or {}), **event}

        async def follow() -> Any:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                changes_topic,
                bootstrap_servers=broker.bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await consumer.start()
            tps = example["partitions_of"](consumer, changes_topic)
            consumer.unsubscribe()
            try:
                return await example["read_to_end"](consumer, tps, change, start=follow_from)
            finally:
                await consumer.stop()

        moved = asyncio.run(follow())
        assert sum(moved.values()) > sum(follow_from.values())  # the new days changed tiers
        assert_tiers_match(worker, tiers)

        # the export reads the same table (no worker needed, but one is running)
        out = tmp_path / "tiers.jsonl"
        cli(["export", "tiers", "--format", "jsonl", "-o", str(out), "--quiet"], env)
        exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert [r["customer_id"] for r in exported] == sorted(tiers)
        for record in exported:
            assert record["tier"] == tiers[record["customer_id"]]["tier"]
        result = cli(["export", "tiers", "--format", "csv"], env)
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["customer_id"] for r in rows] == sorted(tiers)
        assert {r["tier"] for r in rows} <= {"vip", "gold", "silver", "bronze"}
        assert f"{len(rows):,} customers written" in result.stderr
    finally:
        worker.stop()
    assert changes == changes_end  # tier-changes is not compacted
