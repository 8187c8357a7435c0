"""Per-customer day buckets and rolling-window sums, exact at day granularity.

A bucket is a fixed-size row of integers (money in micro-units) for one UTC day. The
window as of day E covers days E - window_days + 1 .. E, both included. Buckets older
than any future window are evicted when a day is closed.

`DayBuckets` keeps the rows sorted by day in one flat int64 array, so every range
question (a window, the last purchase, the next bucket to leave the window) is a binary
search and a C-level slice instead of a scan of every bucket, and a customer's buckets
cost 8 bytes per field in memory. The rolling window's sums are kept as running totals,
updated by every change and moved along with the day asked for: a daily close costs
O(days moved), not O(buckets). All of it is integer arithmetic, so the totals are the
same, bit for bit, as a recomputation from the buckets.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
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

_ZERO_ROW = array("q", [0] * FIELDS)
#: a running total moves incrementally across at most this many buckets, else is
#: recomputed with C-level slices
_INCREMENTAL_ROWS = 8


class DayBuckets(Mapping[int, list[int]]):
    """day number -> bucket, sorted by day. Read it as a mapping (a bucket read is a
    copy); change it with `add` and `evict` only, which keep the running totals exact."""

    __slots__ = ("_acc", "_acc_end", "_acc_width", "_days", "_rows")

    def __init__(self, buckets: Mapping[int, Sequence[int]] | None = None) -> None:
        self._days = array("q")
        self._rows = array("q")
        self._acc: list[int] | None = None  # sums over (_acc_end - _acc_width, _acc_end]
        self._acc_end = 0
        self._acc_width = 0
        if buckets:
            for day in sorted(buckets):
                row = buckets[day]
                if len(row) != FIELDS:
                    raise ValueError(f"a bucket has {FIELDS} fields, not {len(row)}")
                self._days.append(day)
                self._rows.extend(row)

    @classmethod
    def from_arrays(cls, days: array[int], rows: array[int]) -> DayBuckets:
        """Adopt sorted unique days and their rows (FIELDS per day), e.g. when decoding."""
        if len(rows) != len(days) * FIELDS:
            raise ValueError(f"{len(rows)} bucket fields for {len(days)} days")
        if not all(map(operator.lt, days, days[1:])):
            raise ValueError("bucket days are not strictly increasing")
        buckets = cls()
        buckets._days = days
        buckets._rows = rows
        return buckets

    @property
    def days_array(self) -> array[int]:
        """The days, ascending (the codec's view; do not modify)."""
        return self._days

    @property
    def rows_array(self) -> array[int]:
        """The buckets, FIELDS per day, in day order (the codec's view; do not modify)."""
        return self._rows

    # -- the mapping view ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._days)

    def __iter__(self) -> Iterator[int]:
        return iter(self._days)

    def __reversed__(self) -> Iterator[int]:
        return reversed(self._days)

    def __contains__(self, day: object) -> bool:
        return self._index(day) is not None if isinstance(day, int) else False

    def __getitem__(self, day: int) -> list[int]:
        i = self._index(day)
        if i is None:
            raise KeyError(day)
        return self._rows[i * FIELDS : (i + 1) * FIELDS].tolist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DayBuckets):
            return self._days == other._days and self._rows == other._rows
        if isinstance(other, Mapping):
            return dict(self.items()) == {d: list(b) for d, b in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DayBuckets({dict(self.items())!r})"

    def _index(self, day: int) -> int | None:
        i = bisect_left(self._days, day)
        return i if i < len(self._days) and self._days[i] == day else None

    @property
    def first_day(self) -> int | None:
        return self._days[0] if self._days else None

    @property
    def last_day(self) -> int | None:
        return self._days[-1] if self._days else None

    # -- changes ---------------------------------------------------------------------------
    def add(self, day: int, field: int, amount: int) -> None:
        """Add to one field of one day's bucket, creating the bucket if needed."""
        days, rows = self._days, self._rows
        n = len(days)
        if n and days[n - 1] == day:  # events arrive in time order, mostly
            i = n - 1
        else:
            i = bisect_left(days, day)
            if i == n:
                days.append(day)
                rows.extend(_ZERO_ROW)
            elif days[i] != day:
                days.insert(i, day)
                rows[i * FIELDS : i * FIELDS] = _ZERO_ROW
        at = i * FIELDS + field
        old = rows[at]
        new = saturating_add(old, amount)
        rows[at] = new
        acc = self._acc
        if acc is not None and self._acc_end - self._acc_width < day <= self._acc_end:
            acc[field] += new - old

    def evict(self, before_day: int) -> None:
        """Drop every bucket of a day before `before_day`."""
        days = self._days
        cut = bisect_left(days, before_day)
        if not cut:
            return
        if self._acc is not None:  # evicted buckets inside the running window leave its sums
            inside = bisect_right(days, self._acc_end - self._acc_width)
            through = min(cut, bisect_right(days, self._acc_end))
            if inside < through:
                self._acc = _minus(self._acc, self._range_sums(inside, through))
        del days[:cut]
        del self._rows[: cut * FIELDS]

    # -- sums and searches -----------------------------------------------------------------
    def totals(self, end_day: int, window_days: int) -> list[int]:
        """Sums of every field over days end_day - window_days + 1 .. end_day."""
        acc, days = self._acc, self._days
        width = window_days
        if acc is not None and self._acc_width == width and end_day != self._acc_end:
            old_end = self._acc_end
            low, high = sorted((old_end, end_day))
            # buckets entering or leaving the window when its end moves from old to new
            gained = (bisect_right(days, low), bisect_right(days, high))
            lost = (bisect_right(days, low - width), bisect_right(days, high - width))
            moved = gained[1] - gained[0] + lost[1] - lost[0]
            if high - low < width and moved <= _INCREMENTAL_ROWS:
                entering, leaving = (gained, lost) if end_day > old_end else (lost, gained)
                acc = _minus(_plus(acc, self._range_sums(*entering)), self._range_sums(*leaving))
                self._acc, self._acc_end = acc, end_day
                return list(acc)
        if acc is None or self._acc_width != width or end_day != self._acc_end:
            lo = bisect_right(days, end_day - width)
            hi = bisect_right(days, end_day)
            acc = self._range_sums(lo, hi)
            self._acc, self._acc_end, self._acc_width = acc, end_day, width
        return list(acc)

    def field_sum(self, field: int, first_day: int, last_day: int) -> int:
        """The sum of one field over days first_day .. last_day, both included."""
        days = self._days
        lo = bisect_left(days, first_day)
        hi = bisect_right(days, last_day)
        if hi <= lo:
            return 0
        return sum(self._rows[lo * FIELDS + field : hi * FIELDS : FIELDS])

    def days_with(self, field: int, first_day: int, last_day: int) -> int:
        """How many days from first_day to last_day (both included) have a non-zero
        `field`."""
        days = self._days
        lo = bisect_left(days, first_day)
        hi = bisect_right(days, last_day)
        if hi <= lo:
            return 0
        column = self._rows[lo * FIELDS + field : hi * FIELDS : FIELDS]
        return len(column) - column.count(0)

    def last_day_with(self, field: int, through_day: int) -> int | None:
        """The latest day up to `through_day` whose bucket has a non-zero `field`."""
        hi = bisect_right(self._days, through_day)
        column = self._rows[field : hi * FIELDS : FIELDS]
        if not any(column):
            return None
        i = hi - 1
        while not column[i]:
            i -= 1
        return self._days[i]

    def first_day_after(self, day: int) -> int | None:
        """The earliest bucket day after `day`."""
        i = bisect_right(self._days, day)
        return self._days[i] if i < len(self._days) else None

    def _range_sums(self, lo: int, hi: int) -> list[int]:
        """Field sums over the buckets at positions lo .. hi - 1."""
        rows = self._rows
        if hi - lo == 1:
            return rows[lo * FIELDS : hi * FIELDS].tolist()
        if hi <= lo:
            return [0] * FIELDS
        return [sum(rows[lo * FIELDS + f : hi * FIELDS : FIELDS]) for f in range(FIELDS)]


def _plus(a: list[int], b: list[int]) -> list[int]:
    return list(map(operator.add, a, b))


def _minus(a: list[int], b: list[int]) -> list[int]:
    return list(map(operator.sub, a, b))


Buckets = DayBuckets


def add(buckets: Buckets, day: int, field: int, amount: int) -> None:
    """Add to one field of one day's bucket, creating the bucket if needed."""
    buckets.add(day, field, amount)


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
    sums = buckets.totals(end_day, window_days)
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
    buckets.evict(before_day)


def next_exit_day(buckets: Buckets, *, after_day: int, window_days: int) -> int | None:
    """The first day after `after_day` on which a bucket leaves the window (None: never)."""
    day = buckets.first_day_after(after_day - window_days)
    return None if day is None else day + window_days
