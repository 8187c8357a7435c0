"""Failures only a real Apache Kafka cluster can have: three KRaft nodes on loopback,
every topic replicated three times with two in sync required (agents/tools
/kafka_broker.py KafkaCluster).

One simulated history is processed by one worker left alone (the reference), then
again while the leader of its input and changelog partitions is killed (kill -9) and
brought back, and again while every broker is stopped and started on its data. Each
time every customer's figures equal the independent computation exactly and the output
topics hold the reference's events (same ids, each copy identical).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agents.tools.kafka_broker import KafkaCluster, KafkaNode
from tests.integration.outcome import Outcome, outcome
from tests.oracle import Expected, check_figures, figures_of_file
from tests.support import Worker, cli, isolated_env, simulate_history, wait_for

pytestmark = pytest.mark.integration

WINDOW_DAYS = 60
CLUSTER_ENV = {
    "VIPSTREAM_VALUE__WINDOW_DAYS": str(WINDOW_DAYS),
    "VIPSTREAM_KAFKA__REPLICATION_FACTOR": "3",
    "VIPSTREAM_KAFKA__EXACT_LOG_END": "false",  # Apache Kafka lists log ends right
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    with KafkaCluster(3) as running:
        yield running


class Reference:
    def __init__(self, path: Path, expected: dict[str, Expected], outcome: Outcome) -> None:
        self.path = path
        self.expected = expected
        self.outcome = outcome
        self.customers = sorted(expected)


@pytest.fixture(scope="module")
def reference(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    work = tmp_path_factory.mktemp("cluster-reference")
    env = isolated_env(cluster.url, **CLUSTER_ENV)
    path = simulate_history(
        env, work / "history.jsonl", customers=400, days=120, seed=19, start="2026-01-05T00:00:00Z"
    )
    expected, _ = figures_of_file(path)
    cli(["replay", "--quiet", str(path)], env)
    worker = Worker(env, work / "w", work / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        result = outcome(env, worker, sorted(expected))
    finally:
        worker.stop()
    assert sum(len(ids) for ids in result.outputs.values()) > 300
    return Reference(path, expected, result)


def consumed(worker: Worker) -> float:
    try:
        return worker.metric("vipstream_events_consumed_total")
    except OSError:
        return 0.0


def leaders(cluster: KafkaCluster, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the node id leading it."""

    async def run() -> dict[tuple[str, int], int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        await admin.start()
        try:
            found = {}
            for described in await admin.describe_topics(topics):
                for p in described["partitions"]:
                    found[(described["topic"], p["partition"])] = p["leader"]
            return found
        finally:
            await admin.close()

    return asyncio.run(run())


def node(cluster: KafkaCluster, node_id: int) -> KafkaNode:
    return next(n for n in cluster.nodes if n.node_id == node_id)


def test_killing_the_leader_of_input_and_changelog_partitions(
    cluster: KafkaCluster, reference: Reference, tmp_path: Path
) -> None:
    env = isolated_env(cluster.url, **CLUSTER_ENV)
    cli(["replay", "--quiet", str(reference.path)], env)
    total = sum(1 for _ in reference.path.open("rb"))
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        wait_for(lambda: consumed(worker) >= 0.2 * total, timeout=120, what="20% consumed")
        prefix, app = env["VIPSTREAM_TOPICS__PREFIX"], env["VIPSTREAM_APP_ID"]
        changelog = f"{app}-customer_state-changelog"
        inputs = [f"{prefix}{t}" for t in ("calls", "orders", "tickets")]
        led = leaders(cluster, [*inputs, changelog])
        victim = led[(changelog, 0)]
        assert any(led[(t, p)] == victim for t in inputs for p in range(4)), led
        node(cluster, victim).kill()  # kill -9: no controlled shutdown, no handover
        wait_for(lambda: consumed(worker) >= 0.6 * total, timeout=180, what="60% consumed")
        node(cluster, victim).start()  # back on its data, catching up as a follower
        got = outcome(env, worker, reference.customers)
    finally:
        worker.stop()
    check_figures(reference.expected, got.customers, WINDOW_DAYS)
    got.assert_same(reference.outcome)


def test_every_broker_stopped_and_started_again(
    cluster: KafkaCluster, reference: Reference, tmp_path: Path
) -> None:
    env = isolated_env(cluster.url, **CLUSTER_ENV)
    cli(["replay", "--quiet", str(reference.path)], env)
    total = sum(1 for _ in reference.path.open("rb"))
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        wait_for(lambda: consumed(worker) >= 0.3 * total, timeout=120, what="30% consumed")
        cluster.stop()
        wait_for(lambda: worker.get("/healthz")[0] == 503, timeout=60, what="the outage noticed")
        time.sleep(5)
        cluster.start()  # every node on its own data
        worker.wait_healthy(timeout=180)  # reconnected by itself, no restart
        got = outcome(env, worker, reference.customers)
    finally:
        worker.stop()
    check_figures(reference.expected, got.customers, WINDOW_DAYS)
    got.assert_same(reference.outcome)
