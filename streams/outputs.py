"""Output events, built from the decisions of streams/ (valuation, care, tickets, decode).

Every function here is pure: the wall clock an output carries (`emitted_at`) comes in
as a parameter, so a decision and the event it becomes can be tested together, and the
engine only sends what it is given.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from schemas.outputs import (
    BasicQuestionSpike,
    CareTask,
    CategoryCount,
    CustomerTier,
    DeadLetter,
    OutputEvent,
    TicketPriority,
    TierChange,
)
from streams.care import DayCare, TicketDecision
from streams.customer import CustomerState
from streams.decode import Rejected
from streams.ids import deterministic_id
from streams.predictive import PopulationModel
from streams.units import MICROS_PER_DAY, amount, day_of, from_micros
from streams.valuation import TierChangeFacts, ValueRules, outlook
from streams.value import benefit_cost_ratio, customer_lifetime_value
from streams.window import REVENUE, SERVICE_COST, WindowTotals


def day_end(day: int) -> int:
    """The event time (epoch µs) an output of closed day `day` is as of: its end."""
    return (day + 1) * MICROS_PER_DAY


def tier_change(
    customer_id: str, day: int, facts: TierChangeFacts, *, rules: ValueRules, emitted_at: int
) -> TierChange:
    """The event of a tier decided for closed day `day` (streams.valuation.retier)."""
    totals = facts.totals
    return TierChange(
        event_id=deterministic_id("tier", customer_id, day, facts.previous, facts.tier),
        customer_id=customer_id,
        as_of=from_micros(day_end(day)),
        emitted_at=from_micros(emitted_at),
        previous_tier=facts.previous,  # type: ignore[arg-type]
        tier=facts.tier,  # type: ignore[arg-type]
        score=facts.score,
        percentile=max(0.0, min(100.0, facts.percentile)),
        revenue=amount(totals.revenue),
        service_cost=amount(totals.service_cost),
        ratio=benefit_cost_ratio(totals.revenue, totals.service_cost, rules.value.cost_floor),
        window_days=rules.value.window_days,
        reason=facts.reason,
    )


_FIGURES = struct.Struct("<16sqdqqqq")


def lifetime_as_of(state: CustomerState, day: int) -> tuple[int, int]:
    """(lifetime revenue, lifetime service cost) through the end of `day`: the state's
    lifetime figures less what events of later (open) days added."""
    last = state.days.last_day
    if last is None or last <= day:
        return state.revenue, state.service_cost
    days = state.days
    return (
        state.revenue - days.field_sum(REVENUE, day + 1, last),
        state.service_cost - days.field_sum(SERVICE_COST, day + 1, last),
    )


def tier_fingerprint(state: CustomerState, day: int, totals: WindowTotals) -> int:
    """What a `customer-tiers` record says that only the customer's own history moves
    (tier, tier since, score, the window's and the lifetime's money as of `day`), hashed:
    a record is published when this changes. The figures that move with the day or the
    population alone (percentile, CLV, P(alive)) ride along but do not trigger one, or
    whether a record went out would depend on which days the engine happened to look
    at the customer, and a replay would not reproduce it."""
    revenue, service_cost = lifetime_as_of(state, day)
    packed = _FIGURES.pack(
        state.tier.encode(),
        -1 if state.tier_since is None else state.tier_since,
        0.0 if state.score is None else state.score,
        totals.revenue,
        totals.service_cost,
        revenue,
        service_cost,
    )
    digest = hashlib.blake2b(packed, digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def customer_tier(
    state: CustomerState,
    day: int,
    *,
    totals: WindowTotals,
    rules: ValueRules,
    lifetime_years: float,
    model: PopulationModel | None,
    emitted_at: int,
) -> CustomerTier:
    """The `customer-tiers` record of a judged customer tiered for closed day `day`: its
    tier and score as decided, the window's (`totals`, as of `day`) and lifetime's
    figures and its CLV as of the day's end."""
    floor = rules.value.cost_floor
    clv = customer_lifetime_value(
        totals,
        days_known=max(1, day - day_of(state.first_seen_at) + 1),
        window_days=rules.value.window_days,
        lifetime_years=lifetime_years,
        settings=rules.clv,
    )
    found = None if model is None else outlook(state, day, model, rules)
    percentile = state.percentile
    revenue, service_cost = lifetime_as_of(state, day)
    return CustomerTier(
        event_id=deterministic_id("customer_tier", state.customer_id, day),
        customer_id=state.customer_id,
        as_of=from_micros(day_end(day)),
        emitted_at=from_micros(emitted_at),
        tier=state.tier,  # type: ignore[arg-type]
        tier_since=None if state.tier_since is None else from_micros(day_end(state.tier_since - 1)),
        score=state.score if state.score is not None else 0.0,
        score_kind=rules.value.score,
        percentile=None if percentile is None else max(0.0, min(100.0, percentile)),
        revenue=amount(totals.revenue),
        service_cost=amount(totals.service_cost),
        ratio=benefit_cost_ratio(totals.revenue, totals.service_cost, floor),
        window_days=rules.value.window_days,
        lifetime_revenue=amount(revenue),
        lifetime_service_cost=amount(service_cost),
        clv=clv.value,
        p_alive=None if found is None else found[1].p_alive,
        predicted_clv=None if found is None else found[1].clv,
    )


def care_outputs(
    customer_id: str, day: int, found: DayCare, *, emitted_at: int
) -> list[OutputEvent]:
    """The spike event and the care tasks of one customer's closed day (care.evaluate_day),
    the spike first."""
    as_of = from_micros(day_end(day))
    now = from_micros(emitted_at)
    events: list[OutputEvent] = []
    spike = found.spike
    if spike is not None:
        test = spike.test
        events.append(
            BasicQuestionSpike(
                event_id=spike.event_id,
                customer_id=customer_id,
                as_of=as_of,
                emitted_at=now,
                recent_count=test.recent_count,
                recent_days=spike.recent_days,
                baseline_per_day=test.baseline_per_day,
                expected_count=test.expected_count,
                p_value=test.p_value,
                top_categories=[
                    CategoryCount(category=c, count=n) for c, n in spike.top_categories
                ],
                repeat_solved_share=spike.repeat_solved_share,
                suggested_action=spike.suggested_action,
            )
        )
    for task in found.tasks:
        events.append(
            CareTask(
                event_id=task.task_id,
                customer_id=customer_id,
                as_of=as_of,
                emitted_at=now,
                task_id=task.task_id,
                kind=task.kind,  # type: ignore[arg-type]
                priority=task.priority,
                tier=task.tier,  # type: ignore[arg-type]
                reason=task.reason,
                due_at=from_micros(task.due_at),
                expires_at=from_micros(task.expires_at),
                context=task.context,
            )
        )
    return events


def ticket_priority(
    customer_id: str, decision: TicketDecision, *, emitted_at: int
) -> TicketPriority:
    """The event of a ticket's priority (care.ready_tickets)."""
    return TicketPriority(
        event_id=decision.event_id,
        customer_id=customer_id,
        as_of=from_micros(decision.occurred_at),
        emitted_at=from_micros(emitted_at),
        ticket_id=decision.ticket_id,
        tier=decision.tier,  # type: ignore[arg-type]
        priority=decision.priority,
        sla_minutes=decision.sla_minutes,
        reason=decision.reason,
    )


def dead_letter(
    rejected: Rejected,
    *,
    topic: str,
    partition: int,
    offset: int,
    payload: bytes,
    payload_max_bytes: int,
    as_of: int,
    emitted_at: int,
) -> DeadLetter:
    """The dead letter of an input that could not be used (decode.decode_input's
    rejection, or a processing error), carrying at most `payload_max_bytes` of it."""
    return DeadLetter(
        event_id=deterministic_id("dl", topic, partition, offset),
        customer_id=rejected.customer_id,
        as_of=from_micros(as_of),
        emitted_at=from_micros(emitted_at),
        source_topic=topic,
        partition=partition,
        offset=offset,
        reason=rejected.reason,  # type: ignore[arg-type]
        detail=rejected.detail,
        payload=base64.b64encode(payload[:payload_max_bytes]).decode("ascii"),
        payload_bytes=len(payload),
        payload_truncated=len(payload) > payload_max_bytes,
    )
