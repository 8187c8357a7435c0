"""processing_guarantee = "exactly_once" on Apache Kafka (agents/kafka/transactions.py):
a deposed owner is fenced and none of its uncommitted work lands, and nothing of an
aborted transaction reaches the state or a read_committed reader. The kill -9 test of
both guarantees is in test_crash_and_rebalance.py; the embedded broker's refusal in
tests/e2e/test_cli.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.faust_port.aiokafka_client import force_metadata_update
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import group_lag, read_outputs, settings_for
from tests.integration.outcome import OUTPUTS, outcome
from tests.oracle import check_figures, figures_of_file
from tests.support import Worker, cli, isolated_env, simulate_history, wait_for

pytestmark = pytest.mark.integration

WINDOW_DAYS = 60


def exactly_once_env(broker: RunningBroker) -> dict[str, str]:
    return isolated_env(
        broker.url,
        VIPSTREAM_PROCESSING_GUARANTEE="exactly_once",
        VIPSTREAM_VALUE__WINDOW_DAYS=str(WINDOW_DAYS),
    )


def history(env: dict[str, str], path: Path, customers: int, seed: int) -> tuple[dict, int]:
    simulate_history(
        env, path, customers=customers, days=120, seed=seed, start="2026-01-05T00:00:00Z"
    )
    cli(["replay", "--quiet", str(path)], env)
    return figures_of_file(path)


def consumed(worker: Worker) -> float:
    try:
        return worker.metric("vipstream_events_consumed_total")
    except OSError:
        return 0.0


def test_a_paused_owner_is_fenced_and_none_of_its_work_lands(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """The old owner stops (SIGSTOP: a long GC pause, a frozen VM) mid-stream with work
    applied but not committed, longer than its session; a new worker takes every
    partition over and finishes the input. When the old one wakes up, its next commit is
    fenced: its outputs, state writes and offsets never become visible, so every output
    is there exactly once, every figure is exact, and no committed offset moves back.

    The history arrives in two halves: the old owner processes and commits the first
    (days closed and tiered), then is paused while it applies the second, with a commit
    interval long enough that its work since the last commit is certainly pending."""
    env = exactly_once_env(broker)
    path = tmp_path / "history.jsonl"
    simulate_history(env, path, customers=600, days=120, seed=21, start="2026-01-05T00:00:00Z")
    expected, _ = figures_of_file(path)
    lines = path.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(lines[: len(lines) // 2]))
    second.write_bytes(b"".join(lines[len(lines) // 2 :]))
    cli(["replay", "--quiet", str(first)], env)
    slow = {**env, "VIPSTREAM_KAFKA__COMMIT_INTERVAL_SECONDS": "10"}
    old = Worker(slow, tmp_path / "old", tmp_path / "old.log").start()
    new = Worker(env, tmp_path / "new", tmp_path / "new.log")
    try:
        old.wait_healthy()
        wait_for(
            lambda: not group_lag(env) and old.get("/tiers")[0] == 200,
            timeout=120,
            what="the first half committed and tiered",
        )
        before_second = consumed(old)
        cli(["replay", "--quiet", str(second)], env)
        wait_for(
            lambda: consumed(old) > before_second + 100,
            timeout=60,
            what="the second half being applied",
            interval=0.05,
        )
        assert old.process is not None
        os.killpg(old.process.pid, signal.SIGSTOP)
        time.sleep(float(env["VIPSTREAM_KAFKA__SESSION_TIMEOUT_SECONDS"]) + 5)
        new.start().wait_healthy()
        before = outcome(env, new, sorted(expected))
        assert not group_lag(env)
        os.killpg(old.process.pid, signal.SIGCONT)
        wait_for(
            lambda: "fenced by a newer owner" in old.log_path.read_text(),
            timeout=60,
            what="the old owner to learn it was fenced",
        )
        stopped = old.process
        assert stopped is not None
        wait_for(lambda: stopped.poll() is not None, timeout=60, what="the old one to stop")
        assert not group_lag(env), "a committed offset moved back"
        # its rejoin and leaving made the group rebalance: the new one owns all again
        customer = sorted(expected)[0]
        wait_for(
            lambda: new.get(f"/customers/{customer}")[0] == 200 and not group_lag(env),
            timeout=90,
            what="the new owner serving again",
        )
        after = outcome(env, new, sorted(expected))
    finally:
        new.stop()
        old.kill()
    check_figures(expected, after.customers, WINDOW_DAYS)
    assert after.repeated == 0
    after.assert_same(before)


def test_recovery_and_readers_skip_an_aborted_transaction(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """A transaction that wrote a wrong state for a customer into the changelog and a
    forged tier change, then aborted, at the end of the logs: a worker recovering from
    the changelog does not apply the state (and does not wait for a record beyond the
    abort marker), and a read_committed reader does not see the tier change."""
    env = exactly_once_env(broker)
    expected, _ = history(env, tmp_path / "history.jsonl", customers=150, seed=22)
    first = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        first.wait_healthy()
        reference = outcome(env, first, sorted(expected))
    finally:
        assert first.stop() == 0
    settings = settings_for(env)
    changelog = f"{settings.app_id}-customer_state-changelog"
    states = asyncio.run(last_records(settings.bootstrap_servers, changelog))
    customers = sorted(k for k in states if k.decode() in expected)
    victim, other = customers[0], customers[-1]
    forged = {"event_id": "forged-in-an-aborted-transaction", "customer_id": victim.decode()}
    asyncio.run(
        abort_transaction(
            settings.bootstrap_servers,
            [
                (changelog, states[victim][0], victim, states[other][1]),
                (settings.topics.name("tier_changes"), 0, victim, orjson.dumps(forged)),
            ],
        )
    )
    second = Worker(env, tmp_path / "w2", tmp_path / "w2.log").start()
    try:
        second.wait_healthy(timeout=90)
        recovered = outcome(env, second, sorted(expected))
    finally:
        second.stop()
    check_figures(expected, recovered.customers, WINDOW_DAYS)
    assert recovered.customers == reference.customers
    recovered.assert_same(reference)
    everything = read_outputs(env, OUTPUTS, committed=False)["tier-changes"]
    assert forged["event_id"] in {e["event_id"] for e in everything}  # it was written


async def last_records(bootstrap: list[str], topic: str) -> dict[bytes, tuple[int, bytes]]:
    """key -> (partition, value) of the last committed record of each key."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await force_metadata_update(consumer)
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        found: dict[bytes, tuple[int, bytes]] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    if record.key is not None and record.value is not None:
                        found[record.key] = (tp.partition, record.value)
        return found
    finally:
        await consumer.stop()


async def abort_transaction(
    bootstrap: list[str], records: list[tuple[str, int, bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="a-forger")
    await producer.start()
    try:
        await producer.begin_transaction()
        for topic, partition, key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
        await producer.abort_transaction()
    finally:
        await producer.stop()
