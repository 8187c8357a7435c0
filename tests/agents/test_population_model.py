"""The population model fitted from the stream (agents/engine/population.py): on the
merged sample of the partitions' buyers at every refit day, the same parameters however
the customers are partitioned, and the predictions on /customers and /tiers."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agents.engine.harness import Harness, run
from agents.engine.population import Population
from agents.metrics import Metrics
from agents.settings import Settings, load_settings
from agents.tools.simulator import SimulationConfig, Simulator
from agents.worker.web import customer_body, tiers_body
from schemas.http import CustomerFigures, TiersReport
from streams.predictive import model_from_json, model_to_json
from streams.valuation import outlook

START = datetime(2025, 1, 6, tzinfo=UTC)


def model_settings(partitions: int, *, churn_rule: str = "model", **prediction: Any) -> Settings:
    return load_settings(
        {
            "app_id": "model",
            "kafka": {"partitions": partitions},
            "prediction": {"min_customers": 100, "min_repeat_buyers": 20, **prediction},
            "care": {"churn_rule": churn_rule},
        }
    )


def history(customers: int = 500, days: int = 150) -> list[tuple[str, bytes]]:
    simulator = Simulator(SimulationConfig(customers=customers, days=days, seed=11, start=START))
    return [(event.topic, event.value) for event in simulator]


@pytest.fixture(scope="module")
def events() -> list[tuple[str, bytes]]:
    return history()


async def fitted(settings: Settings, events: list[tuple[str, bytes]]) -> Harness:
    _, harness = await run(settings, events)
    return harness


async def test_the_model_is_fitted_and_the_same_however_customers_are_partitioned(
    events: list[tuple[str, bytes]],
) -> None:
    """One partition or six: each offers its bottom-k buyers by id hash, the merge keeps
    the global bottom-k, so the sample, the fit and its day are identical."""
    one = (await fitted(model_settings(1), events)).engine.population
    six = (await fitted(model_settings(6), events)).engine.population
    assert one.model is not None
    assert one.model == six.model
    assert one.model.day % 7 == 0  # a refit day
    purchases, spend = one.model.purchases, one.model.spend
    assert purchases.variant == "mbgnbd"
    assert purchases.customers >= 100
    for value in (purchases.r, purchases.alpha, purchases.a, purchases.b, spend.p, spend.q):
        assert math.isfinite(value)
        assert value > 0
    assert one.model_pending is None


async def test_a_smaller_sample_is_a_subset_and_too_few_buyers_wait(
    events: list[tuple[str, bytes]],
) -> None:
    small = (await fitted(model_settings(3, sample_customers=150), events)).engine.population
    assert small.model is not None
    assert small.model.purchases.customers == 150
    waiting = (
        await fitted(model_settings(3, min_customers=5000, sample_customers=5000), events)
    ).engine.population
    assert waiting.model is None
    assert waiting.model_pending is not None
    assert "fewer than 5000" in waiting.model_pending
    disabled = model_settings(3, churn_rule="stages", enabled=False)
    off = (await fitted(disabled, events)).engine.population
    assert off.model is None
    assert off.model_pending is None


async def test_predictions_on_customers_and_the_model_on_tiers(
    events: list[tuple[str, bytes]],
) -> None:
    settings = model_settings(2)
    harness = await fitted(settings, events)
    engine = harness.engine
    latest = engine.latest_day()
    assert latest is not None
    assert latest.model is not None
    report = TiersReport.model_validate(tiers_body(latest, engine, settings))
    assert report.model is not None
    assert report.model.purchases.r == latest.model.purchases.r
    buyers = predicted = 0
    for key in sorted({orjson.loads(value)["customer_id"].encode() for _, value in events}):
        state = harness.store.get(key)
        assert state is not None
        figures = CustomerFigures.model_validate(customer_body(state, key, engine, settings))
        if state.purchases:
            buyers += 1
            assert figures.p_alive is not None
            assert 0 <= figures.p_alive <= 1
            assert figures.expected_purchases_365d is not None
            assert figures.expected_purchases_90d is not None
            assert figures.expected_purchases_90d <= figures.expected_purchases_365d + 1e-9
            predicted += figures.predicted_clv is not None
        else:
            assert figures.p_alive is None
    assert buyers > 100
    assert predicted == buyers


async def test_the_clv_score_is_the_predicted_clv_once_fitted(
    events: list[tuple[str, bytes]],
) -> None:
    """score = "clv": a buyer's score is its predicted CLV under the model in use when it
    was last valued; every customer is valued again the day after each refit."""
    settings = load_settings(
        {
            "app_id": "clv",
            "kafka": {"partitions": 2},
            "value": {"score": "clv"},
            "prediction": {"min_customers": 100, "min_repeat_buyers": 20},
        }
    )
    harness = await fitted(settings, events)
    model = harness.engine.population.model
    assert model is not None
    checked = 0
    for key in sorted({orjson.loads(value)["customer_id"].encode() for _, value in events}):
        state = harness.store.get(key)
        assert state is not None
        if not state.purchases or state.closed_day is None:
            continue
        assert state.closed_day > model.day  # valued again after the last refit
        found = outlook(state, state.closed_day, model, harness.engine.rules)
        assert found is not None
        assert state.score == found[1].clv
        checked += 1
    assert checked > 100


async def test_a_worker_that_starts_again_takes_the_model_in_use(
    events: list[tuple[str, bytes]],
) -> None:
    """The partitions publish the model they closed their last day with; a worker with
    no model yet (it just started) takes it from their messages, instead of serving and
    tiering without one until the next refit day."""
    settings = model_settings(2)
    harness = await fitted(settings, events)
    model = harness.engine.population.model
    assert model is not None
    restarted = Population(settings, harness.engine.bus, Metrics(), time.time)
    assert restarted.model is None
    restarted.maybe_merge()
    assert restarted.model == model
    assert model_from_json(orjson.loads(orjson.dumps(model_to_json(model)))) == model
