"""The service-cost model and the basic-question rule (CONTRACT.md section 1)."""

from __future__ import annotations

from schemas.config import CostSettings
from schemas.inputs import OPENING_STATUSES, CallEvent, TicketEvent
from streams.units import money


def call_cost(call: CallEvent, rates: CostSettings) -> int:
    """Service cost of a call in micro-units: its explicit `cost`, else the configured model."""
    if call.cost is not None:
        return money(call.cost)
    duration = call.duration_seconds
    wrap_up = call.wrap_up_seconds or 0.0
    telephony = duration / 60.0 * rates.channel_rate_per_minute[call.channel]
    labour = (duration + wrap_up) / 3600.0 * rates.labour_rate_per_hour
    return money(telephony + labour + rates.overhead_per_contact)


def ticket_cost(ticket: TicketEvent, rates: CostSettings) -> int:
    """Service cost of one ticket event in micro-units.

    `handling_seconds` is the agent time recorded by this event. The per-contact overhead
    is charged when the ticket is opened or reopened, once per contact, not per update.
    """
    if ticket.cost is not None:
        return money(ticket.cost)
    labour = (ticket.handling_seconds or 0.0) / 3600.0 * rates.labour_rate_per_hour
    overhead = rates.overhead_per_contact if ticket.status in OPENING_STATUSES else 0.0
    return money(labour + overhead)


def is_basic_question(
    is_basic: bool | None, category: str | None, basic_categories: frozenset[str]
) -> bool:
    """An explicit `is_basic` wins; otherwise the category decides."""
    if is_basic is not None:
        return is_basic
    return category is not None and category in basic_categories
