"""The benchmark's seeded population (bench/population.py) is what a worker would hold:
a worker started on it recovers every clone, serves each with its own id, and merges a
population whose size and tiers are those of the clones; a stream for the same customers
then goes on from where the templates' history ended, with no late events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agents.tools.simulate_io import produce
from agents.tools.simulator import SimulationConfig, Simulator
from bench import population
from bench.deployment import Deployment
from streams.units import MICROS_PER_DAY, rfc3339
from tests.integration.conftest import RunningBroker
from tests.support import isolated_env, wait_for

pytestmark = pytest.mark.integration

DAY = 86_400.0
CUSTOMERS = 2_000


def test_partition_of_a_clone_is_the_kafka_default_partitioner() -> None:
    from aiokafka.partitioner import murmur2

    for index in range(0, 1_000_000, 997):
        key = population.customer_id(index)
        assert population.murmur2_partition(key, 8) == (murmur2(key) & 0x7FFFFFFF) % 8


def test_a_seeded_population_serves_and_goes_on(broker: RunningBroker, tmp_path: Path) -> None:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__PARTITIONS="8")
    deployment = Deployment.of(env, "seeded", tmp_path)
    settings = deployment.settings()
    history_end = (time.time() // DAY - 3) * DAY
    templates = asyncio.run(
        population.make_templates(settings, 24, history_end=history_end, work=tmp_path)
    )
    seeded = asyncio.run(population.seed(settings, templates, CUSTOMERS))
    assert seeded.records == CUSTOMERS + 8  # every clone, and each partition's progress

    (worker,) = deployment.start(1)
    try:
        deployment.wait_ready(timeout=180)
        assert worker.metric("vipstream_state_recovered_records_total") == seeded.records
        _, tiers = worker.get("/tiers")
        # the population merged from the seeded progress records, not rebuilt from day one
        closed = templates.progress[0].closed_day
        assert closed is not None
        assert tiers["as_of"] == tiers["counts_as_of"] == rfc3339((closed + 1) * MICROS_PER_DAY)
        judged = sum(n for tier, n in seeded.tier_counts.items() if tier != "new")
        assert tiers["population"] == judged
        assert tiers["counts"] == {
            tier: seeded.tier_counts.get(tier, 0)
            for tier in ("vip", "gold", "silver", "bronze", "new")
        }
        for index in (0, 7, CUSTOMERS - 1):
            status, body = worker.get(f"/customers/{population.customer_id(index).decode()}")
            assert status == 200
            assert body["customer_id"] == population.customer_id(index).decode()

        stream = SimulationConfig(
            customers=CUSTOMERS, days=1.0, seed=1, start=population.utc(history_end)
        )
        sent = asyncio.run(produce(settings, Simulator(stream)))
        wait_for(
            lambda: worker.metric("vipstream_events_consumed_total") >= sent,
            timeout=180,
            what="the stream consumed",
        )
        assert worker.metric("vipstream_events_applied_total") == sent  # none late
        wait_for(  # no one new (the gauge is refreshed every 5 s)
            lambda: worker.metric("vipstream_state_customers") == CUSTOMERS,
            timeout=30,
            what="the customers held",
        )
    finally:
        deployment.stop()
