"""Direct revenue = purchases + service fees + subscriptions − refunds (CONTRACT.md section 1)."""

from __future__ import annotations

from schemas.inputs import OrderEvent
from streams.units import money

_SIGN = {"purchase": 1, "service_fee": 1, "subscription": 1, "refund": -1}

#: Order kinds that show the customer is still buying (they reset the churn clock).
BUYING_KINDS = frozenset({"purchase", "subscription"})


def revenue_delta(order: OrderEvent) -> int:
    """Signed revenue of one order in micro-units; a refund's positive amount subtracts."""
    return _SIGN[order.kind] * money(order.amount)
