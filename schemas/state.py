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


class CareRecord(Contract):
    """What the care rules remember (streams/care.py CareMemory)."""

    last_task: dict[str, int] = Field(description="care-task kind -> day of the last task")
    churn: tuple[int | None, int] = Field(
        description="[last-purchase day the churn stages refer to, stages fired]"
    )
    stock: dict[str, tuple[int, int]] = Field(description="sku -> [run-out day, reminded 0/1]")
    orders: dict[str, list[tuple[int, int]]] = Field(
        description="sku -> [[order day, days of supply]] not yet folded into stock"
    )
    ratings: list[tuple[Micros, int, int, str, str, str]] = Field(
        description="low ratings to follow up: [occurred_at, id hash, satisfaction, "
        "source, category, event id]"
    )
    basic_days: dict[str, dict[str, int]] = Field(
        description="day number -> category -> basic questions"
    )
    solved: dict[str, int] = Field(description="category -> first day a question was resolved")
    last_spike: int | None
    tier_log: list[tuple[int, str, str]] = Field(description="[day, previous tier, tier]")
    tickets: list[tuple[Micros, str, str]] = Field(
        description="tickets waiting for their priority: [occurred_at, ticket_id, status]"
    )


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
    care: CareRecord | None = None
