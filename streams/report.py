"""What the HTTP API reports about a customer, computed from its state."""

from __future__ import annotations

from typing import Any

from streams.customer import CustomerState
from streams.units import amount, rfc3339


def _time(micros: int | None) -> str | None:
    return None if micros is None else rfc3339(micros)


def customer_figures(state: CustomerState) -> dict[str, Any]:
    """The customer's lifetime figures (money in the configured currency)."""
    return {
        "customer_id": state.customer_id,
        "lifetime_revenue": amount(state.revenue),
        "lifetime_service_cost": amount(state.service_cost),
        "lifetime_purchases": state.purchases,
        "lifetime_purchase_amount": amount(state.purchase_amount),
        "lifetime_refund_amount": amount(state.refund_amount),
        "lifetime_contacts": state.contacts,
        "lifetime_basic_questions": state.basic_questions,
        "first_seen_at": _time(state.first_seen_at),
        "last_event_at": _time(state.last_event_at),
        "last_order_at": _time(state.last_order_at),
        "do_not_call": state.do_not_call,
    }
