"""The value engine on the real broker: a few thousand customers replayed through the CLI.

Then every customer's windowed and lifetime figures equal an independent computation,
tiers match the percentile bands computed from those figures (away from the boundaries),
tier-change events validate against the published JSON Schema, and two workers agree with
one: the same cut points, the same tiers, the same tier-change events (ids included).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas.export import all_schemas
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import read_topic
from tests.oracle import check_figures, day_number, figures_of_file, ratio
from tests.support import Worker, cli, isolated_env, settle, simulate_history

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]

WINDOW_DAYS = 60
VALUE_ENV = {
    "VIPSTREAM_VALUE__WINDOW_DAYS": str(WINDOW_DAYS),
    # no hysteresis, so the tiers are exactly the percentile bands of the day
    "VIPSTREAM_TIERING__PERCENTILE_MARGIN_POINTS": "0",
    "VIPSTREAM_TIERING__MIN_DWELL_DAYS": "0",
}
CUTS = {"vip": 95.0, "gold": 80.0, "silver": 50.0}


class Run:
    """One replayed history: its environment and the independent expectation."""

    def __init__(self, env: dict[str, str], path: Path, sent: int) -> None:
        self.env = env
        self.path = path
        self.sent = sent
        self.expected, self.distinct = figures_of_file(path)
        self.results: dict[str, Any] = {}


@pytest.fixture(scope="module")
def run(broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> Run:
    env = isolated_env(broker.url, **VALUE_ENV)
    path = simulate_history(
        env,
        tmp_path_factory.mktemp("value") / "history.jsonl",
        customers=1000,  # 2,000 until 2026-12-07 (CI's time)
        days=120,
        seed=33,
        start="2026-01-05T00:00:00Z",
    )
    replay = cli(["replay", "--quiet", str(path)], env)
    sent = int(replay.stderr.split("replayed ")[1].split(" ")[0].replace(",", ""))
    return Run(env, path, sent)


def test_one_worker_figures_and_tiers(run: Run, tmp_path: Path) -> None:
    worker = Worker(run.env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        worker.wait_healthy()
        report = settle([worker], run.sent)
        closed = day_number(datetime.fromisoformat(report["as_of"].replace("Z", "+00:00"))) - 1
        latest = max(e.latest for e in run.expected.values() if e.latest is not None)
        assert closed >= day_number(latest) - 2, "the last days were not closed"
        customers = {c: worker.get(f"/customers/{c}") for c in run.expected}
        run.results["one"] = {"report": report, "customers": customers}
    finally:
        worker.stop()
    check_figures(run.expected, customers, WINDOW_DAYS)
    check_tiers(run, customers, closed)
    assert report["population"] == sum(
        1 for e in run.expected.values() if closed - e.first_day() + 1 >= 30
    )


def check_tiers(run: Run, customers: dict[str, tuple[int, dict[str, Any]]], day: int) -> None:
    judged = {c: e for c, e in run.expected.items() if day - e.first_day() + 1 >= 30}
    scores = {c: ratio(*e.window(day, WINDOW_DAYS)) for c, e in judged.items()}
    ordered = sorted(scores.values())
    compared = wrong = 0
    mistakes = []
    for customer in run.expected:
        body = customers[customer][1]
        if customer not in judged:
            assert body["tier"] == "new", customer
            continue
        assert body["score"] == pytest.approx(scores[customer], rel=1e-12), customer
        percentile = _midrank(ordered, scores[customer])
        if any(abs(percentile - cut) < 2.0 for cut in CUTS.values()):
            continue  # near a boundary the sketch's 1 % accuracy may decide either way
        compared += 1
        tier = next((t for t, cut in CUTS.items() if percentile >= cut), "bronze")
        if body["tier"] != tier:
            wrong += 1
            mistakes.append((customer, percentile, tier, body["tier"]))
    assert compared > 0.8 * len(judged)
    assert wrong == 0, f"{wrong} of {compared} tiers differ, e.g. {mistakes[:5]}"


def _midrank(ordered: list[float], value: float) -> float:
    below = sum(1 for v in ordered if v < value)
    equal = sum(1 for v in ordered if v == value)
    return 100.0 * (below + equal / 2.0) / len(ordered)


def test_two_workers_agree_with_one(run: Run, tmp_path: Path) -> None:
    if "one" not in run.results:
        pytest.fail("the one-worker run must come first (it failed or was deselected)")
    env = {**run.env, "VIPSTREAM_APP_ID": run.env["VIPSTREAM_APP_ID"] + "-two"}
    workers = [Worker(env, tmp_path / n, tmp_path / f"{n}.log").start() for n in ("a", "b")]
    try:
        for worker in workers:
            worker.wait_healthy()
        report = settle(workers, run.sent)
        assert all(w.metric("vipstream_events_applied_total") > 0 for w in workers)
        one = run.results["one"]
        assert report == one["report"], "the merged distribution differs from one worker's"
        for customer in run.expected:
            _, body = workers[hash(customer) % 2].get(f"/customers/{customer}")
            _, single = one["customers"][customer]
            assert (body["tier"], body["score"], body["tier_since"]) == (
                single["tier"],
                single["score"],
                single["tier_since"],
            ), customer
    finally:
        for worker in workers:
            worker.stop()
    check_tier_change_events(run)


def check_tier_change_events(run: Run) -> None:
    """Both runs wrote their tier changes to the same topic: each event twice, identical
    but for emitted_at, and every one valid against the published schema."""
    events = read_topic(run.env, "tier_changes", idle=3.0)
    assert events, "no tier changes at all"
    validator = jsonschema.Draft202012Validator(all_schemas()["tier_change.schema.json"])
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        validator.validate(json.loads(json.dumps(event)))
        by_id[event["event_id"]].append({k: v for k, v in event.items() if k != "emitted_at"})
    counts = {len(copies) for copies in by_id.values()}
    assert counts == {2}, f"tier changes not emitted once per run: {counts}"
    for copies in by_id.values():
        assert copies[0] == copies[1]
    reasons = [e["reason"] for e in events]
    assert any(" reached the " in r for r in reasons)
    assert any(r.startswith("judged for the first time") for r in reasons)
