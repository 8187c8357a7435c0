"""Synthetic, seeded, realistic input events in event-time order.

Every customer has an order process, a contact process and optional subscription,
service-fee, opt-out and burst processes. The population is what a contact centre sees:
heavy-tailed order values, a weekday/weekend rhythm and office hours in contacts, a share
of basic questions, customers who go quiet, customers who buy consumables (and re-order
when they run out), customers whose basic questions suddenly burst (new staff), some
opted out of calls. The same seed gives byte-identical output.

Built for speed (a benchmark must never wait for its input): instead of one priority
queue of every pending event, processes wait in a calendar of day buckets. Each
simulated day runs the processes due that day, each on to its next day; follow-ups that
depend only on their cause (a ticket's whole life cycle, a refund) are drawn at once
into the buckets of the days they fall on. A day's events are then sorted and formatted
in one go. Per-event draws come from precomputed quantile tables of preformatted JSON
fragments (one random number for "a log-normal call duration, rounded and written"),
and lines are assembled from string fragments, not by serialising dicts.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import time
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from statistics import NormalDist
from typing import NamedTuple

import orjson

DAY = 86_400.0
_DAY_MS = 86_400_000  # the simulation keeps time in integer milliseconds
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
_EVENT_TYPES = ("call", "order", "ticket", "contact_preference")
_CALL, _ORDER, _TICKET, _PREFERENCE = range(4)
_TOPICS = tuple(_TOPIC_OF[t] for t in _EVENT_TYPES)

# process kinds in the calendar
_P_ORDER, _P_CONTACT, _P_SUBSCRIPTION, _P_FEE, _P_PREFERENCE, _P_BURST = range(6)

#: one event: (occurred_at in ms, event type, customer index, the end of its JSON line:
#: what follows "occurred_at", from its first field on)
_Record = tuple[int, int, int, str]
_by_time = itemgetter(0)

_QUANTILES = 4096  # levels of a tabulated distribution (12 random bits)
_BITS = 12
_OFFICE_OPEN, _OFFICE_CLOSE = 8 * 3_600_000, 18 * 3_600_000  # ms into the day
_OFFICE_SPAN = _OFFICE_CLOSE - _OFFICE_OPEN


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
    join: int  # times: epoch milliseconds
    order_gap: float  # mean ms between orders (without consumables)
    order_value: float  # cents
    contact_gap: float  # mean ms between contacts
    basic_share: float
    satisfaction_mean: float  # a rating is round(mean + N(0, 1)), clamped to 1..5
    churn_at: float  # inf for a customer who stays
    burst: tuple[int, int] | None
    consumables: tuple[tuple[str, float], ...]
    ticket_share: float


#: a process in the calendar: [when it fires next (ms), kind, customer index, amount in
#: cents (of a subscription or fee)]; a list, as there are millions of them to create
_Process = list[int]
_AT, _KIND, _INDEX, _AMOUNT = range(4)


class SimEvent(NamedTuple):
    """One simulated message: its topic key ('calls', ...), key and JSON value."""

    topic: str
    key: bytes
    value: bytes
    occurred_at: float  # epoch seconds


def jsonl_batches(events: Iterable[SimEvent], size: int = 4096) -> Iterator[tuple[bytes, int]]:
    """Events as JSON lines, `size` at a time, each chunk with its number of lines."""
    chunk: list[bytes] = []
    for event in events:
        chunk.append(event.value)
        if len(chunk) >= size:
            chunk.append(b"")
            yield b"\n".join(chunk), size
            chunk.clear()
    if chunk:
        count = len(chunk)
        chunk.append(b"")
        yield b"\n".join(chunk), count


class _Tables:
    """Preformatted JSON fragments of the per-event distributions, indexed by 12 random
    bits. A continuous distribution is tabulated by quantiles (level i holds the
    ((i + 0.5) / 4096)-quantile); the fields of a call come from two tables of 4,096
    combinations each, drawn once from the fields' own distributions (by a fixed seed, so
    every simulation shares them), which leaves 16.7M combinations per kind of call.
    Seconds are written to one decimal with `:.1f`, the digits of `round(x, 1)` (both
    round the exact binary value correctly; these values are far below 1e16, where
    repr would switch to an exponent) at one conversion instead of two."""

    def __init__(self) -> None:
        normal = NormalDist()
        probabilities = [(i + 0.5) / _QUANTILES for i in range(_QUANTILES)]
        self.normal = [normal.inv_cdf(p) for p in probabilities]
        self.exp1 = [-math.log(1.0 - p) for p in probabilities]
        self.price_factor = [math.exp(0.35 * z) for z in self.normal]  # lognormvariate(0, .35)
        self.opened_handling = [f"{60 + 840 * p:.1f}" for p in probabilities]
        self.step_handling = [f"{60 + 1740 * p:.1f}" for p in probabilities]
        # 100 slots in the exact channel weights
        self.channel = [
            c for c, w in zip(CHANNELS, CHANNEL_WEIGHTS, strict=True) for _ in range(round(w * 100))
        ]
        draw = random.Random(20250101)
        self.basic_call = self._calls(draw, math.log(240))
        self.other_call = self._calls(draw, math.log(540))
        self.call_more = [
            f'"wait_seconds":{draw.expovariate(1 / 60):.1f},'
            f'"wrap_up_seconds":{draw.uniform(20, 180):.1f},'
            f'"agent_id":"A{draw.randint(1, 60):03d}","category":"'
            for _ in range(_QUANTILES)
        ]
        two = [f"{n:02d}" for n in range(60)]
        seconds = [f"{s}." for s in two]  # 86,400 entries: hours and minutes, then seconds
        self.time_of_day = [
            hm + s for hm in [f"T{h}:{m}:" for h in two[:24] for m in two] for s in seconds
        ]
        self.millis = [f'{m:03d}Z"' for m in range(1000)]
        self.cents = [f"{n:02d}" for n in range(100)]

    def _calls(self, draw: random.Random, log_duration: float) -> list[str]:
        """Channel, direction and duration of a call (a basic question is shorter)."""
        # the channel is what draw.choices(CHANNELS, CHANNEL_WEIGHTS)[0] draws (one random()
        # times the total weight, bisected into the cumulative weights), without
        # accumulating the weights again for every call
        cumulative = list(itertools.accumulate(CHANNEL_WEIGHTS))
        total, last = cumulative[-1] + 0.0, len(CHANNELS) - 1
        return [
            f',"channel":"{CHANNELS[bisect(cumulative, draw.random() * total, 0, last)]}",'
            f'"direction":"{"inbound" if draw.random() < 0.9 else "outbound"}",'
            f'"duration_seconds":{draw.lognormvariate(log_duration, 0.6):.1f},'
            for _ in range(_QUANTILES)
        ]


@functools.lru_cache(maxsize=1)
def _tables() -> _Tables:
    return _Tables()


#: a ticket's steps after it opened, up to the status's closing quote and the next key
_STEPS = tuple(f'{status}","handling_seconds":' for status in ("updated", "resolved"))
_REOPENED_STEPS = tuple(
    f'{status}","handling_seconds":' for status in ("updated", "resolved", "reopened", "resolved")
)
#: the start of an order's line after its time, by kind: up to its amount
_PURCHASE, _REFUND, _SUBSCRIPTION, _SERVICE_FEE = (
    f',"kind":"{kind}","amount":' for kind in ("purchase", "refund", "subscription", "service_fee")
)

#: the end of an event's JSON with a rating, by the unclamped rating
_RATINGS = {n: f',"satisfaction":{max(1, min(5, n))}}}' for n in range(-30, 40)}


def _call_ends(marked: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The end of a call's line: "resolved", then "is_basic" when the event says it;
    indexed [marked][resolved] (one in ten calls says whether it was a basic question)."""
    unmarked = ('","resolved":false', '","resolved":true')
    return unmarked, (unmarked[0] + marked, unmarked[1] + marked)


_BASIC_CALL_ENDS = _call_ends(',"is_basic":true')
_OTHER_CALL_ENDS = _call_ends(',"is_basic":false')


class Simulator:
    """Generates the events of a SimulationConfig, oldest first."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        # the draws of the hot paths, bound once (the same generator: same stream)
        self._random = self._rng.random
        self._bits = self._rng.getrandbits
        self._t0 = round(config.start.timestamp() * 1000)
        self._end = self._t0 + round(config.days * _DAY_MS)
        self._tables = _tables()
        self._customers = [self._profile(index) for index in range(config.customers)]
        self._keys = [c.cid.encode() for c in self._customers]
        #: what follows an event's id in its line: the customer id, the start of the time
        self._id_ends = [f'","customer_id":"{c.cid}","occurred_at":"' for c in self._customers]
        self._heads = [f'{{"event_type":"{t}","event_id":"{config.seed}-' for t in _EVENT_TYPES]
        self._first_day = self._t0 // _DAY_MS  # calendar buckets are UTC days from here
        self._ids = 0  # event ids, numbered in time order
        self._tickets = itertools.count(1)  # ticket ids
        self._ticket_head = f',"ticket_id":"T{config.seed}-'
        self._currency = f',"currency":"{config.currency}"'
        self._out: list[list[_Record]] = []

    # -- population --------------------------------------------------------------------
    def churn_times(self) -> dict[str, float]:
        """customer id -> when it stops buying (epoch seconds; inf: it stays): the
        ground truth a churn rule can be judged against."""
        return {c.cid: c.churn_at / 1000 for c in self._customers}

    def _profile(self, index: int) -> _Customer:
        r = self._rng
        rnd = r.random
        normal = self._tables.normal
        days = self.config.days
        t0 = self._t0
        join = 0.0 if rnd() < 0.7 else rnd() * days * 0.9
        heavy_service = rnd() < 0.15
        churn_at = t0 + (0.3 + 0.6 * rnd()) * days * _DAY_MS if rnd() < 0.15 else math.inf
        burst = None
        if rnd() < 0.05:
            low, high = max(join + 70.0, 0.2 * days), max(join + 71.0, days - 8.0)
            begin = low + (high - low) * rnd()
            end = begin + 5.0 + 4.0 * rnd()
            burst = (t0 + int(begin * _DAY_MS), t0 + int(end * _DAY_MS))
        consumables: tuple[tuple[str, float], ...] = ()
        if rnd() < 0.3:
            first = int(rnd() * len(CATALOGUE))
            consumables = (CATALOGUE[first],)
            if rnd() < 0.5:  # a second, different one
                consumables += (CATALOGUE[(first + 1 + int(rnd() * 4)) % len(CATALOGUE)],)
        # log-normal gaps (median 20 and 18 days) and order values (a heavy tail: a few
        # customers are worth a lot, so the value draws full-precision normals)
        order_gap_days = min(200.0, max(0.3, 20.0 * math.exp(0.9 * normal[r.getrandbits(_BITS)])))
        contact_gap_days = min(120.0, max(0.5, 18.0 * math.exp(0.9 * normal[r.getrandbits(_BITS)])))
        bias = 0.6 * normal[r.getrandbits(_BITS)] - (0.5 if heavy_service else 0.0)
        cid = f"C{index:07d}"
        return _Customer(
            cid,
            t0 + int(join * _DAY_MS),
            order_gap_days * _DAY_MS,
            math.exp(r.gauss(4.5, 1.2)) * 100,  # cents
            contact_gap_days * _DAY_MS / (4.0 if heavy_service else 1.0),
            0.05 + 0.3 * rnd(),
            4.0 + bias,
            churn_at,
            burst,
            consumables,
            0.1 + 0.4 * rnd(),
        )

    def _first_processes(self) -> list[_Process]:
        rnd = self._rng.random
        processes = []
        month = 30 * _DAY_MS
        subscriptions = (2900, 4900, 9900, 24900)
        for index, c in enumerate(self._customers):
            join = c.join
            processes.append([join + int(rnd() * c.order_gap), _P_ORDER, index, 0])
            processes.append([join + int(rnd() * c.contact_gap), _P_CONTACT, index, 0])
            if rnd() < 0.10:
                amount = subscriptions[int(rnd() * 4)]
                processes.append([join + int(rnd() * month), _P_SUBSCRIPTION, index, amount])
            if rnd() < 0.05:
                amount = int(2000 + 18000 * rnd() + 0.5)
                processes.append([join + int(rnd() * month), _P_FEE, index, amount])
            if rnd() < 0.03:
                at = join + int(rnd() * 2 * _DAY_MS)
                processes.append([at, _P_PREFERENCE, index, 0])
            if c.burst is not None:
                processes.append([self._office_hours(c.burst[0]), _P_BURST, index, 0])
        return processes

    # -- the calendar ------------------------------------------------------------------
    def _days(self) -> Iterator[tuple[int, list[_Record]]]:
        """Each simulated UTC day: its number and its events, sorted by time."""
        first, end = self._first_day, self._end
        buckets = (end - 1) // _DAY_MS - first + 1
        calendar: list[list[_Process]] = [[] for _ in range(buckets)]
        self._out = [[] for _ in range(buckets)]
        for process in self._first_processes():
            if process[_AT] < end:
                calendar[process[_AT] // _DAY_MS - first].append(process)
        runners = (  # indexed by kind: _P_ORDER, _P_CONTACT, ...
            self._orders,
            self._contacts,
            self._subscription,
            self._fee,
            self._preference,
            self._burst,
        )
        for bucket in range(buckets):
            due, calendar[bucket] = calendar[bucket], []
            events = self._out[bucket]  # where today's events go, follow-ups included
            day_end = min(end, (first + bucket + 1) * _DAY_MS)
            for process in due:
                # run it through the day; it returns False when it has finished
                if runners[process[_KIND]](process, day_end, events) and process[_AT] < end:
                    calendar[process[_AT] // _DAY_MS - first].append(process)
            self._out[bucket] = []
            if events:
                events.sort(key=_by_time)
                yield first + bucket, events

    def _lines(self, day: int, records: list[_Record]) -> list[str]:
        """A day's sorted events as JSON lines, their ids numbered in time order."""
        heads, id_ends = self._heads, self._id_ends
        time_of_day, millis = self._tables.time_of_day, self._tables.millis
        date = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        midnight = day * _DAY_MS
        first = self._ids + 1
        self._ids += len(records)
        return [
            f"{heads[event_type]}{n}{id_ends[index]}{date}"
            f"{time_of_day[(at - midnight) // 1000]}{millis[at % 1000]}{tail}"
            for n, (at, event_type, index, tail) in enumerate(records, first)
        ]

    def _later(self, at: int, event_type: int, index: int, tail: str) -> None:
        """A follow-up event, into the bucket of its day (dropped past the end)."""
        if at < self._end:
            self._out[at // _DAY_MS - self._first_day].append((at, event_type, index, tail))

    # -- processes: each runs until `day_end`, leaving `at` at its next firing ---------
    # (the hot paths bind their draws and tables to locals and test office hours before
    # calling `_office_hours`: the same draws in the same order, fewer bytecodes)
    def _orders(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        rnd, bits = self._random, self._bits
        t = self._tables
        index = p[_INDEX]
        c = self._customers[index]
        at = p[_AT]
        while at < day_end:
            if at > c.churn_at:
                return False  # gone quiet: no more purchases
            items = ""
            if c.consumables:
                parts = []
                runs_out = math.inf
                for sku, days in c.consumables:
                    quantity = 1 + int(rnd() * 4)
                    parts.append(
                        f'{{"sku":"{sku}","quantity":{quantity},"consumption_days":{days}}}'
                    )
                    runs_out = min(runs_out, quantity * days)
                items = f',"items":[{",".join(parts)}]'
                # re-order around the time it runs out: sometimes early, sometimes late
                gap = max(1.0, runs_out * (0.8 + 0.5 * rnd())) * _DAY_MS
            else:
                gap = c.order_gap * t.exp1[bits(_BITS)]
            amount = int(c.order_value * t.price_factor[bits(_BITS)] + 0.5)
            if rnd() < 0.04:
                refund = int(amount * (1.0, 0.5, 0.2)[int(rnd() * 3)] + 0.5)
                later = at + int((1 + 19 * rnd()) * _DAY_MS)
                self._later(later, _ORDER, index, self._order(_REFUND, refund))
            events.append((at, _ORDER, index, self._order(_PURCHASE, amount, items)))
            at += int(gap)
            ms = at % _DAY_MS
            if not _OFFICE_OPEN <= ms < _OFFICE_CLOSE:  # `_office_hours`, inlined
                at += _OFFICE_OPEN - ms + int(rnd() * _OFFICE_SPAN)
                if ms >= _OFFICE_CLOSE:
                    at += _DAY_MS
        p[_AT] = at
        return True

    def _subscription(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        c = self._customers[p[_INDEX]]
        while p[_AT] < day_end:
            if p[_AT] > c.churn_at:
                return False
            tail = self._order(_SUBSCRIPTION, p[_AMOUNT])
            events.append((p[_AT], _ORDER, p[_INDEX], tail))
            p[_AT] += 30 * _DAY_MS
        return True

    def _fee(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        while p[_AT] < day_end:
            tail = self._order(_SERVICE_FEE, p[_AMOUNT])
            events.append((p[_AT], _ORDER, p[_INDEX], tail))
            p[_AT] += 30 * _DAY_MS
        return True

    def _preference(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        events.append((p[_AT], _PREFERENCE, p[_INDEX], ',"do_not_call":true}'))
        return False

    def _contacts(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        rnd, bits = self._random, self._bits
        exp1 = self._tables.exp1
        index = p[_INDEX]
        c = self._customers[index]
        at = p[_AT]
        while at < day_end:
            gap = c.contact_gap * (3.0 if at > c.churn_at else 1.0)
            following = at + int(gap * exp1[bits(_BITS)])
            ms = following % _DAY_MS
            if not _OFFICE_OPEN <= ms < _OFFICE_CLOSE:  # `_office_hours`, inlined
                following += _OFFICE_OPEN - ms + int(rnd() * _OFFICE_SPAN)
                if ms >= _OFFICE_CLOSE:
                    following += _DAY_MS
            # weekends are quiet: most contacts that would fall on one do not happen
            if (at // _DAY_MS + 3) % 7 < 5 or rnd() >= 0.65:
                self._contact(at, c, index, rnd() < c.basic_share, events)
            at = following
        p[_AT] = at
        return True

    def _burst(self, p: _Process, day_end: int, events: list[_Record]) -> bool:
        """New staff at the customer: basic questions several times a day, for a week."""
        r = self._rng
        c = self._customers[p[_INDEX]]
        assert c.burst is not None
        while p[_AT] < day_end:
            gap = int(0.3 * _DAY_MS * self._tables.exp1[r.getrandbits(_BITS)])
            following = self._office_hours(p[_AT] + gap)
            self._contact(p[_AT], c, p[_INDEX], r.random() < 0.85, events)
            if following >= c.burst[1]:
                return False
            p[_AT] = following
        return True

    # -- events ------------------------------------------------------------------------
    def _order(self, kind: str, cents: int, items: str = "") -> str:
        """The end of an order's line; `kind` is its opening fragment (`_PURCHASE`, ...)."""
        return f"{kind}{cents // 100}.{self._tables.cents[cents % 100]}{self._currency}{items}}}"

    def _contact(
        self, at: int, c: _Customer, index: int, basic: bool, events: list[_Record]
    ) -> None:
        rnd, bits = self._random, self._bits
        t = self._tables
        categories = BASIC_CATEGORIES if basic else OTHER_CATEGORIES
        category = categories[int(rnd() * len(categories))]
        if rnd() < c.ticket_share:
            self._ticket(at, c, index, category, events)
            return
        call = (t.basic_call if basic else t.other_call)[bits(_BITS)]
        ends = _BASIC_CALL_ENDS if basic else _OTHER_CALL_ENDS
        close = ends[rnd() < 0.1][rnd() < 0.8]  # marked as basic or not; resolved
        rated = _RATINGS[round(c.satisfaction_mean + t.normal[bits(_BITS)])] if rnd() < 0.4 else "}"
        events.append(
            (at, _CALL, index, f"{call}{t.call_more[bits(_BITS)]}{category}{close}{rated}")
        )

    def _ticket(
        self, at: int, c: _Customer, index: int, category: str, events: list[_Record]
    ) -> None:
        """An opened ticket, and its whole life: updated, resolved (sometimes reopened and
        resolved again), closed, each some hours to days after the step before."""
        rnd, bits = self._random, self._bits
        t = self._tables
        ticket = f'{self._ticket_head}{next(self._tickets)}","category":"{category}","status":"'
        channel = t.channel[int(rnd() * 100)]
        handling = t.opened_handling[bits(_BITS)]
        tail = f'{ticket}opened","channel":"{channel}","handling_seconds":{handling}}}'
        events.append((at, _TICKET, index, tail))
        reopened = rnd() < 0.05
        at += int((0.05 + 1.95 * rnd()) * _DAY_MS)
        end, out, first = self._end, self._out, self._first_day
        for step in _REOPENED_STEPS if reopened else _STEPS:
            tail = f"{ticket}{step}{t.step_handling[bits(_BITS)]}}}"
            if at < end:  # a follow-up, into the bucket of its day
                out[at // _DAY_MS - first].append((at, _TICKET, index, tail))
            at += int((0.1 + 2.9 * rnd()) * _DAY_MS)
        rated = self._rated(c) if rnd() < 0.3 else "}"
        if at < end:
            out[at // _DAY_MS - first].append((at, _TICKET, index, f'{ticket}closed"{rated}'))

    def _rated(self, c: _Customer) -> str:
        """A satisfaction rating closing an event's JSON: round(mean + N(0, 1)) in 1..5."""
        return _RATINGS[round(c.satisfaction_mean + self._tables.normal[self._bits(_BITS)])]

    # -- output ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[SimEvent]:
        return self.events()

    def events(self) -> Iterator[SimEvent]:
        if self.config.invalid_share or self.config.duplicate_share:
            yield from self._with_noise()
            return
        keys = self._keys
        for day, records in self._days():
            for (at, event_type, index, _), line in zip(
                records, self._lines(day, records), strict=True
            ):
                yield SimEvent(_TOPICS[event_type], keys[index], line.encode(), at / 1000)

    def jsonl_chunks(self) -> Iterator[tuple[bytes, int]]:
        """The events as JSON lines, a day at a time, each chunk with its number of lines:
        the same bytes as `events()` joined with newlines, without a SimEvent per event."""
        if self.config.invalid_share or self.config.duplicate_share:
            yield from jsonl_batches(self.events())
            return
        for day, records in self._days():
            lines = self._lines(day, records)
            lines.append("")
            yield "\n".join(lines).encode(), len(records)

    def _with_noise(self) -> Iterator[SimEvent]:
        r = self._rng
        invalid = self.config.invalid_share
        duplicate = self.config.duplicate_share
        recent: list[SimEvent] = []
        for day, records in self._days():
            for (at, event_type, index, _), line in zip(
                records, self._lines(day, records), strict=True
            ):
                event = SimEvent(_TOPICS[event_type], self._keys[index], line.encode(), at / 1000)
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

    # -- helpers -----------------------------------------------------------------------
    def _office_hours(self, at: int) -> int:
        """Move a time to office hours (08:00–18:00 UTC) on its day or the next."""
        ms = at % _DAY_MS
        if _OFFICE_OPEN <= ms < _OFFICE_CLOSE:
            return at
        base = at - ms + (_DAY_MS if ms >= _OFFICE_CLOSE else 0)
        return base + _OFFICE_OPEN + int(self._rng.random() * _OFFICE_SPAN)

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
