"""The cost model and revenue signs (CONTRACT.md section 1), as tables of hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import CostSettings
from schemas.inputs import CallEvent, OrderEvent, TicketEvent
from streams.cost import call_cost, is_basic_question, ticket_cost
from streams.revenue import revenue_delta
from streams.units import amount
from tests import factories as f

RATES = CostSettings(
    channel_rate_per_minute={"phone": 0.06, "chat": 0.01, "email": 0.0, "video": 0.1, "web": 0.0},
    labour_rate_per_hour=36.0,
    overhead_per_contact=0.5,
)

CALLS: list[tuple[str, dict[str, Any], float]] = [
    # (why, overrides, expected cost)
    # 10 min phone: 10×0.06 + (600)/3600×36 + 0.5 = 0.6 + 6 + 0.5
    ("10 min phone call", {"duration_seconds": 600}, 7.1),
    # wrap-up is labour but not telephony: 0.6 + (600+300)/3600×36 + 0.5 = 0.6 + 9 + 0.5
    ("wrap-up adds labour only", {"duration_seconds": 600, "wrap_up_seconds": 300}, 10.1),
    ("email has no channel rate", {"channel": "email", "duration_seconds": 600}, 6.5),
    ("a zero-length call still costs overhead", {"duration_seconds": 0}, 0.5),
    ("explicit cost wins", {"duration_seconds": 600, "cost": 2.25}, 2.25),
    ("explicit zero cost wins", {"duration_seconds": 600, "cost": 0}, 0.0),
    ("waiting time is not priced", {"duration_seconds": 600, "wait_seconds": 900}, 7.1),
]


@pytest.mark.parametrize(("why", "overrides", "expected"), CALLS, ids=[c[0] for c in CALLS])
def test_call_cost(why: str, overrides: dict[str, Any], expected: float) -> None:
    call = CallEvent.model_validate(f.call(**overrides))
    assert amount(call_cost(call, RATES)) == pytest.approx(expected, abs=1e-6)


TICKETS: list[tuple[str, dict[str, Any], float]] = [
    ("opened with 30 min handling: labour + overhead", {"handling_seconds": 1800}, 18.5),
    ("opened without handling: overhead only", {}, 0.5),
    ("an update pays labour, not overhead", {"status": "updated", "handling_seconds": 600}, 6.0),
    ("reopened is a new contact: overhead again", {"status": "reopened"}, 0.5),
    ("closed without handling costs nothing", {"status": "closed"}, 0.0),
    ("explicit cost wins", {"status": "resolved", "handling_seconds": 600, "cost": 1.0}, 1.0),
]


@pytest.mark.parametrize(("why", "overrides", "expected"), TICKETS, ids=[c[0] for c in TICKETS])
def test_ticket_cost(why: str, overrides: dict[str, Any], expected: float) -> None:
    ticket = TicketEvent.model_validate(f.ticket(**overrides))
    assert amount(ticket_cost(ticket, RATES)) == pytest.approx(expected, abs=1e-6)


REVENUE: list[tuple[str, str, float, float]] = [
    ("a purchase adds", "purchase", 100.0, 100.0),
    ("a service fee adds", "service_fee", 20.0, 20.0),
    ("a subscription adds", "subscription", 49.0, 49.0),
    ("a refund's positive amount subtracts", "refund", 30.0, -30.0),
    ("cents survive exactly", "purchase", 0.1, 0.1),
]


@pytest.mark.parametrize(("why", "kind", "value", "delta"), REVENUE, ids=[c[0] for c in REVENUE])
def test_revenue_sign(why: str, kind: str, value: float, delta: float) -> None:
    order = OrderEvent.model_validate(f.order(kind=kind, amount=value))
    assert amount(revenue_delta(order)) == delta


BASIC: list[tuple[str, bool | None, str | None, bool]] = [
    ("explicit true wins over a non-basic category", True, "outage", True),
    ("explicit false wins over a basic category", False, "password_reset", False),
    ("a configured basic category", None, "password_reset", True),
    ("an unconfigured category", None, "outage", False),
    ("no category, no flag", None, None, False),
]


@pytest.mark.parametrize(("why", "flag", "category", "basic"), BASIC, ids=[c[0] for c in BASIC])
def test_basic_question_rule(
    why: str, flag: bool | None, category: str | None, basic: bool
) -> None:
    assert is_basic_question(flag, category, frozenset({"password_reset", "how_to"})) is basic


def test_every_channel_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="video"):
        CostSettings(channel_rate_per_minute={"phone": 1, "chat": 1, "email": 1, "web": 1})
