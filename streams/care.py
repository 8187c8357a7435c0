"""Proactive care: what a customer's history asks the contact centre to do.

Everything here is decided *as of a closed day E* (see agents/engine/value.py), right
after the customer's tier for E is decided, from the day buckets up to E and the care
memory below. Events of later days, already applied while E was open, are never read,
so a replay and live traffic, one worker or several, emit the same tasks with the same
ids. The rules, in the order they are evaluated:

- **spike** -> a `basic_question_spike` event and a `basic_question_training` task:
  at least `min_count` basic questions in the last `recent_days` and p < `alpha` under the
  customer's own baseline (streams/spikes.py), once the customer has at least
  `min_baseline_days` of baseline, at most one per `spikes.cooldown_days`.
- **vip_welcome** / **vip_retention**: the tier decided for E became vip / left vip.
- **churn_risk**, rule `model` (the default): a buyer whose P(alive) as of E, from the
  population model (streams/predictive.py), is below `churn_p_alive`, and whose value at
  risk (its predicted CLV were it alive: the predicted CLV / P(alive), since every term
  of it scales with P(alive)) is at least `churn_min_value_at_risk`: one task per last
  purchase, one priority step more urgent at 10x that value and two at 100x. Below the
  value it is counted as suppressed `low_value`, once per last purchase. Nothing before
  the model's first fit. Rule `stages`: a buyer whose last purchase or subscription (as of
  E) is `churn_first_days` old (stage 1) or `churn_second_days` old (stage 2, one step
  more urgent). Each stage fires once per last purchase; a new purchase starts over.
- **replenishment_reminder**: an ordered item lasts quantity x consumption days (from
  the item, else `catalogue`). A re-order before it runs out extends the supply (the
  plan is re-made, a pending reminder is replaced). The reminder falls due
  `replenishment_lead_days` before the supply runs out; the skus due the same day make
  one task.
- **satisfaction_followup**: a call or ticket rated `satisfaction_max` or lower, one task
  per rating (cooldown permitting).
- **upsell** (whenever the customer is re-valued: a day with events, or a day its
  window or a timer moves; judged customers only): revenue
  of the last `upsell_recent_days` at least `upsell_growth` x the period before (which
  must have revenue), and up by `upsell_min_increase` or more.
- **service_cost_review** (whenever the customer is re-valued): windowed service cost above the
  windowed revenue and at least `service_cost_min`.

Every task passes two gates: the kind's cooldown (at most one task per customer and
kind within `cooldown_days`, counted as suppressed `cooldown`), and the customer's
contact preference: a customer whose latest preference is do-not-call gets no task
(suppressed `opted_out`). That one gate reads the latest preference, not the one as of E:
an opt-out is honoured the moment it is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from schemas.care_config import CareSettings, SpikeSettings, TicketSettings
from streams import window
from streams.ids import deterministic_id, id_hash
from streams.spikes import SpikeTest, spike_test
from streams.units import MICROS_PER_DAY, amount, day_of, rfc3339

UNCATEGORISED = "uncategorised"
OTHER = "other"
MAX_PENDING_RATINGS = 256  # per customer; more low ratings in a day are not followed up
MAX_PENDING_TICKETS = 1024
#: One order line's supply counts for at most this many days (a century): the run-out
#: day stays a small integer however large the quantities.
MAX_SUPPLY_DAYS = 36_500
TIER_LOG_DAYS = 30  # tier changes remembered (and at least the last two)
TIMELINE_ENTRIES = 24  # tier changes, tasks and spikes remembered for the customer page
TIMELINE_TEXT = 240  # characters of each entry's text kept


@dataclass
class CareMemory:
    """What the care rules remember about one customer (persisted with its state)."""

    last_task: dict[str, int] = field(default_factory=dict)  # kind -> day of last task
    churn_anchor: int | None = None  # the last-purchase day the churn stages refer to
    churn_stage: int = 0  # stages fired for that purchase (0, 1, 2)
    #: sku -> [run-out day, reminded (0/1)]: the supply plan as of the last close
    stock: dict[str, list[int]] = field(default_factory=dict)
    #: sku -> [[order day, days of supply], ...] applied but not yet folded into `stock`
    orders: dict[str, list[list[int]]] = field(default_factory=dict)
    #: low ratings not yet followed up: [occurred_at, id hash, satisfaction, source, category, ref]
    ratings: list[list[Any]] = field(default_factory=list)
    #: day -> category -> basic questions (the spike horizon only)
    basic_days: dict[int, dict[str, int]] = field(default_factory=dict)
    solved: dict[str, int] = field(default_factory=dict)  # category -> first day resolved
    last_spike: int | None = None
    #: [day, previous tier, tier] of recent tier changes (ticket priorities read them)
    tier_log: list[list[Any]] = field(default_factory=list)
    #: opened/reopened tickets waiting for their tier: [occurred_at, ticket_id, status]
    tickets: list[list[Any]] = field(default_factory=list)
    #: what was emitted for the customer, latest last (the customer page):
    #: [day, "tier" | "task" | "spike", text], at most TIMELINE_ENTRIES
    timeline: list[list[Any]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.last_task
            or self.churn_anchor is not None
            or self.churn_stage
            or self.stock
            or self.orders
            or self.ratings
            or self.basic_days
            or self.solved
            or self.last_spike is not None
            or self.tier_log
            or self.tickets
            or self.timeline
        )


@dataclass(frozen=True, slots=True)
class CareRules:
    spikes: SpikeSettings = field(default_factory=SpikeSettings)
    care: CareSettings = field(default_factory=CareSettings)
    tickets: TicketSettings = field(default_factory=TicketSettings)

    @property
    def spike_horizon_days(self) -> int:
        return self.spikes.recent_days + self.spikes.baseline_days

    @property
    def retention_days(self) -> int:
        """Day buckets the care rules read back from a closed day."""
        return max(
            self.spike_horizon_days,
            2 * self.care.upsell_recent_days,
            self.care.churn_second_days + 1,
        )


# -- recording, when an event is applied -------------------------------------------------
def note_contact(
    memory: CareMemory,
    *,
    day: int,
    at: int,
    event_id: str,
    source: str,
    basic: bool,
    category: str | None,
    resolved: bool,
    satisfaction: int | None,
    rules: CareRules,
) -> None:
    """A call, or a ticket step: basic questions, resolutions and low ratings."""
    name = category or UNCATEGORISED
    if basic:
        counts = memory.basic_days.setdefault(day, {})
        if name not in counts and len(counts) >= rules.spikes.max_categories:
            name = OTHER
        counts[name] = counts.get(name, 0) + 1
    if resolved and category:
        first = memory.solved.get(category)
        if first is None or day < first:
            memory.solved[category] = day
            if len(memory.solved) > rules.spikes.max_categories:
                # forget the category resolved most recently: the oldest ones are the
                # evidence that questions repeat
                newest = max(memory.solved, key=lambda c: (memory.solved[c], c))
                del memory.solved[newest]
    low = satisfaction is not None and satisfaction <= rules.care.satisfaction_max
    if low and len(memory.ratings) < MAX_PENDING_RATINGS:
        memory.ratings.append(
            [at, id_hash(event_id), satisfaction, source, category or "", event_id]
        )


def note_order_items(
    memory: CareMemory, *, day: int, items: list[tuple[str, float, float | None]], rules: CareRules
) -> int:
    """Items of a purchase (sku, quantity, consumption days). Returns the items skipped
    because neither the item nor the catalogue says how long they last, or because more
    than 2 x `max_skus` skus already wait for the next close.

    Lines of the same sku and day are one line: folding adds their supplies in any order
    (see _replenish), so merging them changes nothing but the state's size, which would
    otherwise grow with every order until the day is closed.
    """
    skipped = 0
    for sku, quantity, consumption in items:
        days = consumption if consumption is not None else rules.care.catalogue.get(sku)
        pending = memory.orders.get(sku)
        if days is None or (pending is None and len(memory.orders) >= 2 * rules.care.max_skus):
            skipped += 1
            continue
        supply = min(max(1, math.floor(quantity * days)), MAX_SUPPLY_DAYS)
        if pending is None:
            memory.orders[sku] = [[day, supply]]
            continue
        for line in pending:
            if line[0] == day:
                line[1] = min(line[1] + supply, MAX_SUPPLY_DAYS)
                break
        else:
            pending.append([day, supply])
    return skipped


def note_ticket_opened(memory: CareMemory, *, at: int, ticket_id: str, status: str) -> bool:
    if len(memory.tickets) >= MAX_PENDING_TICKETS:
        return False
    memory.tickets.append([at, ticket_id, status])
    return True


# -- deciding, as of a closed day ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TaskDraft:
    kind: str
    task_id: str
    priority: int
    tier: str
    reason: str
    due_at: int  # epoch µs
    expires_at: int
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpikeFinding:
    event_id: str
    test: SpikeTest
    recent_days: int
    top_categories: list[tuple[str, int]]
    repeat_solved_share: float
    suggested_action: str


@dataclass(frozen=True, slots=True)
class ChurnOutlook:
    """What the population model says of a buyer as of the day (rule `model`)."""

    last_purchase_day: int
    p_alive: float
    value_at_risk: float  # its predicted CLV were it alive (currency units)
    purchases_365d: float  # expected purchases in the next 365 days


@dataclass
class DayCare:
    tasks: list[TaskDraft] = field(default_factory=list)
    spike: SpikeFinding | None = None
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason)


class _Gate:
    """Cooldown and opt-out, shared by every rule of one customer's day."""

    def __init__(
        self,
        customer_id: str,
        memory: CareMemory,
        *,
        day: int,
        tier: str,
        opted_out: bool,
        settings: CareSettings,
        out: DayCare,
    ) -> None:
        self.customer_id = customer_id
        self.memory = memory
        self.day = day
        self.tier = tier
        self.opted_out = opted_out
        self.settings = settings
        self.out = out
        self.as_of = (day + 1) * MICROS_PER_DAY

    def offer(
        self,
        kind: str,
        anchor: object,
        reason: str,
        context: dict[str, Any],
        *,
        urgency: int = 0,
    ) -> bool:
        if self.opted_out:
            self.out.suppressed.append((kind, "opted_out"))
            return False
        last = self.memory.last_task.get(kind)
        if last is not None and self.day - last < self.settings.cooldown_days[kind]:
            self.out.suppressed.append((kind, "cooldown"))
            return False
        self.memory.last_task[kind] = self.day
        priority = max(1, self.settings.priority(kind, self.tier) - urgency)
        expires = self.as_of + self.settings.expires_days[kind] * MICROS_PER_DAY
        self.out.tasks.append(
            TaskDraft(
                kind=kind,
                task_id=deterministic_id("care", self.customer_id, kind, anchor),
                priority=priority,
                tier=self.tier,
                reason=reason,
                due_at=self.as_of,
                expires_at=expires,
                context=context,
            )
        )
        return True


def evaluate_day(
    *,
    customer_id: str,
    memory: CareMemory,
    days: window.Buckets,
    first_seen_day: int,
    day: int,
    tier: str,
    judged: bool,
    tier_change: tuple[str, str] | None,
    revalued: bool,
    opted_out: bool,
    window_days: int,
    rules: CareRules,
    outlook: ChurnOutlook | None = None,
) -> DayCare:
    """Every care rule for one customer as of the end of `day` (mutates `memory`)."""
    out = DayCare()
    gate = _Gate(
        customer_id,
        memory,
        day=day,
        tier=tier,
        opted_out=opted_out,
        settings=rules.care,
        out=out,
    )
    if tier_change is not None:
        _log_tier(memory, day, *tier_change)
    _spike(gate, days, first_seen_day, rules)
    if tier_change is not None:
        _vip(gate, *tier_change)
    if rules.care.churn_rule == "model":
        _churn_by_model(gate, outlook, rules.care)
    else:
        _churn(gate, days, rules.care)
    _replenish(gate, rules.care)
    _satisfaction(gate)
    if revalued:
        _upsell(gate, days, judged, rules.care)
        _service_cost(gate, days, window_days, rules.care)
    forget_old(memory, day, rules)
    return out


def _spike(gate: _Gate, days: window.Buckets, first_seen_day: int, rules: CareRules) -> None:
    settings = rules.spikes
    memory, day = gate.memory, gate.day
    recent_start = day - settings.recent_days + 1
    recent = _sum(days, window.BASIC_QUESTIONS, recent_start, day)
    if recent < settings.min_count:
        return
    if memory.last_spike is not None and day - memory.last_spike < settings.cooldown_days:
        return
    baseline_start = recent_start - settings.baseline_days
    baseline = _sum(days, window.BASIC_QUESTIONS, baseline_start, recent_start - 1)
    exposure = max(0, recent_start - max(first_seen_day, baseline_start))
    if exposure < settings.min_baseline_days:
        return
    test = spike_test(
        recent,
        baseline,
        exposure,
        recent_days=settings.recent_days,
    )
    if test.p_value >= settings.alpha:
        return
    memory.last_spike = day
    by_category: dict[str, int] = {}
    for d, counts in memory.basic_days.items():
        if recent_start <= d <= day:
            for category, n in counts.items():
                by_category[category] = by_category.get(category, 0) + n
    ranked = sorted(by_category.items(), key=lambda item: (-item[1], item[0]))
    top = ranked[: settings.top_categories]
    counted = sum(by_category.values())
    repeats = sum(n for c, n in by_category.items() if memory.solved.get(c, day + 1) < recent_start)
    share = repeats / counted if counted else 0.0
    names = ", ".join(c for c, _ in top) or UNCATEGORISED
    if share >= 0.5:
        action = (
            f"offer training on {names}: {share:.0%} of the recent basic questions are in "
            "categories this customer had already had resolved, a sign of new staff"
        )
    else:
        action = f"offer an onboarding session on {names} and check the help material"
    finding = SpikeFinding(
        event_id=deterministic_id("spike", gate.customer_id, day),
        test=test,
        recent_days=settings.recent_days,
        top_categories=top,
        repeat_solved_share=share,
        suggested_action=action,
    )
    gate.out.spike = finding
    gate.offer(
        "basic_question_training",
        day,
        f"{recent} basic questions in {settings.recent_days} days against "
        f"{test.expected_count:.1f} expected (p={test.p_value:.2g}); {action}",
        {
            "recent_count": recent,
            "expected_count": round(test.expected_count, 3),
            "p_value": test.p_value,
            "top_categories": [{"category": c, "count": n} for c, n in top],
            "repeat_solved_share": round(share, 4),
            "spike_event_id": finding.event_id,
        },
    )


def _vip(gate: _Gate, previous: str, tier: str) -> None:
    if tier == "vip" and previous != "vip":
        gate.offer(
            "vip_welcome",
            gate.day,
            f"became vip (was {previous}): welcome call",
            {"previous_tier": previous, "tier": tier},
        )
    elif previous == "vip" and tier != "vip":
        gate.offer(
            "vip_retention",
            gate.day,
            f"left vip for {tier}: retention call",
            {"previous_tier": previous, "tier": tier},
        )


def last_purchase_day(days: window.Buckets, day: int) -> int | None:
    return days.last_day_with(window.PURCHASES, day)


def _churn(gate: _Gate, days: window.Buckets, settings: CareSettings) -> None:
    memory, day = gate.memory, gate.day
    last = last_purchase_day(days, day)
    if last is None:
        return
    # the stages fired for the current last purchase (none if the anchor is an older one:
    # the anchor moves only when a stage fires, so a purchase alone changes no memory)
    fired = memory.churn_stage if memory.churn_anchor == last else 0
    silent = day - last
    stage = (
        2
        if silent >= settings.churn_second_days
        else 1
        if silent >= settings.churn_first_days
        else 0
    )
    if stage <= fired:
        return
    memory.churn_anchor, memory.churn_stage = last, stage
    gate.offer(
        "churn_risk",
        (last, stage),
        f"no purchase for {silent} days (stage {stage}: "
        f"{settings.churn_first_days if stage == 1 else settings.churn_second_days} days)",
        {"stage": stage, "days_without_purchase": silent, "last_purchase_day": _date(last)},
        urgency=stage - 1,
    )


def _churn_by_model(gate: _Gate, outlook: ChurnOutlook | None, settings: CareSettings) -> None:
    if outlook is None:  # no model yet, or not a buyer
        return
    memory, last = gate.memory, outlook.last_purchase_day
    if churn_decided(memory, last) or outlook.p_alive >= settings.churn_p_alive:
        return  # (the memory changes only when the rule decides)
    # decided for this last purchase, whatever the gates say
    memory.churn_anchor, memory.churn_stage = last, 1
    at_stake = outlook.value_at_risk
    floor = settings.churn_min_value_at_risk
    if at_stake < floor:
        gate.out.suppressed.append(("churn_risk", "low_value"))
        return
    urgency = 0 if floor <= 0 else min(2, int(math.log10(at_stake / floor)))
    gate.offer(
        "churn_risk",
        (last, "model"),
        f"P(alive) {outlook.p_alive:.2f} below {settings.churn_p_alive:g} with "
        f"{at_stake:,.2f} at risk; no purchase for {gate.day - last} days",
        {
            "rule": "model",
            "p_alive": round(outlook.p_alive, 4),
            "value_at_risk": round(at_stake, 2),
            "expected_purchases_365d_if_alive": round(
                outlook.purchases_365d / outlook.p_alive if outlook.p_alive > 0 else 0.0, 4
            ),
            "days_without_purchase": gate.day - last,
            "last_purchase_day": _date(last),
        },
        urgency=urgency,
    )


def churn_decided(memory: CareMemory, last_purchase_day: int) -> bool:
    """Whether the model rule has decided on this last purchase already."""
    return memory.churn_anchor == last_purchase_day and memory.churn_stage > 0


def settle_day(memory: CareMemory, day: int, rules: CareRules) -> None:
    """What the care rules do to the memory as of `day` that decides nothing, as a
    function of the day alone: the orders up to it folded into the supply plan, what no
    rule looks at any more dropped. Idempotent, and settling day E then F equals
    settling F (a tiering that decides nothing need not write the state: streams/
    valuation.py apply_derived repeats this)."""
    _fold_orders(memory, day, rules.care)
    forget_old(memory, day, rules)


def _fold_orders(memory: CareMemory, day: int, settings: CareSettings) -> None:
    for sku in sorted(memory.orders):
        pending = memory.orders[sku]
        ready = sorted(o for o in pending if o[0] <= day)
        if not ready:
            continue
        later = [o for o in pending if o[0] > day]
        plan = memory.stock.get(sku)
        run_out = plan[0] if plan else None
        for order_day, supply in ready:
            run_out = (order_day if run_out is None else max(run_out, order_day)) + supply
        assert run_out is not None
        memory.stock[sku] = [run_out, 0]
        if later:
            memory.orders[sku] = later
        else:
            del memory.orders[sku]


def _replenish(gate: _Gate, settings: CareSettings) -> None:
    memory, day = gate.memory, gate.day
    _fold_orders(memory, day, settings)
    due = []
    for sku in sorted(memory.stock):
        run_out, reminded = memory.stock[sku]
        if not reminded and run_out - settings.replenishment_lead_days <= day:
            memory.stock[sku] = [run_out, 1]
            if run_out >= day:  # a supply long gone (a replayed past) is not reminded
                due.append((sku, run_out))
    if due:
        gate.offer(
            "replenishment_reminder",
            gate.day,
            "runs out soon: " + ", ".join(f"{sku} on {_date(r)}" for sku, r in due),
            {"items": [{"sku": sku, "runs_out_on": _date(r)} for sku, r in due]},
        )
    if len(memory.stock) > settings.max_skus:
        for sku in sorted(memory.stock, key=lambda s: (memory.stock[s][0], s))[
            : len(memory.stock) - settings.max_skus
        ]:
            del memory.stock[sku]


def _satisfaction(gate: _Gate) -> None:
    memory, day = gate.memory, gate.day
    ready = sorted(r for r in memory.ratings if day_of(r[0]) <= day)
    if not ready:
        return
    memory.ratings = [r for r in memory.ratings if day_of(r[0]) > day]
    for at, hashed, satisfaction, source, category, ref in ready:
        gate.offer(
            "satisfaction_followup",
            hashed,
            f"a {source} rated {satisfaction} of 5"
            + (f" ({category})" if category else "")
            + f" on {rfc3339(at)}",
            {
                "satisfaction": satisfaction,
                "source": source,
                "category": category or None,
                "occurred_at": rfc3339(at),
                "reference": ref,
            },
        )


def _upsell(gate: _Gate, days: window.Buckets, judged: bool, settings: CareSettings) -> None:
    if not judged:
        return
    width, day = settings.upsell_recent_days, gate.day
    recent = _sum(days, window.REVENUE, day - width + 1, day)
    before = _sum(days, window.REVENUE, day - 2 * width + 1, day - width)
    if before <= 0 or recent < settings.upsell_growth * before:
        return
    if amount(recent - before) < settings.upsell_min_increase:
        return
    gate.offer(
        "upsell",
        gate.day,
        f"revenue of the last {width} days {amount(recent):.2f} is "
        f"{recent / before:.1f}x the {width} days before ({amount(before):.2f})",
        {
            "recent_revenue": amount(recent),
            "previous_revenue": amount(before),
            "growth": round(recent / before, 4),
            "period_days": width,
        },
    )


def _service_cost(
    gate: _Gate, days: window.Buckets, window_days: int, settings: CareSettings
) -> None:
    totals = window.window_totals(days, end_day=gate.day, window_days=window_days)
    cost, revenue = totals.service_cost, totals.revenue
    if cost <= revenue or amount(cost) < settings.service_cost_min:
        return
    gate.offer(
        "service_cost_review",
        gate.day,
        f"service cost {amount(cost):.2f} exceeds revenue {amount(revenue):.2f} over "
        f"{window_days} days",
        {
            "service_cost": amount(cost),
            "revenue": amount(revenue),
            "contacts": totals.contacts,
            "window_days": window_days,
        },
    )


def note_timeline(memory: CareMemory, day: int, kind: str, text: str) -> None:
    """Remember an emitted tier change, task or spike for the customer page (bounded)."""
    memory.timeline.append([day, kind, text[:TIMELINE_TEXT]])
    del memory.timeline[:-TIMELINE_ENTRIES]


def _log_tier(memory: CareMemory, day: int, previous: str, tier: str) -> None:
    memory.tier_log.append([day, previous, tier])


def forget_old(memory: CareMemory, day: int, rules: CareRules) -> None:
    """Drop what no rule looks at any more as of `day` (idempotent, monotone in `day`)."""
    start = day - rules.spike_horizon_days + 1
    for d in [d for d in memory.basic_days if d < start]:
        del memory.basic_days[d]
    log = memory.tier_log
    if len(log) > 2:
        keep = [e for e in log[:-2] if e[0] >= day - TIER_LOG_DAYS]
        memory.tier_log = keep + log[-2:]


def due_day(memory: CareMemory, days: window.Buckets, day: int, rules: CareRules) -> int | None:
    """The next day after `day` a care rule fires with no new event (churn stages,
    reminders), so the customer is looked at again then. The model rule's day depends
    on the population model: streams/valuation.py adds it."""
    settings = rules.care
    candidates = []
    last = last_purchase_day(days, day) if settings.churn_rule == "stages" else None
    if last is not None:
        stage = memory.churn_stage if memory.churn_anchor == last else 0
        if stage == 0:
            candidates.append(last + settings.churn_first_days)
        elif stage == 1:
            candidates.append(last + settings.churn_second_days)
    for run_out, reminded in memory.stock.values():
        if not reminded:
            candidates.append(run_out - settings.replenishment_lead_days)
    for pending in memory.orders.values():
        for order_day, _ in pending:
            candidates.append(order_day)
    found = [c for c in candidates if c > day]
    return min(found) if found else None


# -- ticket priorities ----------------------------------------------------------------------
def tier_lag_days(allowed_lateness_seconds: int) -> int:
    """A ticket on day D is prioritised by the tier as of D minus this: the last day that
    is normally closed when D's events arrive, so live tickets wait for nothing."""
    return math.ceil(allowed_lateness_seconds / 86400) + 1


def tier_at(memory: CareMemory, current: str, day: int) -> str:
    """The customer's tier as of the end of `day`, from the recent tier changes."""
    log = memory.tier_log
    if not log:
        return current
    tier: str = log[0][1]
    for changed_day, _previous, new in log:
        if changed_day <= day:
            tier = new
        else:
            break
    return tier


@dataclass(frozen=True, slots=True)
class TicketDecision:
    event_id: str
    ticket_id: str
    occurred_at: int
    tier: str
    tier_day: int
    priority: int
    sla_minutes: int
    reason: str


def ticket_priority(
    customer_id: str,
    ticket: list[Any],
    tier: str,
    tier_day: int,
    settings: TicketSettings,
) -> TicketDecision:
    at, ticket_id, status = ticket
    priority = settings.priority[tier]
    sla = settings.sla_minutes[tier]
    reason = f"{tier} customer (tier as of {_date(tier_day)}): priority {priority}, SLA {sla} min"
    if status == "reopened" and (settings.reopened_boost or settings.reopened_sla_factor < 1):
        priority = max(1, priority - settings.reopened_boost)
        sla = max(1, int(sla * settings.reopened_sla_factor))
        reason += f"; reopened: priority {priority}, SLA {sla} min"
    return TicketDecision(
        event_id=deterministic_id("ticket", customer_id, ticket_id, status, at),
        ticket_id=ticket_id,
        occurred_at=at,
        tier=tier,
        tier_day=tier_day,
        priority=priority,
        sla_minutes=sla,
        reason=reason,
    )


def ready_tickets(
    customer_id: str,
    memory: CareMemory,
    *,
    current_tier: str,
    tiered_day: int,
    rules: CareRules,
    lag: int,
) -> list[TicketDecision]:
    """Decide (and forget) the waiting tickets whose tier day is decided by now."""
    ready: list[tuple[int, list[Any]]] = []
    waiting: list[tuple[int, list[Any]]] = []
    for ticket in memory.tickets:
        tier_day = day_of(ticket[0]) - lag
        (ready if tier_day <= tiered_day else waiting).append((tier_day, ticket))
    memory.tickets = [t for _, t in waiting]
    return [
        ticket_priority(customer_id, ticket, tier_at(memory, current_tier, d), d, rules.tickets)
        for d, ticket in sorted(ready, key=lambda x: (x[1][0], x[1][1]))
    ]


def first_ticket_day(memory: CareMemory, lag: int) -> int | None:
    days = [day_of(t[0]) - lag for t in memory.tickets]
    return min(days) if days else None


def _sum(days: window.Buckets, index: int, start: int, end: int) -> int:
    return days.field_sum(index, start, end)


def _date(day: int) -> str:
    return rfc3339(day * MICROS_PER_DAY)[:10]


# -- the dialer budget ----------------------------------------------------------------------
def partition_budget(total: int, partitions: int, partition: int) -> int | None:
    """One partition's share of a kind's daily budget (None: no limit). Customers are
    spread over the partitions by hash, so each takes an even share: the shares add up to
    the total exactly, and each partition decides alone, with no wait for the others."""
    if total <= 0:
        return None
    return total // partitions + (1 if partition < total % partitions else 0)


#: A task waiting for the day's budget: [value, task_id, kind, ...whatever the caller keeps]
Queued = list[Any]


def within_budget(
    queued: list[Queued], budgets: dict[str, int | None]
) -> tuple[list[Queued], list[Queued]]:
    """(kept, dropped): per kind, the `budgets[kind]` most valuable (ties: the smaller task
    id), in their queued order."""
    by_kind: dict[str, list[Queued]] = {}
    for entry in queued:
        by_kind.setdefault(entry[2], []).append(entry)
    chosen: set[str] = set()
    for kind, entries in by_kind.items():
        budget = budgets.get(kind)
        ranked = sorted(entries, key=lambda e: (-e[0], e[1]))
        chosen.update(e[1] for e in (ranked if budget is None else ranked[:budget]))
    kept = [e for e in queued if e[1] in chosen]
    dropped = [e for e in queued if e[1] not in chosen]
    return kept, dropped
