"""Synthetic, seeded, realistic input events in event-time order.

A discrete-event simulation: every customer has an order process, a contact process and
optional subscription / service-fee processes; emitted events may schedule follow-ups
(a ticket's life cycle, a refund, a consumables re-order). The population is what a
contact centre sees: heavy-tailed order values, a weekday/weekend rhythm and office hours
in contacts, a share of basic questions, customers who go quiet, customers who buy
consumables, customers whose basic questions suddenly burst (new staff), some opted out
of calls. The same seed gives byte-identical output.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, cast

import orjson

DAY = 86_400.0
BASIC_CATEGORIES = (
    "password_reset",
    "login",
    "how_to",
    "getting_started",
    "billing_question",
    "faq",
)
OTHER_CATEGORIES = (
    "technical_issue",
    "integration",
    "outage",
    "contract",
    "complaint",
    "feature_request",
    "delivery",
    "invoice_dispute",
)
CHANNELS = ("phone", "chat", "email", "video", "web")
CHANNEL_WEIGHTS = (0.5, 0.25, 0.15, 0.03, 0.07)
#: (sku, days one unit lasts)
CATALOGUE = (
    ("toner-xl", 30.0),
    ("paper-a4-box", 14.0),
    ("coffee-beans-1kg", 21.0),
    ("water-filter", 60.0),
    ("cleaning-kit", 45.0),
)
_TOPIC_OF = {
    "call": "calls",
    "order": "orders",
    "ticket": "tickets",
    "contact_preference": "contact_preferences",
}

# process kinds in the event heap
_ORDER, _CONTACT, _SUBSCRIPTION, _FEE, _TICKET_STEP, _REFUND, _PREFERENCE, _BURST = range(8)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. `start` is the event time of day 0 (UTC)."""

    customers: int = 1000
    days: float = 365.0
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    currency: str = "EUR"
    invalid_share: float = 0.0  # share of messages replaced by broken ones (dead letters)
    duplicate_share: float = 0.0  # share of events sent twice (ignored by the workers)


@dataclass(slots=True)
class _Customer:
    cid: str
    join: float
    order_gap_days: float
    order_value: float
    contact_gap_days: float
    basic_share: float
    satisfaction_bias: float
    churn_at: float | None
    burst: tuple[float, float] | None
    consumables: tuple[tuple[str, float], ...]
    ticket_share: float


class SimEvent(NamedTuple):
    """One simulated message: its topic key ('calls', ...), key and JSON value."""

    topic: str
    key: bytes
    value: bytes
    occurred_at: float  # epoch seconds


class Simulator:
    """Generates the events of a SimulationConfig, oldest first."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._t0 = config.start.timestamp()
        self._end = self._t0 + config.days * DAY
        self._heap: list[tuple[float, int, int, int, object]] = []
        self._seq = 0
        self._ids = 0
        self._customers: list[_Customer] = []
        for index in range(config.customers):
            self._customers.append(self._profile(index))

    # -- population --------------------------------------------------------------------
    def _profile(self, index: int) -> _Customer:
        r = self._rng
        days = self.config.days
        join = 0.0 if r.random() < 0.7 else r.uniform(0, days * 0.9)
        heavy_service = r.random() < 0.15
        churn_at = r.uniform(0.3 * days, 0.9 * days) if r.random() < 0.15 else None
        burst = None
        if r.random() < 0.05:
            begin = r.uniform(max(join + 70.0, 0.2 * days), max(join + 71.0, days - 8.0))
            burst = (begin, begin + r.uniform(5.0, 9.0))
        consumables: tuple[tuple[str, float], ...] = ()
        if r.random() < 0.3:
            consumables = tuple(r.sample(CATALOGUE, r.randint(1, 2)))
        return _Customer(
            cid=f"C{index:07d}",
            join=self._t0 + join * DAY,
            order_gap_days=min(200.0, max(0.3, math.exp(r.gauss(math.log(20.0), 0.9)))),
            order_value=math.exp(r.gauss(4.5, 1.2)),  # heavy tail: a few are worth a lot
            contact_gap_days=min(120.0, max(0.5, math.exp(r.gauss(math.log(18.0), 0.9))))
            / (4.0 if heavy_service else 1.0),
            basic_share=r.uniform(0.05, 0.35),
            satisfaction_bias=r.gauss(0.0, 0.6) - (0.5 if heavy_service else 0.0),
            churn_at=None if churn_at is None else self._t0 + churn_at * DAY,
            burst=None if burst is None else (self._t0 + burst[0] * DAY, self._t0 + burst[1] * DAY),
            consumables=consumables,
            ticket_share=r.uniform(0.1, 0.5),
        )

    # -- the event loop ----------------------------------------------------------------
    def __iter__(self) -> Iterator[SimEvent]:
        return self.events()

    def events(self) -> Iterator[SimEvent]:
        r = self._rng
        for index, c in enumerate(self._customers):
            self._push(c.join + r.uniform(0, c.order_gap_days) * DAY, index, _ORDER, None)
            self._push(c.join + r.uniform(0, c.contact_gap_days) * DAY, index, _CONTACT, None)
            if r.random() < 0.10:
                self._push(
                    c.join + r.uniform(0, 30) * DAY,
                    index,
                    _SUBSCRIPTION,
                    round(r.choice((29.0, 49.0, 99.0, 249.0)), 2),
                )
            if r.random() < 0.05:
                self._push(
                    c.join + r.uniform(0, 30) * DAY, index, _FEE, round(r.uniform(20, 200), 2)
                )
            if r.random() < 0.03:
                self._push(c.join + r.uniform(0, 2) * DAY, index, _PREFERENCE, True)
            if c.burst is not None:
                self._push(self._office_hours(c.burst[0]), index, _BURST, None)
        invalid = self.config.invalid_share
        duplicate = self.config.duplicate_share
        recent: list[SimEvent] = []
        while self._heap:
            at, _, index, kind, data = heapq.heappop(self._heap)
            if at >= self._end:
                break
            event = self._emit(at, self._customers[index], index, kind, data)
            if event is None:
                continue
            if invalid and r.random() < invalid:
                yield self._broken(event)
                continue
            yield event
            if duplicate:
                # a producer retry: one of the last few events, sent again moments later
                recent.append(event)
                if len(recent) > 8:
                    del recent[0]
                if r.random() < duplicate:
                    yield r.choice(recent)

    def _push(self, at: float, index: int, kind: int, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, index, kind, data))

    def _emit(
        self, at: float, c: _Customer, index: int, kind: int, data: object
    ) -> SimEvent | None:
        if kind == _ORDER:
            return self._order(at, c, index)
        if kind == _CONTACT:
            return self._contact(at, c, index)
        if kind == _BURST:
            return self._burst_contact(at, c, index)
        if kind == _TICKET_STEP:
            return self._ticket_step(at, c, index, data)
        if kind == _SUBSCRIPTION:
            if c.churn_at is not None and at > c.churn_at:
                return None
            self._push(at + 30 * DAY, index, kind, data)
            return self._order_event(at, c, "subscription", float(data))  # type: ignore[arg-type]
        if kind == _FEE:
            self._push(at + 30 * DAY, index, kind, data)
            return self._order_event(at, c, "service_fee", float(data))  # type: ignore[arg-type]
        if kind == _REFUND:
            return self._order_event(at, c, "refund", float(data))  # type: ignore[arg-type]
        return self._make("contact_preference", at, c, {"do_not_call": bool(data)})

    # -- orders ------------------------------------------------------------------------
    def _order(self, at: float, c: _Customer, index: int) -> SimEvent | None:
        r = self._rng
        if c.churn_at is not None and at > c.churn_at:
            return None  # gone quiet: no more purchases
        fields: dict[str, object] = {}
        gap = c.order_gap_days * r.expovariate(1.0)
        if c.consumables:
            items = []
            for sku, days in c.consumables:
                quantity = r.randint(1, 4)
                items.append({"sku": sku, "quantity": quantity, "consumption_days": days})
            fields["items"] = items
            runs_out = min(i["quantity"] * i["consumption_days"] for i in items)  # type: ignore[operator]
            # re-order around the time it runs out: sometimes early, sometimes late
            gap = max(1.0, runs_out * r.uniform(0.8, 1.3))
        amount = round(c.order_value * r.lognormvariate(0.0, 0.35), 2)
        self._push(self._office_hours(at + gap * DAY), index, _ORDER, None)
        if r.random() < 0.04:
            refund = round(amount * r.choice((1.0, 0.5, 0.2)), 2)
            self._push(at + r.uniform(1, 20) * DAY, index, _REFUND, refund)
        return self._order_event(at, c, "purchase", amount, fields)

    def _order_event(
        self,
        at: float,
        c: _Customer,
        kind: str,
        amount: float,
        extra: dict[str, object] | None = None,
    ) -> SimEvent:
        fields: dict[str, object] = {
            "kind": kind,
            "amount": amount,
            "currency": self.config.currency,
        }
        if extra:
            fields.update(extra)
        return self._make("order", at, c, fields)

    # -- contacts ----------------------------------------------------------------------
    def _contact(self, at: float, c: _Customer, index: int) -> SimEvent | None:
        r = self._rng
        gap = c.contact_gap_days * (3.0 if c.churn_at is not None and at > c.churn_at else 1.0)
        self._push(self._office_hours(at + gap * r.expovariate(1.0) * DAY), index, _CONTACT, None)
        if _weekday(at) >= 5 and r.random() < 0.65:
            return None  # weekends are quiet
        return self._contact_event(at, c, index, basic=r.random() < c.basic_share)

    def _burst_contact(self, at: float, c: _Customer, index: int) -> SimEvent | None:
        """New staff at the customer: basic questions several times a day, for a week."""
        r = self._rng
        assert c.burst is not None
        following = self._office_hours(at + 0.3 * r.expovariate(1.0) * DAY)
        if following < c.burst[1]:
            self._push(following, index, _BURST, None)
        return self._contact_event(at, c, index, basic=r.random() < 0.85)

    def _contact_event(self, at: float, c: _Customer, index: int, *, basic: bool) -> SimEvent:
        r = self._rng
        category = r.choice(BASIC_CATEGORIES if basic else OTHER_CATEGORIES)
        if r.random() < c.ticket_share:
            ticket_id = f"T{self._next_id()}"
            self._push(
                at + r.uniform(0.05, 2.0) * DAY,
                index,
                _TICKET_STEP,
                (ticket_id, "updated", category, 0),
            )
            return self._make(
                "ticket",
                at,
                c,
                {
                    "ticket_id": ticket_id,
                    "status": "opened",
                    "category": category,
                    "channel": r.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
                    "handling_seconds": round(r.uniform(60, 900), 1),
                },
            )
        channel = r.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        fields: dict[str, object] = {
            "channel": channel,
            "direction": "inbound" if r.random() < 0.9 else "outbound",
            "duration_seconds": round(r.lognormvariate(math.log(240 if basic else 540), 0.6), 1),
            "wait_seconds": round(r.expovariate(1 / 60), 1),
            "wrap_up_seconds": round(r.uniform(20, 180), 1),
            "agent_id": f"A{r.randint(1, 60):03d}",
            "category": category,
            "resolved": r.random() < 0.8,
        }
        if r.random() < 0.1:
            fields["is_basic"] = basic
        if r.random() < 0.4:
            fields["satisfaction"] = self._satisfaction(c)
        return self._make("call", at, c, fields)

    def _ticket_step(self, at: float, c: _Customer, index: int, data: object) -> SimEvent:
        r = self._rng
        ticket_id, status, category, reopened = cast(tuple[str, str, str, bool], data)
        follow = {"updated": "resolved", "resolved": "closed", "reopened": "resolved"}
        nxt = follow.get(status)
        if status == "resolved" and not reopened and r.random() < 0.05:
            nxt = "reopened"
        if nxt is not None:
            self._push(
                at + r.uniform(0.1, 3.0) * DAY,
                index,
                _TICKET_STEP,
                (ticket_id, nxt, category, reopened or nxt == "reopened"),
            )
        fields: dict[str, object] = {"ticket_id": ticket_id, "status": status, "category": category}
        if status in ("updated", "resolved", "reopened"):
            fields["handling_seconds"] = round(r.uniform(60, 1800), 1)
        if status == "closed" and r.random() < 0.3:
            fields["satisfaction"] = self._satisfaction(c)
        return self._make("ticket", at, c, fields)

    def _satisfaction(self, c: _Customer) -> int:
        score = round(4.0 + c.satisfaction_bias + self._rng.gauss(0.0, 1.0))
        return max(1, min(5, score))

    # -- helpers -----------------------------------------------------------------------
    def _office_hours(self, at: float) -> float:
        """Move a time to office hours (08:00–18:00 UTC) on its day or the next."""
        day_start = at - (at % DAY)
        seconds = at - day_start
        if 8 * 3600 <= seconds < 18 * 3600:
            return at
        base = day_start + (DAY if seconds >= 18 * 3600 else 0.0)
        return base + 8 * 3600 + self._rng.random() * 10 * 3600

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _make(
        self, event_type: str, at: float, c: _Customer, fields: dict[str, object]
    ) -> SimEvent:
        body: dict[str, object] = {
            "event_type": event_type,
            "event_id": f"{self.config.seed}-{self._next_id()}",
            "customer_id": c.cid,
            "occurred_at": _rfc3339(at),
        }
        body.update(fields)
        return SimEvent(_TOPIC_OF[event_type], c.cid.encode(), orjson.dumps(body), at)

    def _broken(self, event: SimEvent) -> SimEvent:
        """A realistic bad message in place of a good one."""
        r = self._rng
        variant = r.randrange(5)
        if variant == 0:
            value = event.value[: len(event.value) // 2]  # truncated JSON
        elif variant == 1:
            value = b'["not", "an", "object"]'
        elif variant == 2:
            obj = orjson.loads(event.value)
            obj.pop("occurred_at")
            value = orjson.dumps(obj)
        elif variant == 3:
            obj = orjson.loads(event.value)
            obj["event_type"] = "complaint"
            value = orjson.dumps(obj)
        else:
            obj = orjson.loads(event.value)
            obj["customer_id"] = ""
            value = orjson.dumps(obj)
        return SimEvent(event.topic, event.key, value, event.occurred_at)


def _weekday(at: float) -> int:
    """Monday is 0; 1970-01-01 was a Thursday."""
    return (int(at // DAY) + 3) % 7


@functools.lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


def _rfc3339(at: float) -> str:
    """RFC 3339 with milliseconds and a Z, without strftime per event (the hot path)."""
    millis_total = int(at * 1000)
    day, millis = divmod(millis_total, 86_400_000)
    seconds, millis = divmod(millis, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_date(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"
