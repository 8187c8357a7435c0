"""Proactive care on the real broker.

A hand-written history of customers who each should (or should not) trigger a rule is
replayed through the CLI; the spikes, care tasks and ticket priorities read back with a
plain aiokafka consumer (not the project's code) are exactly the expected ones, and each
validates against the exported JSON Schema. Then a simulated history replayed into two
fresh systems gives the same output ids on every output topic.

Tiers use absolute ratio thresholds here (vip >= 50, gold >= 10, silver >= 1) so the
expected tier of every scenario customer follows from its own figures.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from tests.integration.conftest import RunningBroker
from tests.integration.kafka import read_outputs
from tests.support import Worker, cli, isolated_env, simulate_history, wait_for

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
SCENARIO_ENV = {
    "VIPSTREAM_TIERING__MODE": "absolute",
    "VIPSTREAM_TIERING__ABSOLUTE_VIP": "50",
    "VIPSTREAM_TIERING__ABSOLUTE_GOLD": "10",
    "VIPSTREAM_TIERING__ABSOLUTE_SILVER": "1",
    "VIPSTREAM_TIERING__ABSOLUTE_MARGIN_RELATIVE": "0",
    "VIPSTREAM_TIERING__MIN_DWELL_DAYS": "0",
    # the scenarios below are written for the fixed churn stages
    "VIPSTREAM_CARE__CHURN_RULE": "stages",
}
OUTPUTS = ("care-tasks", "basic-question-spikes", "ticket-priorities", "tier-changes")


class History:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, event_type: str, customer: str, day: float, **fields: Any) -> None:
        self.lines.append(
            {
                "event_type": event_type,
                "event_id": f"{customer}-{len(self.lines)}",
                "customer_id": customer,
                "occurred_at": (DAY0 + timedelta(days=day)).isoformat(),
                **fields,
            }
        )

    def order(self, customer: str, day: float, amount: float, **fields: Any) -> None:
        self.add("order", customer, day, kind="purchase", amount=amount, currency="EUR", **fields)

    def call(self, customer: str, day: float, cost: float = 1.0, **fields: Any) -> None:
        self.add(
            "call",
            customer,
            day,
            channel="phone",
            direction="inbound",
            duration_seconds=120,
            cost=cost,
            **fields,
        )

    def write(self, path: Path) -> Path:
        ordered = sorted(self.lines, key=lambda line: line["occurred_at"])
        path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in ordered))
        return path


def scenario() -> tuple[History, set[tuple[str, str, int]]]:
    """The history and the care tasks it must produce: (customer, kind, day)."""
    h = History()
    expected: set[tuple[str, str, int]] = set()

    # churner: one purchase of 200 (ratio 200: vip once judged on day 29), then silence
    h.order("churner", 0, 200)
    expected |= {("churner", "vip_welcome", 29), ("churner", "churn_risk", 90)}
    expected |= {("churner", "churn_risk", 180)}

    # replenisher: 2 x 30 days of ink on day 0 (runs out on 60, reminder due 53), re-ordered
    # on day 50: supply to day 120, reminded on 113 only; silent after 50: churn on 140.
    # Ratio 10 / 1: gold, no tier task.
    h.order("replenisher", 0, 5, items=[{"sku": "ink", "quantity": 2, "consumption_days": 30}])
    h.order("replenisher", 50, 5, items=[{"sku": "ink", "quantity": 2, "consumption_days": 30}])
    expected |= {("replenisher", "replenishment_reminder", 113)}
    expected |= {("replenisher", "churn_risk", 140)}

    # spiker: one basic question a week, then ten on day 100 (11 in the recent week
    # against 8 in the 56-day baseline). Never bought: bronze, no churn risk.
    for day in range(0, 99, 7):
        h.call("spiker", day, is_basic=True, category="login", resolved=True)
    for i in range(10):
        h.call("spiker", 100 + i / 100, is_basic=True, category="login")
    expected |= {("spiker", "basic_question_training", 100)}

    # unhappy: rated 1 on days 20, 24 (within the 7-day cooldown: suppressed) and 40
    for day in (20, 24, 40):
        h.call("unhappy", day, satisfaction=1)
    expected |= {("unhappy", "satisfaction_followup", 20), ("unhappy", "satisfaction_followup", 40)}

    # optout: would be welcomed as vip and called for churn and a bad rating, but opted out
    h.add("contact_preference", "optout", 0, do_not_call=True)
    h.order("optout", 0, 500)
    h.call("optout", 10, cost=0, satisfaction=2)

    # grower: 100 a month, then 1000 on day 160 (1300 in 90 days against 300): upsell
    for day in range(0, 151, 30):
        h.order("grower", day, 100)
    h.order("grower", 160, 1000)
    expected |= {("grower", "vip_welcome", 29), ("grower", "upsell", 160)}

    # costly: revenue 50, a contact costing 200 on day 10: service-cost review; churn on
    # 90 and 180. Day 90 is within the review's 90-day cooldown (suppressed); on day 180,
    # looked at again for churn, the cost still exceeds the revenue: a second review.
    h.order("costly", 0, 50)
    h.call("costly", 10, cost=200)
    expected |= {("costly", "service_cost_review", 10), ("costly", "churn_risk", 90)}
    expected |= {("costly", "churn_risk", 180), ("costly", "service_cost_review", 180)}

    # fader: vip on day 29 (ratio 600), a contact costing 100 on day 60 (ratio 5): silver
    h.order("fader", 0, 600)
    h.call("fader", 60, cost=100)
    expected |= {("fader", "vip_welcome", 29), ("fader", "vip_retention", 60)}
    expected |= {("fader", "churn_risk", 90), ("fader", "churn_risk", 180)}

    # ticketer: a vip whose ticket is opened on day 100 and reopened on day 101
    h.order("ticketer", 0, 500)
    h.add("ticket", "ticketer", 100, ticket_id="T1", status="opened", cost=0)
    h.add("ticket", "ticketer", 101, ticket_id="T1", status="reopened", cost=0)
    expected |= {("ticketer", "vip_welcome", 29), ("ticketer", "churn_risk", 90)}
    expected |= {("ticketer", "churn_risk", 180)}

    # newbie: first seen with a ticket on day 150: tier new
    h.add("ticket", "newbie", 150, ticket_id="T2", status="opened", cost=0)

    # clock: a free call every ten days, so event time reaches day 200 (days close to 198)
    for day in range(0, 201, 10):
        h.call("clock", day, cost=0)
    return h, expected


def run_until_closed(env: dict[str, str], path: Path, work: Path, through: str) -> Worker:
    """Replay `path` and wait until the worker has tiered through the day `through`."""
    replay = cli(["replay", "--quiet", str(path)], env)
    assert replay.returncode == 0, replay.stderr
    worker = Worker(env, work / "w1", work / "w1.log").start()
    try:
        worker.wait_healthy()
        wait_for(
            lambda: ((worker.get("/tiers")[1] or {}).get("counts_as_of") or "") >= through,
            timeout=240,
            what=f"tiers decided through {through}",
            interval=0.5,
        )
    except BaseException:
        worker.stop()
        raise
    return worker


def day_of(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - DAY0.replace(hour=0)).days


@pytest.mark.both_brokers
def test_scenario_emits_exactly_the_expected_care(broker: RunningBroker, tmp_path: Path) -> None:
    env = isolated_env(broker.url, **SCENARIO_ENV)
    history, expected = scenario()
    path = history.write(tmp_path / "scenario.jsonl")
    through = (DAY0 + timedelta(days=199)).date().isoformat()  # tiered through day 198
    worker = run_until_closed(env, path, tmp_path, through)
    try:
        metrics = worker.metrics()
        suppressed = worker.get("/metrics")[1]
    finally:
        worker.stop()
    outputs = read_outputs(env, OUTPUTS)

    published = Path(__file__).parents[2] / "schemas" / "json"
    for events in outputs.values():
        for event in events:
            schema = orjson.loads((published / f"{event['event_type']}.schema.json").read_bytes())
            jsonschema.Draft202012Validator(schema).validate(event)

    tasks = outputs["care-tasks"]
    got = {(t["customer_id"], t["kind"], day_of(t["as_of"]) - 1) for t in tasks}
    assert got == expected
    assert len({t["task_id"] for t in tasks}) == len(tasks)  # nothing emitted twice
    assert all(t["event_id"] == t["task_id"] for t in tasks)
    by_key = {(t["customer_id"], t["kind"], day_of(t["as_of"]) - 1): t for t in tasks}
    assert by_key[("churner", "churn_risk", 180)]["priority"] == 1  # stage 2, vip
    assert by_key[("churner", "churn_risk", 90)]["priority"] == 1  # kind 2, vip -1
    assert by_key[("unhappy", "satisfaction_followup", 20)]["tier"] == "new"  # judged from 29
    assert by_key[("unhappy", "satisfaction_followup", 20)]["priority"] == 3
    assert by_key[("replenisher", "replenishment_reminder", 113)]["context"]["items"] == [
        {"sku": "ink", "runs_out_on": (DAY0 + timedelta(days=120)).date().isoformat()}
    ]

    (spike,) = outputs["basic-question-spikes"]
    assert (spike["customer_id"], day_of(spike["as_of"]) - 1) == ("spiker", 100)
    assert spike["recent_count"] == 11
    assert spike["top_categories"] == [{"category": "login", "count": 11}]
    assert spike["repeat_solved_share"] == 1.0  # login questions were resolved since day 0
    assert spike["p_value"] < 0.01

    tickets = {
        (t["customer_id"], t["ticket_id"], t["tier"], t["priority"], t["sla_minutes"])
        for t in outputs["ticket-priorities"]
    }
    assert tickets == {
        ("ticketer", "T1", "vip", 1, 30),
        ("ticketer", "T1", "vip", 1, 15),  # reopened: SLA halved
        ("newbie", "T2", "new", 3, 240),
    }

    assert metrics["vipstream_care_tasks_total"] == len(expected)
    assert metrics["vipstream_basic_question_spikes_total"] == 1
    assert (
        'vipstream_care_tasks_suppressed_total{kind="churn_risk",reason="opted_out"} 2.0'
        in suppressed
    )
    assert (
        'vipstream_care_tasks_suppressed_total{kind="vip_welcome",reason="opted_out"} 1.0'
        in suppressed
    )
    assert (
        'vipstream_care_tasks_suppressed_total{kind="satisfaction_followup",reason="cooldown"} 1.0'
        in suppressed
    )


def test_two_fresh_systems_emit_the_same_ids(broker: RunningBroker, tmp_path: Path) -> None:
    base = isolated_env(broker.url)
    path = simulate_history(
        base,
        tmp_path / "history.jsonl",
        customers=300,
        days=150,
        seed=11,
        start="2026-01-05T00:00:00Z",
    )
    through = "2026-06-01"
    runs = []
    for name in ("a", "b"):
        env = isolated_env(broker.url)
        work = tmp_path / name
        work.mkdir()
        worker = run_until_closed(env, path, work, through)
        worker.stop()
        outputs = read_outputs(env, OUTPUTS)
        runs.append(
            {
                topic: Counter(
                    orjson.dumps({k: v for k, v in e.items() if k != "emitted_at"}) for e in events
                )
                for topic, events in outputs.items()
            }
        )
    first, second = runs
    assert sum(len(c) for c in first.values()) > 100, "the history should produce outputs"
    assert first["care-tasks"], "the simulated history should produce care tasks"
    for topic in OUTPUTS:
        # the same events up to the last day both runs tiered
        assert _up_to(first[topic], through) == _up_to(second[topic], through), topic


def _up_to(events: Counter[bytes], through: str) -> Counter[bytes]:
    return Counter({e: n for e, n in events.items() if orjson.loads(e)["as_of"][:10] < through})
