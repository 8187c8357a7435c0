"""Per-customer day buckets and rolling-window sums, exact at day granularity.

A bucket is a fixed-size list of integers (money in micro-units) for one UTC day. The
window as of day E covers days E - window_days + 1 .. E, both included. Buckets older
than any future window are evicted when a day is closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.inputs import CHANNELS
from streams.units import saturating_add

# field positions in a bucket
REVENUE = 0
SERVICE_COST = 1
CONTACTS = 2
BASIC_QUESTIONS = 3
PURCHASES = 4  # purchase and subscription orders
PURCHASE_AMOUNT = 5
REFUND_AMOUNT = 6
CHANNEL_BASE = 7  # contacts by channel, in CHANNELS order
FIELDS = CHANNEL_BASE + len(CHANNELS)
CHANNEL_FIELD = {channel: CHANNEL_BASE + i for i, channel in enumerate(CHANNELS)}

Buckets = dict[int, list[int]]  # day number -> fields


def add(buckets: Buckets, day: int, field: int, amount: int) -> None:
    """Add to one field of one day's bucket, creating the bucket if needed."""
    bucket = buckets.get(day)
    if bucket is None:
        bucket = buckets[day] = [0] * FIELDS
    bucket[field] = saturating_add(bucket[field], amount)


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Sums over a window of days. Money in micro-units."""

    revenue: int = 0
    service_cost: int = 0
    contacts: int = 0
    basic_questions: int = 0
    purchases: int = 0
    purchase_amount: int = 0
    refund_amount: int = 0
    contacts_by_channel: tuple[int, ...] = (0,) * len(CHANNELS)

    def by_channel(self) -> dict[str, int]:
        return dict(zip(CHANNELS, self.contacts_by_channel, strict=True))


def window_totals(buckets: Buckets, *, end_day: int, window_days: int) -> WindowTotals:
    """Sums over days end_day - window_days + 1 .. end_day (days after end_day excluded)."""
    start_day = end_day - window_days + 1
    sums = [0] * FIELDS
    for day, bucket in buckets.items():
        if start_day <= day <= end_day:
            for i in range(FIELDS):
                sums[i] += bucket[i]
    return WindowTotals(
        revenue=sums[REVENUE],
        service_cost=sums[SERVICE_COST],
        contacts=sums[CONTACTS],
        basic_questions=sums[BASIC_QUESTIONS],
        purchases=sums[PURCHASES],
        purchase_amount=sums[PURCHASE_AMOUNT],
        refund_amount=sums[REFUND_AMOUNT],
        contacts_by_channel=tuple(sums[CHANNEL_BASE:FIELDS]),
    )


def evict(buckets: Buckets, *, before_day: int) -> None:
    """Drop every bucket of a day before `before_day`."""
    for day in [d for d in buckets if d < before_day]:
        del buckets[day]


def next_exit_day(buckets: Buckets, *, after_day: int, window_days: int) -> int | None:
    """The first day after `after_day` on which a bucket leaves the window (None: never)."""
    exits = [day + window_days for day in buckets if day + window_days > after_day]
    return min(exits) if exits else None
