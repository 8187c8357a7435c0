"""Input contracts: what is accepted and what is refused, as tables of cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.export import REPOSITORY_DIR, all_schemas, render
from schemas.inputs import INPUT_MODELS
from schemas.outputs import OUTPUT_MODELS, DeadLetter
from tests import factories as f

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal call", f.call()),
    (
        "call with every optional field",
        f.call(
            wait_seconds=12,
            wrap_up_seconds=60,
            agent_id="A7",
            category="how_to",
            is_basic=True,
            resolved=False,
            satisfaction=1,
            cost=3.5,
        ),
    ),
    ("zero-length call", f.call(duration_seconds=0)),
    ("fractional seconds", f.call(duration_seconds=12.5)),
    ("offset other than UTC", f.call(occurred_at="2026-03-02T10:00:00+05:30")),
    ("nanosecond precision", f.call(occurred_at="2026-03-02T10:00:00.123456789Z")),
    ("lower-case t and z", f.call(occurred_at="2026-03-02t10:00:00z")),
    ("purchase", f.order()),
    ("refund: the amount is positive too", f.order(kind="refund", amount=40)),
    ("service fee", f.order(kind="service_fee")),
    ("subscription", f.order(kind="subscription")),
    (
        "order with items",
        f.order(
            items=[
                {"sku": "toner", "quantity": 2, "consumption_days": 30},
                {"sku": "paper", "quantity": 1},
            ]
        ),
    ),
    ("integer amount", f.order(amount=100)),
    ("ticket opened", f.ticket()),
    (
        "ticket with every optional field",
        f.ticket(
            status="resolved",
            category="login",
            is_basic=False,
            channel="email",
            handling_seconds=600,
            satisfaction=5,
            cost=2,
        ),
    ),
    ("opt out", f.preference()),
    ("opt back in", f.preference(do_not_call=False)),
]

INVALID: list[tuple[str, dict[str, Any], str]] = [
    # (why, event, a field path the error must name)
    ("no event_id", f.without(f.call(), "event_id"), "event_id"),
    ("empty event_id", f.call(event_id=""), "event_id"),
    ("empty customer_id", f.call(customer_id=""), "customer_id"),
    ("control character in customer_id", f.call(customer_id="C\n1"), "customer_id"),
    ("customer_id longer than 256", f.call(customer_id="C" * 257), "customer_id"),
    ("customer_id not a string", f.call(customer_id=17), "customer_id"),
    ("naive timestamp", f.call(occurred_at="2026-03-02T10:00:00"), "occurred_at"),
    ("date only", f.call(occurred_at="2026-03-02"), "occurred_at"),
    ("unix seconds", f.call(occurred_at=1772445600), "occurred_at"),
    ("month 13", f.call(occurred_at="2026-13-02T10:00:00Z"), "occurred_at"),
    ("unknown channel", f.call(channel="fax"), "channel"),
    ("unknown direction", f.call(direction="sideways"), "direction"),
    ("negative duration", f.call(duration_seconds=-1), "duration_seconds"),
    ("duration as a string", f.call(duration_seconds="300"), "duration_seconds"),
    ("a call longer than a week", f.call(duration_seconds=8 * 86400), "duration_seconds"),
    ("satisfaction 0", f.call(satisfaction=0), "satisfaction"),
    ("satisfaction 6", f.call(satisfaction=6), "satisfaction"),
    ("satisfaction 4.5", f.call(satisfaction=4.5), "satisfaction"),
    ("is_basic as 1", f.call(is_basic=1), "is_basic"),
    ("negative cost", f.call(cost=-0.01), "cost"),
    ("unexpected field", f.call(colour="red"), "colour"),
    ("negative amount", f.order(amount=-5), "amount"),
    ("amount above 1e9", f.order(amount=2e9), "amount"),
    ("lower-case currency", f.order(currency="eur"), "currency"),
    ("unknown order kind", f.order(kind="gift"), "kind"),
    ("item without sku", f.order(items=[{"quantity": 1}]), "items"),
    ("item with zero quantity", f.order(items=[{"sku": "a", "quantity": 0}]), "items"),
    ("items not a list", f.order(items={"sku": "a"}), "items"),
    ("ticket without ticket_id", f.without(f.ticket(), "ticket_id"), "ticket_id"),
    ("unknown ticket status", f.ticket(status="escalated"), "status"),
    ("negative handling time", f.ticket(handling_seconds=-3), "handling_seconds"),
    ("do_not_call as a string", f.preference(do_not_call="yes"), "do_not_call"),
]


@pytest.mark.parametrize(("why", "body"), VALID, ids=[c[0] for c in VALID])
def test_valid_events_are_accepted(why: str, body: dict[str, Any]) -> None:
    event = INPUT_MODELS[body["event_type"]].model_validate(body)
    assert event.customer_id == body["customer_id"]
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(("why", "body", "path"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_events_are_refused_naming_the_field(
    why: str, body: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        INPUT_MODELS[body["event_type"]].model_validate(body)
    named = {str(loc[0]) for loc in (e["loc"] for e in caught.value.errors())}
    assert path in named


def test_timestamps_keep_their_instant() -> None:
    event = INPUT_MODELS["call"].model_validate(f.call(occurred_at="2026-03-02T15:30:00+05:30"))
    assert event.occurred_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert event.occurred_at.tzinfo == timezone(timedelta(hours=5, minutes=30))


def test_models_are_frozen() -> None:
    event = INPUT_MODELS["order"].model_validate(f.order())
    with pytest.raises(ValidationError):
        event.amount = 5  # type: ignore[misc]


def test_repository_schemas_match_the_models() -> None:
    """schemas/json/ is what other teams read; regenerate with `vipstream schemas schemas/json`."""
    expected = all_schemas()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in REPOSITORY_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "a schema file is missing or extra"
    for name, schema in expected.items():
        assert on_disk[name] == render(schema), f"{name} drifted from the model"


@pytest.mark.parametrize(("why", "body"), VALID, ids=[c[0] for c in VALID])
def test_valid_events_validate_against_exported_schema(why: str, body: dict[str, Any]) -> None:
    schema = all_schemas()[f"{body['event_type']}.schema.json"]
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(body)))


def test_exported_schemas_refuse_unknown_fields() -> None:
    schema = all_schemas()["order.schema.json"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(f.order(colour="red"))


def test_every_output_event_type_has_a_schema() -> None:
    names = set(all_schemas())
    for event_type in OUTPUT_MODELS:
        assert f"{event_type}.schema.json" in names


def test_dead_letter_serialises_to_its_schema() -> None:
    letter = DeadLetter(
        event_id="dl-1",
        customer_id=None,
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        emitted_at=datetime(2026, 1, 1, tzinfo=UTC),
        source_topic="calls",
        partition=0,
        offset=5,
        reason="invalid_json",
        detail="x",
        payload="",
        payload_bytes=0,
    )
    document = json.loads(letter.model_dump_json())
    jsonschema.Draft202012Validator(all_schemas()["dead_letter.schema.json"]).validate(document)
    assert document["as_of"] == "2026-01-01T00:00:00Z"
