"""Per-customer state and how one input event changes it: (state, event, rules) -> state.

Idempotence: each applied event's id is remembered (as a 64-bit hash) while a copy of it
could still be accepted. Per input stream, an event dated before `refuse_before` is
refused as late, and every applied event dated at or after it is remembered, so a
duplicate is never applied twice, with memory bounded by `dedupe_max_ids_per_customer`
per stream. `refuse_before` never decreases, so a forgotten id can never come back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from schemas.config import CostSettings, IngestSettings
from schemas.inputs import (
    OPENING_STATUSES,
    CallEvent,
    Channel,
    ContactPreferenceEvent,
    InputEvent,
    OrderEvent,
    TicketEvent,
)
from streams import window
from streams.care import (
    CareMemory,
    CareRules,
    note_contact,
    note_order_items,
    note_ticket_opened,
)
from streams.cost import call_cost, is_basic_question, ticket_cost
from streams.history import PurchaseHistory, note_purchase
from streams.ids import id_hash
from streams.revenue import BUYING_KINDS, revenue_delta
from streams.units import MICROS_PER_SECOND, day_of, money, saturating_add, to_micros

_NEVER = -(2**62)
_DEFAULT_CARE = CareRules()


class Outcome(enum.Enum):
    """What happened to an event offered to a customer's state."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # its event_id was applied before: ignored
    LATE = "late"  # older than its stream's lateness horizon for this customer: refused


@dataclass(slots=True)
class StreamMemory:
    """What one input stream (calls, orders, tickets or preferences) of a customer needs
    for exact duplicate suppression.

    Lateness is measured within the stream: a worker catching up on a backlog may read
    July's tickets before January's calls, which must not make the calls late.
    """

    last_at: int = _NEVER  # latest occurred_at applied from this stream
    floor: int = _NEVER  # events before this are refused: their ids may be forgotten
    #: event-id hash -> occurred_at, in arrival order (oldest first, approximately)
    seen: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class CustomerState:
    """Everything vipstream knows about one customer. Times: epoch µs; money: micro-units."""

    customer_id: str
    first_seen_at: int
    last_event_at: int
    last_order_at: int | None = None  # latest purchase or subscription
    revenue: int = 0  # lifetime direct revenue (refunds subtracted)
    service_cost: int = 0  # lifetime service cost
    purchases: int = 0  # purchase and subscription orders
    purchase_amount: int = 0
    refund_amount: int = 0
    contacts: int = 0  # calls plus opened/reopened tickets
    basic_questions: int = 0
    do_not_call: bool = False
    preference_at: int | None = None
    #: event_type -> duplicate-suppression memory of that input stream
    streams: dict[str, StreamMemory] = field(default_factory=dict)
    #: day number -> bucket (streams/window.py): what the rolling windows are made of
    days: window.DayBuckets = field(default_factory=window.DayBuckets)
    # -- value as of the last closed day (streams/valuation.py) -------------------------
    stale: bool = False  # events applied that the last close has not seen
    closed_day: int | None = None  # the day `score` and `judged` are as of
    score: float | None = None
    judged: bool = False  # not `new` any more
    tier: str = "new"
    tier_since: int | None = None  # the closed day the tier was entered
    tiered_day: int | None = None  # the closed day the tier was last decided for
    percentile: float | None = None  # in the population of `tiered_day`
    care: CareMemory = field(default_factory=CareMemory)  # streams/care.py
    #: repeat purchases, for the purchase and spend models (streams/history.py)
    history: PurchaseHistory = field(default_factory=PurchaseHistory)
    #: fingerprint of the customer's last `customer-tiers` record (None: none yet)
    published: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.days, window.DayBuckets):  # a plain mapping, e.g. in a test
            self.days = window.DayBuckets(self.days)


def refuse_before(memory: StreamMemory, rules: IngestSettings) -> int:
    """Events of this stream dated before this instant are refused as late."""
    horizon = memory.last_at - rules.allowed_lateness_seconds * MICROS_PER_SECOND
    return max(horizon, memory.floor)


def apply_event(
    state: CustomerState | None,
    event: InputEvent,
    *,
    ingest: IngestSettings,
    costs: CostSettings,
    bucket_floor_day: int | None = None,
    care: CareRules = _DEFAULT_CARE,
) -> tuple[CustomerState, Outcome]:
    """Apply one validated event; a duplicate or late event leaves the state unchanged.

    Events dated before `bucket_floor_day` count for the lifetime figures only: they are
    older than any window that can still be evaluated.
    """
    at = to_micros(event.occurred_at)
    key = id_hash(event.event_id)
    created = state is None
    if state is None:
        state = CustomerState(customer_id=event.customer_id, first_seen_at=at, last_event_at=at)
    memory = state.streams.get(event.event_type)
    if memory is None:
        memory = state.streams[event.event_type] = StreamMemory()
    elif key in memory.seen:
        return state, Outcome.DUPLICATE
    elif at < refuse_before(memory, ingest):
        return state, Outcome.LATE

    # A new customer, or an earlier first event, changes when it stops being `new`: its
    # value must be looked at again even if no figure changed (an opt-out alone).
    first_moved = created or at < state.first_seen_at
    state.first_seen_at = min(state.first_seen_at, at)
    state.last_event_at = max(state.last_event_at, at)
    _remember(memory, key, at, ingest)

    day = day_of(at)
    bucket = day if bucket_floor_day is None or day >= bucket_floor_day else None
    if isinstance(event, CallEvent):
        basic = is_basic_question(event.is_basic, event.category, ingest.basic_categories)
        _apply_contact(state, bucket, call_cost(event, costs), event.channel, basic)
        _note_contact(state, bucket, at, event, basic, bool(event.resolved), care)
    elif isinstance(event, TicketEvent):
        basic = event.status == "opened" and is_basic_question(
            event.is_basic, event.category, ingest.basic_categories
        )
        if event.status in OPENING_STATUSES:
            _apply_contact(state, bucket, ticket_cost(event, costs), event.channel, basic)
            note_ticket_opened(state.care, at=at, ticket_id=event.ticket_id, status=event.status)
        else:
            _add_cost(state, bucket, ticket_cost(event, costs))
        resolved = event.status in ("resolved", "closed")
        _note_contact(state, bucket, at, event, basic, resolved, care)
    elif isinstance(event, OrderEvent):
        _apply_order(state, bucket, event, at)
        if bucket is not None and event.items and event.kind in BUYING_KINDS:
            note_order_items(
                state.care,
                day=bucket,
                items=[(i.sku, i.quantity, i.consumption_days) for i in event.items],
                rules=care,
            )
    elif isinstance(event, ContactPreferenceEvent):
        _apply_preference(state, event, at)
        if not first_moved:
            return state, Outcome.APPLIED  # neither figures nor first day changed
    state.stale = True
    return state, Outcome.APPLIED


def _note_contact(  # noqa: PLR0917 - a private helper of apply_event
    state: CustomerState,
    bucket: int | None,
    at: int,
    event: CallEvent | TicketEvent,
    basic: bool,
    resolved: bool,
    care: CareRules,
) -> None:
    if bucket is None:
        return  # older than every window still open: lifetime figures only
    note_contact(
        state.care,
        day=bucket,
        at=at,
        event_id=event.event_id,
        source="call" if isinstance(event, CallEvent) else "ticket",
        basic=basic,
        category=event.category,
        resolved=resolved,
        satisfaction=event.satisfaction,
        rules=care,
    )


def _add_cost(state: CustomerState, bucket: int | None, cost: int) -> None:
    state.service_cost = saturating_add(state.service_cost, cost)
    if bucket is not None:
        state.days.add(bucket, window.SERVICE_COST, cost)


def _apply_contact(
    state: CustomerState, bucket: int | None, cost: int, channel: Channel | None, basic: bool
) -> None:
    _add_cost(state, bucket, cost)
    state.contacts += 1
    state.basic_questions += basic
    if bucket is not None:
        state.days.add(bucket, window.CONTACTS, 1)
        if basic:
            state.days.add(bucket, window.BASIC_QUESTIONS, 1)
        if channel is not None:
            state.days.add(bucket, window.CHANNEL_FIELD[channel], 1)


def _apply_order(state: CustomerState, bucket: int | None, order: OrderEvent, at: int) -> None:
    delta = revenue_delta(order)
    state.revenue = saturating_add(state.revenue, delta)
    if bucket is not None:
        state.days.add(bucket, window.REVENUE, delta)
    units = money(order.amount)
    if order.kind in BUYING_KINDS:
        state.purchases += 1
        state.purchase_amount = saturating_add(state.purchase_amount, units)
        if state.last_order_at is None or at > state.last_order_at:
            state.last_order_at = at
        had = bucket is not None and bucket in state.days and state.days[bucket][window.PURCHASES]
        note_purchase(
            state.history,
            day=day_of(at),
            amount=units,
            day_had_purchase=bool(had),
            evaluated_day=state.closed_day,
        )
        if bucket is not None:
            state.days.add(bucket, window.PURCHASES, 1)
            state.days.add(bucket, window.PURCHASE_AMOUNT, units)
    elif order.kind == "refund":
        state.refund_amount = saturating_add(state.refund_amount, units)
        if bucket is not None:
            state.days.add(bucket, window.REFUND_AMOUNT, units)


def _apply_preference(state: CustomerState, pref: ContactPreferenceEvent, at: int) -> None:
    # The latest preference by event time wins; on a tie, opting out wins, so the
    # result does not depend on which of two simultaneous events arrived first.
    previous = state.preference_at
    if previous is None or at > previous or (at == previous and pref.do_not_call):
        state.do_not_call = pref.do_not_call
        state.preference_at = at


def _remember(memory: StreamMemory, key: int, at: int, rules: IngestSettings) -> None:
    seen = memory.seen
    seen[key] = at
    memory.last_at = max(memory.last_at, at)
    horizon = memory.last_at - rules.allowed_lateness_seconds * MICROS_PER_SECOND
    # Drop ids that fell behind the lateness horizon: their events are refused anyway.
    # Arrival order is nearly time order, so this pops from the front in amortised O(1).
    while seen:
        oldest_key = next(iter(seen))
        if seen[oldest_key] >= horizon:
            break
        del seen[oldest_key]
    # Over the bound: forget the oldest id and refuse everything at or before its time.
    while len(seen) > rules.dedupe_max_ids_per_customer:
        oldest_key = next(iter(seen))
        forgotten_at = seen.pop(oldest_key)
        memory.floor = max(memory.floor, forgotten_at + 1)
