"""Output events, exactly as ../shared/CONTRACT.md section 2 lists them (at least)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.base import Contract, Identifier, Rfc3339

#: Bumped when an output field changes meaning or disappears (additions do not bump it).
SCHEMA_VERSION = 1

Tier = Literal["vip", "gold", "silver", "bronze", "new"]
TIERS: tuple[Tier, ...] = ("vip", "gold", "silver", "bronze", "new")

CareTaskKind = Literal[
    "vip_welcome",
    "vip_retention",
    "basic_question_training",
    "churn_risk",
    "replenishment_reminder",
    "satisfaction_followup",
    "upsell",
    "service_cost_review",
]

DeadLetterReason = Literal[
    "empty_payload",  # no value (a tombstone) where an event was expected
    "payload_too_large",  # above `max_event_bytes`; not parsed
    "invalid_json",  # not UTF-8 JSON (also NaN, Infinity, trailing garbage)
    "not_an_object",  # JSON, but not an object
    "unknown_event_type",  # `event_type` missing or not one of the contract's inputs
    "wrong_topic",  # a valid event type on another type's topic
    "schema_violation",  # fields missing, of the wrong type or out of bounds; `detail` has paths
    "currency_mismatch",  # an order in another currency than the configured one
    "key_mismatch",  # the Kafka key is not the customer_id: the event sits on the wrong partition
    "timestamp_out_of_range",  # `occurred_at` before `min_event_time` or too far in the future
    "late_event",  # older than the customer's latest event on that topic less the allowed lateness
    "processing_error",  # a valid event that vipstream failed to apply (a bug; logged with it)
]
DEAD_LETTER_REASONS: tuple[str, ...] = DeadLetterReason.__args__  # type: ignore[attr-defined]

Percent = Annotated[float, Field(ge=0, le=100)]
Priority = Annotated[int, Field(ge=1, le=5)]


class OutputEvent(Contract):
    """Fields every output event carries."""

    event_type: str
    event_id: Identifier  # deterministic: the same input history gives the same id
    customer_id: Identifier
    as_of: Rfc3339  # the event time the output refers to
    emitted_at: Rfc3339  # wall clock at emission
    schema_version: int = SCHEMA_VERSION


class DeadLetter(Contract):
    """An input that could not be used, with a machine-readable reason.

    `customer_id` is the message key when one could be read, else null: a dead letter
    may concern bytes that name no customer.
    """

    event_type: Literal["dead_letter"] = "dead_letter"
    event_id: Identifier
    customer_id: Identifier | None
    as_of: Rfc3339
    emitted_at: Rfc3339
    schema_version: int = SCHEMA_VERSION
    source_topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    reason: DeadLetterReason
    detail: str
    payload: str  # base64 of the original value bytes (truncated, see payload_truncated)
    payload_bytes: Annotated[int, Field(ge=0)]  # size of the original value
    payload_truncated: bool = False


class TierChange(OutputEvent):
    """A customer's value tier changed."""

    event_type: Literal["tier_change"] = "tier_change"
    previous_tier: Tier | None
    tier: Tier
    score: float
    percentile: Percent
    revenue: float
    service_cost: float
    ratio: float
    window_days: Annotated[int, Field(ge=1)]
    reason: str


class CustomerTier(OutputEvent):
    """A judged customer's current tier and value, as of its partition's last tiering
    that changed any of them: the record of the compacted `customer-tiers` topic (keyed
    by customer, a tombstone once the customer is erased). `event_id` is deterministic
    per customer and day. `tier_change` events are the history; this is the table."""

    event_type: Literal["customer_tier"] = "customer_tier"
    tier: Tier
    tier_since: Rfc3339 | None  # when the customer entered `tier` (end of that day)
    score: float
    score_kind: Literal["ratio", "net_value", "clv"]
    percentile: Percent | None  # in the population of `as_of` (None: nobody judged)
    revenue: float  # over the window ending at `as_of`
    service_cost: float
    ratio: float
    window_days: Annotated[int, Field(ge=1)]
    lifetime_revenue: float
    lifetime_service_cost: float
    clv: float  # the historic CLV (the contract's formula) as of `as_of`
    #: once the purchase and spend models are fitted and the customer has bought:
    #: P(alive) and the predicted CLV as of `as_of`; null before
    p_alive: Annotated[float, Field(ge=0, le=1)] | None = None
    predicted_clv: float | None = None


class CategoryCount(Contract):
    """A category and how often it was asked in the recent window."""

    category: str
    count: Annotated[int, Field(ge=0)]


class BasicQuestionSpike(OutputEvent):
    """A sudden spike of basic questions from one customer."""

    event_type: Literal["basic_question_spike"] = "basic_question_spike"
    recent_count: Annotated[int, Field(ge=0)]
    recent_days: Annotated[int, Field(ge=1)]
    baseline_per_day: Annotated[float, Field(ge=0)]
    expected_count: Annotated[float, Field(ge=0)]
    p_value: Annotated[float, Field(ge=0, le=1)]
    top_categories: list[CategoryCount]
    repeat_solved_share: Annotated[float, Field(ge=0, le=1)]
    suggested_action: str


class CareTask(OutputEvent):
    """A task for the outbound dialer."""

    event_type: Literal["care_task"] = "care_task"
    task_id: Identifier
    kind: CareTaskKind
    priority: Priority
    tier: Tier
    reason: str
    due_at: Rfc3339
    expires_at: Rfc3339
    context: dict[str, Any]


class TicketPriority(OutputEvent):
    """The priority of an opened or reopened ticket."""

    event_type: Literal["ticket_priority"] = "ticket_priority"
    ticket_id: Identifier
    tier: Tier
    priority: Priority
    sla_minutes: Annotated[int, Field(ge=1)]
    reason: str


#: event_type -> model
OUTPUT_MODELS: dict[str, type[Contract]] = {
    "tier_change": TierChange,
    "customer_tier": CustomerTier,
    "basic_question_spike": BasicQuestionSpike,
    "care_task": CareTask,
    "ticket_priority": TicketPriority,
    "dead_letter": DeadLetter,
}
