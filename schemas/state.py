"""The persisted per-customer state: what a changelog record of `customer_state` holds.

streams/codec.py writes and reads this format on the hot path with orjson; this model
documents it, exports its JSON Schema and checks (in tests) that the codec matches it.
Times are epoch microseconds (UTC), money is integer millionths of the currency unit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Contract, Identifier

STATE_VERSION = 1

Micros = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class CustomerStateRecord(Contract):
    """One customer's state as stored in the table and its changelog topic."""

    v: Literal[1]
    customer_id: Identifier
    first_seen_at: Micros
    last_event_at: Micros
    last_order_at: Micros | None
    revenue: Micros
    service_cost: Micros
    purchases: Annotated[int, Field(ge=0)]
    purchase_amount: Micros
    refund_amount: Micros
    contacts: Annotated[int, Field(ge=0)]
    basic_questions: Annotated[int, Field(ge=0)]
    do_not_call: bool
    preference_at: Micros | None
    streams: dict[
        Literal["call", "order", "ticket", "contact_preference"],
        tuple[Micros, Micros, str],
    ] = Field(
        description="per input stream: [last_at, floor, seen], seen being base64 of "
        "little-endian int64 pairs (event-id hash, occurred_at)"
    )
    days: list[list[Micros]] = Field(
        description="day buckets: [day number, revenue, service_cost, contacts, "
        "basic_questions, purchases, purchase_amount, refund_amount, phone, chat, email, "
        "video, web], trailing zeros omitted"
    )
    stale: bool
    closed_day: int | None
    score: float | None
    judged: bool
    tier: Literal["vip", "gold", "silver", "bronze", "new"]
    tier_since: int | None
    tiered_day: int | None
    percentile: float | None
