"""Poison on every input topic, through the real broker, interleaved with valid events.

Each poison message gets exactly one dead letter with the reason it was built to get
(tests/poison.py), `vipstream_events_invalid_total{topic,reason}` agrees, nothing is a
processing error, the worker stays alive and healthy, and every valid event around the
poison is applied: per-customer figures equal an independent computation
(tests/oracle.py), and only real copies count as duplicates.

One worker owns eight partitions here: the messages land on all of them, and all are
consumed.
"""

from __future__ import annotations

import asyncio
import itertools
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from agents.topics import INPUT_EVENT_TYPES
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import produce, read_topic, settings_for
from tests.oracle import expected_figures
from tests.poison import Message, batches, edge_cases
from tests.support import Worker, isolated_env, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 8


@dataclass
class Target:
    env: dict[str, str]
    worker: Worker

    def name(self, topic_key: str) -> str:
        return settings_for(self.env).topics.name(topic_key)


@pytest.fixture(scope="module")
def target(broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__PARTITIONS=str(PARTITIONS))
    path = tmp_path_factory.mktemp("poison")
    worker = Worker(env, path / "w1", path / "w1.log").start().wait_healthy()
    allow_large_messages(env)
    try:
        yield Target(env, worker)
    finally:
        worker.kill()


def allow_large_messages(env: dict[str, str]) -> None:
    """Let the input topics take messages of up to 4 MiB (Apache Kafka's default is about
    1 MB, and the poison holds larger ones): a deployment may allow them, and vipstream
    must dead-letter what is above its own `max_event_bytes`."""
    settings = settings_for(env)

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        settings.topics.name(key),
                        configs={"max.message.bytes": str(4 * 1024 * 1024)},
                    )
                    for key in INPUT_EVENT_TYPES
                ]
            )
        finally:
            await admin.close()

    asyncio.run(run())


def test_edge_cases_on_every_input_topic(target: Target) -> None:
    send_and_check(target, edge_cases("edge"))


_runs = itertools.count()


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,  # the same batches on every run
    database=None,
    phases=[Phase.generate],  # no shrinking through a broker
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_generated_poison_batches(target: Target, data: st.DataObject) -> None:
    batch = data.draw(batches(f"gen{next(_runs)}", size=(40, 80)), label="batch")
    send_and_check(target, batch)


def test_one_worker_owns_every_partition(target: Target) -> None:
    """Valid events for enough customers to land on all eight partitions: the one worker
    consumes and applies every one of them."""
    sent = [
        Message(
            "orders",
            f"part-{i}".encode(),
            orjson.dumps(
                {
                    "event_type": "order",
                    "event_id": "o1",
                    "customer_id": f"part-{i}",
                    "occurred_at": "2026-03-02T10:00:00Z",
                    "kind": "purchase",
                    "amount": i + 0.25,
                    "currency": "EUR",
                }
            ),
            None,
            "valid",
        )
        for i in range(64)
    ]
    landed = send_and_check(target, sent)
    assert {partition for partition, _ in landed} == set(range(PARTITIONS))


# -- checking one batch --------------------------------------------------------------------
def send_and_check(target: Target, sent: list[Message]) -> list[tuple[int, int]]:
    worker, env = target.worker, target.env
    before = counts(worker)
    landed = produce(
        env,
        [(m.topic, m.key, m.value) for m in sent],
        timestamps_ms=[m.timestamp_ms for m in sent],
    )
    wait_for(
        lambda: counts(worker)["consumed"] >= before["consumed"] + len(sent),
        timeout=60,
        what=f"{len(sent)} messages consumed",
    )
    poison = {
        (target.name(m.topic), partition, offset): m
        for m, (partition, offset) in zip(sent, landed, strict=True)
        if m.reason is not None
    }

    # exactly one dead letter per poison message, with the reason it was built to get
    def letters_of_batch() -> tuple[list[dict[str, Any]]] | None:
        found = [
            letter
            for letter in read_topic(env, "dead_letters", idle=1.0)
            if (letter["source_topic"], letter["partition"], letter["offset"]) in poison
        ]
        return (found,) if len(found) >= len(poison) else None

    (letters,) = wait_for(letters_of_batch, timeout=60, what=f"{len(poison)} dead letters")
    places = [(d["source_topic"], d["partition"], d["offset"]) for d in letters]
    assert len(places) == len(set(places)) == len(poison)
    for letter in letters:
        message = poison[(letter["source_topic"], letter["partition"], letter["offset"])]
        assert letter["reason"] == message.reason, (message, letter["detail"])
        assert letter["payload_bytes"] == len(message.value or b"")

    after = counts(worker)
    expected_invalid = Counter((target.name(m.topic), m.reason) for m in poison.values())
    assert after["invalid"] - before["invalid"] == expected_invalid
    assert after["processing_errors"] == 0

    # every valid event applied once, copies counted as duplicates, figures exact
    valid = [m for m in sent if m.reason is None]
    expected, distinct = expected_figures(m.value or b"" for m in valid)
    assert after["applied"] - before["applied"] == distinct
    assert after["duplicate"] - before["duplicate"] == len(valid) - distinct
    for customer, figures in expected.items():
        status, body = worker.get("/customers/" + urllib.parse.quote(customer, safe=""))
        assert status == 200, (customer, body)
        assert round(body["lifetime_revenue"] * 1e6) == figures.revenue, customer
        assert round(body["lifetime_service_cost"] * 1e6) == figures.service_cost, customer
        assert body["lifetime_contacts"] == figures.contacts, customer

    assert worker.process is not None
    assert worker.process.poll() is None, worker.log()
    assert worker.get("/healthz") == (200, {"status": "ok", "detail": "consuming"})
    # Faust restarts a crashed agent and the worker looks healthy, but the message that
    # crashed it is lost: the log is the only trace
    assert "Crashed reason" not in worker.log_path.read_text(errors="replace")
    return landed


def counts(worker: Worker) -> dict[str, Any]:
    """Totals of the worker's ingest counters; `invalid` per (topic, reason)."""
    status, text = worker.get("/metrics")
    assert status == 200
    totals: dict[str, Any] = {
        "consumed": 0.0,
        "applied": 0.0,
        "duplicate": 0.0,
        "processing_errors": 0.0,
        "invalid": Counter(),
    }
    names = {
        "vipstream_events_consumed_total": "consumed",
        "vipstream_events_applied_total": "applied",
        "vipstream_events_duplicate_total": "duplicate",
        "vipstream_processing_errors_total": "processing_errors",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vipstream_events_invalid_total":
                place = (sample.labels["topic"], sample.labels["reason"])
                totals["invalid"][place] += int(sample.value)
            elif sample.name in names:
                totals[names[sample.name]] += sample.value
    return totals
