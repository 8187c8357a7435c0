"""A customer's purchase history as the purchase and spend models see it
(streams/predictive.py): x repeat purchases, t_x the day of the last one and T the age,
both counted from the first purchase, and the mean spend of the repeat purchases.

Conventions (those of the papers and of `lifetimes`):
- purchases and subscriptions count; several on one day are one purchase, whose spend
  is the day's total;
- a refund does not undo a purchase (the customer did buy); its amount is taken off the
  repeat spend (never below zero), because a refund is spend the business did not keep;
- T runs to the end of the day the history is read as of (day E): T = E - first day.

Kept exactly per event, in event time, whatever the arrival order: the purchase days
after the customer's last evaluated day are kept apart (`pending`), so the history as of
a closed day never counts a later purchase, and a late purchase lands where it belongs.
Whether a day already had a purchase is read from its day bucket; a purchase older than
every bucket kept (older than the longest look-back) counts as a new purchase day unless
it falls on the first, last or a pending purchase day.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.window import PURCHASE_AMOUNT, PURCHASES, REFUND_AMOUNT, DayBuckets

#: At most this many purchase days are kept apart after the last evaluated day; more (a
#: customer not evaluated for weeks while buying daily) settle the oldest early.
MAX_PENDING_DAYS = 64


@dataclass(slots=True)
class PurchaseHistory:
    first_day: int | None = None  # the first purchase day
    days: int = 0  # distinct purchase days
    first_amount: int = 0  # micro-units bought on the first purchase day
    settled_last: int | None = None  # the latest purchase day up to the last evaluated day
    pending: list[int] = field(default_factory=list)  # purchase days after it, ascending


@dataclass(frozen=True, slots=True)
class Repeat:
    """The model's view of a customer as of a day (times in days, money in micro-units)."""

    x: int
    t_x: int
    age: int
    repeat_spend: int  # over the x repeat purchases, refunds taken off

    @property
    def mean_spend(self) -> float:
        return self.repeat_spend / self.x if self.x else 0.0


def note_purchase(
    history: PurchaseHistory,
    *,
    day: int,
    amount: int,
    day_had_purchase: bool,
    evaluated_day: int | None,
) -> None:
    """A purchase of `amount` on `day`; `day_had_purchase`: its day bucket already held
    one; `evaluated_day`: the last day the customer was evaluated for (None: never)."""
    known = (
        day_had_purchase
        or day in (history.first_day, history.settled_last)
        or _pending_has(history, day)
    )
    if not known:
        history.days += 1
    if history.first_day is None or day < history.first_day:
        history.first_day = day
        history.first_amount = amount
    elif day == history.first_day:
        history.first_amount += amount
    if evaluated_day is None or day > evaluated_day:
        if not _pending_has(history, day):
            bisect.insort(history.pending, day)
            while len(history.pending) > MAX_PENDING_DAYS:
                _settle_day(history, history.pending.pop(0))
    else:
        _settle_day(history, day)


def settle(history: PurchaseHistory, day: int) -> None:
    """The customer is evaluated as of `day`: its purchase days up to it are settled."""
    while history.pending and history.pending[0] <= day:
        _settle_day(history, history.pending.pop(0))


def as_of(
    history: PurchaseHistory,
    day: int,
    *,
    buckets: DayBuckets,
    purchase_amount: int,
    refund_amount: int,
) -> Repeat | None:
    """The history as of the end of `day` (None: no purchase by then), after `settle`.
    `purchase_amount` and `refund_amount`: the lifetime totals, which may include later
    days (their buckets are open, so they are taken off)."""
    first = history.first_day
    if first is None or first > day:
        return None
    # the days after `day` are open: their buckets are all kept
    open_to = buckets.last_day
    later = 0 if open_to is None else buckets.days_with(PURCHASES, day + 1, open_to)
    settled = history.settled_last
    if settled is None or settled > day:  # settled early (MAX_PENDING_DAYS): ask the buckets
        settled = buckets.last_day_with(PURCHASES, day)
    last = max([first, settled or first, *(d for d in history.pending if d <= day)])
    open_from = day + 1
    spent = purchase_amount - history.first_amount
    refunded = refund_amount
    if open_to is not None and open_to >= open_from:
        spent -= buckets.field_sum(PURCHASE_AMOUNT, open_from, open_to)
        refunded -= buckets.field_sum(REFUND_AMOUNT, open_from, open_to)
    x = max(history.days - later - 1, 0)
    return Repeat(x, last - first, day - first, max(spent - refunded, 0) if x else 0)


def _pending_has(history: PurchaseHistory, day: int) -> bool:
    at = bisect.bisect_left(history.pending, day)
    return at < len(history.pending) and history.pending[at] == day


def _settle_day(history: PurchaseHistory, day: int) -> None:
    if history.settled_last is None or day > history.settled_last:
        history.settled_last = day


#: One sampled buyer: [customer hash, first purchase day, x, t_x, repeat spend (micro-units)]
SampleEntry = list[int]


class HistorySample:
    """The `size` buyers of one partition with the smallest customer-id hashes, each with
    its history as of its latest evaluation: what the population fit reads. A hash
    sample is uniform (the hash knows nothing of value), deterministic (the same
    customers whichever worker holds the partition), and mergeable: the smallest `size`
    of a union of partitions' samples are exactly the smallest `size` of all buyers.
    A customer's age T is taken at the fit's day from its first purchase day."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[int, SampleEntry] = {}
        self._hashes: list[int] = []  # ascending

    def __len__(self) -> int:
        return len(self._entries)

    def note(self, key: bytes, repeat: Repeat | None, day: int) -> None:
        """The customer's history as of `day` (None: not a buyer by then)."""
        if repeat is None:
            return
        hashed = customer_hash(key)
        entry = [hashed, day - repeat.age, repeat.x, repeat.t_x, repeat.repeat_spend]
        if hashed in self._entries:
            self._entries[hashed] = entry
            return
        if len(self._hashes) >= self.size:
            if hashed > self._hashes[-1]:
                return
            del self._entries[self._hashes.pop()]
        bisect.insort(self._hashes, hashed)
        self._entries[hashed] = entry

    def forget(self, key: bytes) -> None:
        """Drop the customer (an erasure): the sample holds one buyer fewer until the next
        buyer with a smaller hash than its largest is noted."""
        hashed = customer_hash(key)
        if self._entries.pop(hashed, None) is not None:
            self._hashes.remove(hashed)

    def to_json(self) -> list[SampleEntry]:
        return [self._entries[h] for h in self._hashes]

    def load(self, entries: Iterable[SampleEntry]) -> None:
        """Take the entries of `to_json` (on an empty sample)."""
        for entry in entries:
            self._entries[entry[0]] = list(entry)
        self._hashes = sorted(self._entries)


def merged_sample(parts: Iterable[Sequence[SampleEntry]], size: int) -> list[SampleEntry]:
    """The `size` entries with the smallest hashes of all parts, in hash order."""
    return heapq.nsmallest(size, (entry for part in parts for entry in part))


def customer_hash(key: bytes) -> int:
    """A stable 64-bit hash of a customer id (the sample's order; not Python's hash())."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"vipsample").digest(), "big")
