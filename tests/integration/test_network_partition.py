"""A network partition between one of two workers and Apache Kafka, longer than the
session timeout, made with a network namespace (iproute2: `ip netns`, a veth pair) and,
while the partition lasts, a route inside the namespace that sends the broker's packets
to a gateway that does not exist: they vanish, as in a real partition (no refusal, no
error, just silence until timeouts).

With processing_guarantee = "exactly_once": the cut-off worker's partitions move to the
other one, which fences its transactions; when the link returns, the cut-off worker's
late commits are refused (ProducerFenced) and it stops, and restarted as its supervisor
would, it rejoins the group and takes a share again. Afterwards every figure equals the
independent computation, the outputs equal an undisturbed run's with no repeat, and no
committed offset of the group ever moved back.

At least once, the same partition can let the cut-off worker's in-flight state writes
land after the new owner's (README "Known gaps"): that is why this runs exactly once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.tools.kafka_broker import KafkaNode
from tests.integration.kafka import settings_for
from tests.integration.outcome import Outcome, outcome
from tests.oracle import check_figures, figures_of_file
from tests.support import Worker, cli, isolated_env, simulate_history, wait_for

pytestmark = pytest.mark.integration

WINDOW_DAYS = 60
NET = 200 + os.getpid() % 50  # 10.NET.x.y: apart from other runs on this machine
HOST_IP, WORKER_IP = f"10.{NET}.7.1", f"10.{NET}.7.2"
NAMESPACE = f"vipstream-{os.getpid()}"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """A network namespace whose only way out is a veth pair to the host."""
    assert os.geteuid() == 0, "network namespaces need root (make test runs as root on CI)"
    host_side, ns_side = f"vsh{os.getpid() % 10000}", f"vsn{os.getpid() % 10000}"
    ip("netns", "add", NAMESPACE)
    try:
        ip("link", "add", host_side, "type", "veth", "peer", "name", ns_side)
        ip("link", "set", ns_side, "netns", NAMESPACE)
        ip("addr", "add", f"{HOST_IP}/24", "dev", host_side)
        ip("link", "set", host_side, "up")
        ip("netns", "exec", NAMESPACE, "ip", "addr", "add", f"{WORKER_IP}/24", "dev", ns_side)
        ip("netns", "exec", NAMESPACE, "ip", "link", "set", ns_side, "up")
        ip("netns", "exec", NAMESPACE, "ip", "link", "set", "lo", "up")
        yield NAMESPACE
    finally:
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=False)
        subprocess.run(["ip", "link", "del", host_side], check=False, capture_output=True)


@pytest.fixture(scope="module")
def kafka(namespace: str) -> Iterator[KafkaNode]:
    """Apache Kafka on the host end of the veth pair, reachable from both sides."""
    with KafkaNode(HOST_IP) as node:
        yield node


PHANTOM = f"10.{NET}.7.99"  # on the veth's subnet, but nobody answers to it


def partitioned(on: bool) -> None:
    """Cut (or restore) the namespace's way to the broker."""
    verb = "add" if on else "del"
    ip("netns", "exec", NAMESPACE, "ip", "route", verb, f"{HOST_IP}/32", "via", PHANTOM)


class CommittedOffsets:
    """Watches the group's committed input offsets; notes any that moved back."""

    def __init__(self, env: dict[str, str]) -> None:
        self._settings = settings_for(env)
        self.seen: dict[tuple[str, int], int] = {}
        self.backwards: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def __enter__(self) -> CommittedOffsets:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _watch(self) -> None:
        settings = self._settings
        topics = [settings.topics.name(k) for k in ("calls", "orders", "tickets")]
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.kafka.partitions)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.app_id,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                for tp in tps:
                    offset = await consumer.committed(tp)
                    if offset is None:
                        continue
                    before = self.seen.get((tp.topic, tp.partition))
                    if before is not None and offset < before:
                        self.backwards.append(f"{tp.topic}[{tp.partition}] {before} -> {offset}")
                    self.seen[(tp.topic, tp.partition)] = max(offset, before or offset)
                await asyncio.sleep(0.5)
        finally:
            await consumer.stop()


def test_a_worker_cut_off_from_the_brokers_rejoins_without_loss(
    kafka: KafkaNode, namespace: str, tmp_path: Path
) -> None:
    env = isolated_env(
        kafka.url,
        VIPSTREAM_VALUE__WINDOW_DAYS=str(WINDOW_DAYS),
        VIPSTREAM_KAFKA__EXACT_LOG_END="false",
        VIPSTREAM_WEB__ADVERTISED_HOST=HOST_IP,
        VIPSTREAM_PROCESSING_GUARANTEE="exactly_once",
    )
    path = simulate_history(
        env, tmp_path / "h.jsonl", customers=400, days=120, seed=23, start="2026-01-05T00:00:00Z"
    )
    expected, _ = figures_of_file(path)

    # the reference: one worker, undisturbed, on topics of its own
    reference = _undisturbed(kafka, path, tmp_path / "reference", sorted(expected))

    here = Worker(env, tmp_path / "here", tmp_path / "here.log")
    there = Worker(
        {**env, "VIPSTREAM_WEB__ADVERTISED_HOST": WORKER_IP},
        tmp_path / "there",
        tmp_path / "there.log",
        host=WORKER_IP,
        prefix=("ip", "netns", "exec", namespace),
    )

    def consumed(worker: Worker) -> float:
        try:
            return worker.metric("vipstream_events_consumed_total")
        except OSError:
            return 0.0

    with CommittedOffsets(env) as watch:
        try:
            here.start().wait_healthy(timeout=90)
            there.start().wait_healthy(timeout=90)
            wait_for(lambda: owned(there), timeout=60, what="the group shared by the two")
            cli(["replay", "--quiet", str(path)], env)  # both read it
            wait_for(lambda: consumed(there) > 200, timeout=120, what="the cut-off one consuming")
            partitioned(True)
            cut_at = consumed(here)
            time.sleep(20)  # > the tests' 6 s session timeout: the group drops it
            taken_over = consumed(here) - cut_at
            assignments = assignments_of(there)
            partitioned(False)
            # with work applied but not committed, its late commit is fenced and it stops
            # (its supervisor starts it again); with none, it simply rejoins
            assert there.process is not None
            wait_for(
                lambda: (
                    there.process.poll() is not None  # type: ignore[union-attr]
                    or assignments_of(there) > assignments
                ),
                timeout=120,
                what="the cut-off worker to rejoin or stop",
            )
            fenced = "fenced by a newer owner" in there.log_path.read_text()
            if there.process.poll() is not None:
                assert fenced, f"the cut-off worker stopped, not fenced:\n{there.log()}"
                there.start()
            there.wait_healthy(timeout=120)
            wait_for(lambda: owned(there), timeout=60, what="the cut-off worker's share")
            got = outcome(env, here, sorted(expected))
            owned_again = owned(there)
        finally:
            partitioned_quietly()
            here.stop()
            there.stop()
    assert taken_over > 0, "the other worker did not take the cut-off one's partitions"
    print(f"the cut-off worker was fenced: {fenced}")
    assert owned_again, "the cut-off worker owns no partition after it rejoined"
    check_figures(expected, got.customers, WINDOW_DAYS)
    got.assert_same(reference)
    assert got.repeated == 0
    assert not watch.backwards, f"committed offsets moved back: {watch.backwards[:5]}"
    assert watch.seen, "no committed offset was seen"


def assignments_of(worker: Worker) -> int:
    """How many assignments the worker has logged (each rebalance it takes part in)."""
    return worker.log_path.read_text(errors="replace").count("partitions assigned:")


def owned(worker: Worker) -> list[str]:
    """The input partitions a worker owns, by its committed-offset gauge."""
    try:
        text = worker.get("/metrics")[1]
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith("vipstream_committed_offset{")]


def partitioned_quietly() -> None:
    subprocess.run(
        ["ip", "netns", "exec", NAMESPACE, "ip", "route", "del", f"{HOST_IP}/32", "via", PHANTOM],
        check=False,
        capture_output=True,
    )


def _undisturbed(kafka: KafkaNode, path: Path, work: Path, customers: list[str]) -> Outcome:
    env = isolated_env(
        kafka.url,
        VIPSTREAM_VALUE__WINDOW_DAYS=str(WINDOW_DAYS),
        VIPSTREAM_KAFKA__EXACT_LOG_END="false",
    )
    cli(["replay", "--quiet", str(path)], env)
    worker = Worker(env, work / "w", work / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        return outcome(env, worker, customers)
    finally:
        worker.stop()
