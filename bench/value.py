"""Value-engine figures measured in-process (no broker): state bytes per customer, and the
cost of re-tiering a population of 1M customers after the distribution moves.

Re-tiering: one million judged customers with log-normal scores, tiered against day D's
cuts. On day D+1 one customer in a hundred gets a new score and 2% new, better customers
join, so every cut moves. Measured in one run:

- baseline: what a naive engine does, deciding the tier of every customer again;
- vipstream: update the index for the re-valued customers, merge the summary, find the
  sketch buckets whose customers can cross a threshold (`recheck_keys`), and decide only
  for those and the re-valued ones.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

import orjson

from agents.tools.simulator import SimulationConfig, Simulator
from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from schemas.value_config import ClvSettings, TieringSettings, ValueSettings
from streams.codec import encode_state
from streams.customer import CustomerState, apply_event
from streams.ledger import PartitionLedger
from streams.tiers import decide, make_cuts, recheck_keys
from streams.units import day_of
from streams.valuation import ValueRules, evaluate


def state_size(customers: int = 2000, days: float = 365) -> dict[str, Any]:
    """Encoded state bytes per customer after a simulated history, valued as of its end."""
    ingest, costs = IngestSettings(), CostSettings()
    rules = ValueRules(ValueSettings(), ClvSettings(), TieringSettings())
    states: dict[str, CustomerState] = {}
    events = 0
    latest = 0
    for event in _events(Simulator(SimulationConfig(customers=customers, days=days, seed=3))):
        state, _ = apply_event(states.get(event.customer_id), event, ingest=ingest, costs=costs)
        states[event.customer_id] = state
        latest = max(latest, state.last_event_at)
        events += 1
    day = day_of(latest)
    for state in states.values():
        evaluate(state, day, lifetime_years=3.0, rules=rules)
    sizes = sorted(len(encode_state(s)) for s in states.values())
    return {
        "customers": len(sizes),
        "events": events,
        "window_days": rules.value.window_days,
        "mean_bytes": sum(sizes) / len(sizes),
        "p99_bytes": sizes[int(len(sizes) * 0.99)],
        "max_bytes": sizes[-1],
    }


def _events(simulator: Simulator) -> Iterable[Any]:
    for message in simulator:
        record = orjson.loads(message.value)
        yield INPUT_MODELS[record["event_type"]].model_validate(record)


def retier_million(customers: int = 1_000_000, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    settings = TieringSettings(min_dwell_days=0)
    ledger = PartitionLedger(0, settings.sketch_relative_accuracy)
    keys = [f"c{i:07d}".encode() for i in range(customers)]
    started = time.perf_counter()
    for key in keys:
        ledger.index(key, rng.lognormvariate(0.5, 1.2))
    index_seconds = time.perf_counter() - started

    day0 = make_cuts(ledger.summary, settings, 0)
    tiers = {k: day0.raw_tier(day0.position(s)) for k, s in ledger.scores.items()}
    tiers_day0 = dict(tiers)

    # day 1: 1% re-valued, 2% new customers with better scores
    revalued = rng.sample(keys, customers // 100)
    newcomers = [f"n{i:07d}".encode() for i in range(customers // 50)]
    started = time.perf_counter()
    for key in revalued:
        ledger.index(key, rng.lognormvariate(0.5, 1.2))
    for key in newcomers:
        ledger.index(key, rng.lognormvariate(1.5, 1.2))
        tiers[key] = tiers_day0[key] = "new"
    day1 = make_cuts(ledger.summary, settings, 1)
    moved = recheck_keys(day0, day1, ledger.members)
    candidates = set(revalued) | set(newcomers) | ledger.members_of(moved)
    changed = _decide(candidates, ledger.scores, tiers, day1, settings)
    engine_seconds = time.perf_counter() - started

    started = time.perf_counter()
    baseline_changed = _decide(ledger.scores, ledger.scores, tiers_day0, day1, settings)
    baseline_seconds = time.perf_counter() - started
    assert changed == baseline_changed, "band re-check must find every change a full pass finds"
    return {
        "customers": len(ledger.scores),
        "index_build_seconds": index_seconds,
        "candidates": len(candidates),
        "tier_changes": changed,
        "engine_seconds": engine_seconds,
        "full_pass_seconds": baseline_seconds,
        "engine_over_full_pass": engine_seconds / baseline_seconds,
    }


def _decide(
    keys: Iterable[bytes],
    scores: dict[bytes, float],
    tiers: dict[bytes, str],
    cuts: Any,
    settings: TieringSettings,
) -> int:
    changed = 0
    for key in keys:
        previous = tiers[key]
        decision = decide(
            previous=previous,
            days_in_tier=30,
            score=scores[key],
            is_new=False,
            cuts=cuts,
            settings=settings,
            score_kind="ratio",
        )
        if decision.tier != previous:
            changed += 1
            tiers[key] = decision.tier
    return changed


if __name__ == "__main__":
    import json

    print(json.dumps({"state": state_size(), "retier": retier_million()}, indent=2))
