"""Input events, exactly as ../shared/CONTRACT.md section 2 lists them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import (
    ContactSeconds,
    Contract,
    Currency,
    HandlingSeconds,
    Identifier,
    Label,
    Money,
    Rfc3339,
    Satisfaction,
)

Channel = Literal["phone", "chat", "email", "video", "web"]
CHANNELS: tuple[Channel, ...] = ("phone", "chat", "email", "video", "web")
OrderKind = Literal["purchase", "refund", "service_fee", "subscription"]
TicketStatus = Literal["opened", "updated", "resolved", "reopened", "closed"]
#: Ticket statuses that are a new contact with the customer: they carry the per-contact
#: overhead, count as contacts, and get a ticket priority.
OPENING_STATUSES: frozenset[str] = frozenset({"opened", "reopened"})


class InputEvent(Contract):
    """Fields every input event carries."""

    event_type: str
    event_id: Identifier
    customer_id: Identifier
    occurred_at: Rfc3339


class CallEvent(InputEvent):
    """A finished contact on any channel."""

    event_type: Literal["call"]
    channel: Channel
    direction: Literal["inbound", "outbound"]
    duration_seconds: ContactSeconds
    wait_seconds: ContactSeconds | None = None
    wrap_up_seconds: ContactSeconds | None = None
    agent_id: Identifier | None = None
    category: Label | None = None
    is_basic: bool | None = None
    resolved: bool | None = None
    satisfaction: Satisfaction | None = None
    cost: Money | None = None


class OrderItem(Contract):
    """One line of an order; drives replenishment reminders."""

    sku: Identifier
    quantity: Annotated[float, Field(gt=0, le=1e6)]
    consumption_days: Annotated[float, Field(gt=0, le=3650)] | None = None


class OrderEvent(InputEvent):
    """A purchase, refund, service fee or subscription payment."""

    event_type: Literal["order"]
    kind: OrderKind
    amount: Money
    currency: Currency
    items: Annotated[list[OrderItem], Field(max_length=1000)] | None = None


class TicketEvent(InputEvent):
    """A ticket opened, updated, resolved, reopened or closed."""

    event_type: Literal["ticket"]
    ticket_id: Identifier
    status: TicketStatus
    category: Label | None = None
    is_basic: bool | None = None
    channel: Channel | None = None
    handling_seconds: HandlingSeconds | None = None
    satisfaction: Satisfaction | None = None
    cost: Money | None = None


class ContactPreferenceEvent(InputEvent):
    """Whether the customer accepts outbound calls (the latest by event time wins)."""

    event_type: Literal["contact_preference"]
    do_not_call: bool


#: event_type -> model
INPUT_MODELS: dict[str, type[InputEvent]] = {
    "call": CallEvent,
    "order": OrderEvent,
    "ticket": TicketEvent,
    "contact_preference": ContactPreferenceEvent,
}


class ErasureRequest(Contract):
    """`vipstream erase`: forget a customer. Not a contract input: written by the CLI to
    the worker group's own `<app_id>-erasures` topic, keyed and partitioned by the
    customer like every input, so the customer's partition owner applies it."""

    event_type: Literal["erasure"] = "erasure"
    event_id: Identifier
    customer_id: Identifier
    #: input events of the customer dated at or before this are dropped from now on
    requested_at: Rfc3339
