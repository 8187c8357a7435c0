"""The persisted per-customer state: what a changelog record of `customer_state` holds.

Version 4 (written by streams/codec.py): one byte, the version, the length of the body
(uint32), then the body compressed as one LZ4 block. The body is

1. `STATE_HEADER`: flags (`STATE_FLAG`: booleans, and which optional values are
   present), the tier (index in `STATE_TIERS`), the times, the optional values (0 when
   absent), the lifetime figures, score and percentile, the lengths of what follows,
   and the purchase history (streams/history.py: first purchase day, distinct purchase
   days, the first day's spend, the latest settled purchase day, the number of pending
   purchase days), and the fingerprint of the customer's last `customer-tiers` record
   (agents/engine/tiering.py: a signed 64-bit hash, flag `published`);
2. the customer id, UTF-8;
3. per input stream, `STATE_STREAM` (index in `STATE_STREAMS`, last_at, floor, number of
   remembered ids) and the ids: int64 pairs (event-id hash, occurred_at), arrival order;
4. the pending purchase days (int64, ascending);
5. the bucket days (int64, strictly increasing), then the buckets column by column:
   for each field of `CustomerStateRecord.days` in order, one int64 per day;
6. the care memory, `CareRecord` as compact JSON (nothing when it is empty).

All integers are little-endian. Version 3 is version 4 without the fingerprint
(`STATE_HEADER_V3`: such a customer's record is published at its next tiering); version
2 is version 3 without the purchase history (`STATE_HEADER_V2`, no item 4); version 1 is
the JSON document `CustomerStateRecord` below. All are still read, so stores and
changelogs written by older workers upgrade in place; a version 1 or 2 state's purchase
history is estimated from the lifetime figures (first seen as the
first purchase day, orders as purchase days, the mean order as the first day's spend),
exact from the next purchase on only in its new days. Times are epoch microseconds
(UTC), money is integer millionths of the currency unit; the record models document
every value's meaning for both versions.
"""

from __future__ import annotations

import struct
from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Contract, Identifier

STATE_VERSION = 4
STATE_TIERS = ("vip", "gold", "silver", "bronze", "new")
STATE_STREAMS = ("call", "order", "ticket", "contact_preference")
STATE_FLAG = {
    "do_not_call": 1,
    "stale": 2,
    "judged": 4,
    "score": 8,
    "percentile": 16,
    "last_order_at": 32,
    "preference_at": 64,
    "closed_day": 128,
    "tier_since": 256,
    "tiered_day": 512,
    "first_purchase_day": 1024,
    "settled_last_day": 2048,
    "published": 4096,
}
#: flags, tier, first_seen_at, last_event_at, last_order_at, preference_at, closed_day,
#: tier_since, tiered_day, revenue, service_cost, purchases, purchase_amount,
#: refund_amount, contacts, basic_questions, score, percentile, customer id bytes,
#: streams, bucket days, care JSON bytes, first purchase day, purchase days, first day's
#: spend, settled last purchase day, pending purchase days, the fingerprint of the
#: customer's last `customer-tiers` record
STATE_HEADER = struct.Struct("<HB14q2dHBII4qHq")
#: version 3: the same without the fingerprint
STATE_HEADER_V3 = struct.Struct("<HB14q2dHBII4qH")
#: version 2: version 3 without the purchase history
STATE_HEADER_V2 = struct.Struct("<HB14q2dHBII")
#: stream index, last_at, floor, remembered ids
STATE_STREAM = struct.Struct("<BqqI")

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
    timeline: list[tuple[int, Literal["tier", "task", "spike"], str]] = Field(
        default_factory=list,
        description="what was emitted for the customer, latest last: [day, what, text]",
    )


class CustomerStateRecord(Contract):
    """One customer's state: version 1 as stored (JSON), and the meaning of every value
    version 2 stores in binary."""

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
