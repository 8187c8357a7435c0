"""A mergeable summary of scores: a log-bucket histogram (DDSketch-style) with exact sums.

Every value v with |v| >= MIN_MAGNITUDE falls in a bucket whose representative is within
a relative error `alpha` of v; values closer to zero share one zero bucket. Quantiles are
therefore within `alpha` (relative) of the exact order statistic. Buckets are integer
keys ordered like the values they hold (negatives below 0, the zero bucket at 0,
positives above), so merging is adding counts: order-independent and exact.

Mean and standard deviation come from exact integer sums of the scores (and of their
signed-log transform) in millionths, so they too are identical whatever the merge order.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MIN_MAGNITUDE = 1e-9
_OFFSET = 1_000_000  # keeps positive and negative bucket indexes apart, in value order
_SCALE = 1_000_000  # sums are kept in millionths, exactly


def signed_log(value: float) -> float:
    """sign(v) * ln(1 + |v|): tames heavy tails, defined for negative scores too."""
    return math.copysign(math.log1p(abs(value)), value)


def inverse_signed_log(value: float) -> float:
    return math.copysign(math.expm1(abs(value)), value)


@dataclass(frozen=True, slots=True)
class BucketMapping:
    """value <-> bucket key for a relative accuracy alpha."""

    alpha: float
    gamma: float = field(init=False)
    log_gamma: float = field(init=False)

    def __post_init__(self) -> None:
        gamma = (1 + self.alpha) / (1 - self.alpha)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "log_gamma", math.log(gamma))

    def key(self, value: float) -> int:
        magnitude = abs(value)
        if magnitude < MIN_MAGNITUDE:
            return 0
        index = math.ceil(math.log(magnitude) / self.log_gamma)
        return _OFFSET + index if value > 0 else -(_OFFSET + index)

    @property
    def smallest_index(self) -> int:
        """The index of the smallest magnitude kept apart from zero (MIN_MAGNITUDE)."""
        return math.ceil(math.log(MIN_MAGNITUDE) / self.log_gamma)

    def successor(self, key: int) -> int:
        """The key of the bucket right above `key` in value order."""
        if key > 0:
            return key + 1
        if key == 0:
            return _OFFSET + self.smallest_index
        index = -key - _OFFSET
        return 0 if index <= self.smallest_index else key + 1

    def largest_below(self, key: int) -> float:
        """The largest float whose bucket lies below `key`: a value is in bucket `key` or
        above exactly when it is greater than this (keys grow with values)."""
        if key > 0:
            index = key - _OFFSET
            guess = (
                math.nextafter(MIN_MAGNITUDE, -math.inf)
                if index <= self.smallest_index
                else self.gamma ** (index - 1)
            )
        elif key == 0:
            guess = -MIN_MAGNITUDE
        else:
            guess = math.nextafter(-(self.gamma ** (-key - _OFFSET)), -math.inf)
        # the guess is within a few units in the last place of the boundary: settle it
        # with the same function that places values, so the two can never disagree
        while self.key(guess) >= key:
            guess = math.nextafter(guess, -math.inf)
        while self.key(math.nextafter(guess, math.inf)) < key:
            guess = math.nextafter(guess, math.inf)
        return guess

    def value(self, key: int) -> float:
        """The bucket's representative (within alpha of every value in it)."""
        if key == 0:
            return 0.0
        index = abs(key) - _OFFSET
        representative = 2.0 * self.gamma**index / (self.gamma + 1.0)
        return representative if key > 0 else -representative


def exact_sums(value: float) -> tuple[int, int, int, int]:
    """The integer contributions of one value: (x, x^2, slog, slog^2) in millionths."""
    x = round(value * _SCALE)
    y = round(signed_log(value) * _SCALE)
    return x, x * x, y, y * y


@dataclass
class ScoreSummary:
    """Counts per bucket and exact sums; add, remove and merge are exact."""

    alpha: float
    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    sum1: int = 0
    sum2: int = 0
    log1: int = 0
    log2: int = 0

    @property
    def mapping(self) -> BucketMapping:
        return _mapping(self.alpha)

    def add(self, value: float, times: int = 1) -> None:
        key = self.mapping.key(value)
        self.counts[key] = self.counts.get(key, 0) + times
        self._sums(value, times)

    def remove(self, value: float) -> None:
        key = self.mapping.key(value)
        left = self.counts[key] - 1
        if left:
            self.counts[key] = left
        else:
            del self.counts[key]
        self._sums(value, -1)

    def _sums(self, value: float, times: int) -> None:
        x, x2, y, y2 = exact_sums(value)
        self.count += times
        self.sum1 += times * x
        self.sum2 += times * x2
        self.log1 += times * y
        self.log2 += times * y2

    def merge(self, other: ScoreSummary) -> None:
        if other.alpha != self.alpha:
            raise ValueError("cannot merge summaries of different accuracy")
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.count += other.count
        self.sum1 += other.sum1
        self.sum2 += other.sum2
        self.log1 += other.log1
        self.log2 += other.log2

    def copy(self) -> ScoreSummary:
        return ScoreSummary(
            self.alpha, dict(self.counts), self.count, self.sum1, self.sum2, self.log1, self.log2
        )

    # -- statistics ----------------------------------------------------------------------
    def mean(self, *, log: bool = False) -> float:
        if not self.count:
            return 0.0
        return (self.log1 if log else self.sum1) / self.count / _SCALE

    def stddev(self, *, log: bool = False) -> float:
        if not self.count:
            return 0.0
        s1, s2 = (self.log1, self.log2) if log else (self.sum1, self.sum2)
        # n^2 var = n s2 - s1^2, exactly, in integers
        numerator = self.count * s2 - s1 * s1
        return math.sqrt(max(numerator, 0)) / self.count / _SCALE

    def ranks(self) -> Ranks:
        return Ranks.of(self)

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        keys = sorted(self.counts)
        return {
            "alpha": self.alpha,
            "keys": keys,
            "counts": [self.counts[k] for k in keys],
            "count": self.count,
            "sums": [str(self.sum1), str(self.sum2), str(self.log1), str(self.log2)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreSummary:
        s1, s2, l1, l2 = (int(v) for v in data["sums"])
        counts = dict(zip(data["keys"], data["counts"], strict=True))
        return cls(float(data["alpha"]), counts, int(data["count"]), s1, s2, l1, l2)

    @classmethod
    def merged(cls, alpha: float, parts: Iterable[ScoreSummary]) -> ScoreSummary:
        total = cls(alpha)
        for part in parts:
            total.merge(part)
        return total


@dataclass(frozen=True)
class Ranks:
    """Cumulative counts over ordered bucket keys: quantiles and percentiles by bisection."""

    mapping: BucketMapping
    keys: list[int]
    cumulative: list[int]  # cumulative[i] = values in buckets keys[0..i]
    count: int
    #: bucket key -> percentile of the bucket's value (see bucket_percentile)
    _bucket_percentiles: dict[int, float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, summary: ScoreSummary) -> Ranks:
        keys = sorted(summary.counts)
        cumulative = []
        running = 0
        for key in keys:
            running += summary.counts[key]
            cumulative.append(running)
        return cls(summary.mapping, keys, cumulative, summary.count)

    def quantile(self, q: float) -> float | None:
        """The value at quantile q in [0, 1] (lower empirical quantile), within alpha."""
        if not self.count:
            return None
        rank = min(max(math.ceil(q * self.count), 1), self.count)
        return self.mapping.value(self.keys[bisect_left(self.cumulative, rank)])

    def quantile_key(self, q: float) -> int | None:
        value = self.quantile(q)
        return None if value is None else self.mapping.key(value)

    def percentile(self, value: float) -> float:
        """Share of the population below this value, in percent (ties count half)."""
        return self._key_percentile(self.mapping.key(value))

    def _key_percentile(self, key: int) -> float:
        if not self.count:
            return 0.0
        below_index = bisect_left(self.keys, key)
        below = self.cumulative[below_index - 1] if below_index else 0
        at_or_below_index = bisect_right(self.keys, key)
        at_or_below = self.cumulative[at_or_below_index - 1] if at_or_below_index else 0
        return 100.0 * (below + (at_or_below - below) / 2.0) / self.count

    def bucket_percentile(self, key: int) -> float:
        """percentile() of the value bucket `key` stands for, remembered: every partition
        asks a day's ranks about every bucket when it re-tiers (streams/tiers.py)."""
        found = self._bucket_percentiles.get(key)
        if found is None:
            found = self._bucket_percentiles[key] = self._key_percentile(key)
        return found

    def reach_threshold(self, percentile: float) -> float | None:
        """The score a value must exceed for `percentile()` to be at least `percentile`
        (None: an empty population). Percentiles are per bucket and never fall as values
        grow, so this is exact: `percentile(v) >= p` exactly when `v > reach_threshold(p)`
        (-inf when every value reaches it, +inf when none can)."""
        if not self.count:
            return None
        mapping = self.mapping
        previous_key: int | None = None
        previous_cumulative = 0
        for key, cumulative in zip(self.keys, self.cumulative, strict=True):
            if previous_key is None:
                if percentile <= 0.0:  # the empty buckets below the lowest value
                    return -math.inf
            elif (
                mapping.successor(previous_key) != key
                and 100.0 * previous_cumulative / self.count >= percentile
            ):  # the empty buckets between two values
                return mapping.largest_below(mapping.successor(previous_key))
            if self.bucket_percentile(key) >= percentile:
                return mapping.largest_below(key)
            previous_key, previous_cumulative = key, cumulative
        if percentile > 100.0:
            return math.inf
        assert previous_key is not None
        return mapping.largest_below(mapping.successor(previous_key))

    def histogram(self) -> list[tuple[float, int]]:
        """(bucket representative, count) in value order."""
        previous = 0
        rows = []
        for key, running in zip(self.keys, self.cumulative, strict=True):
            rows.append((self.mapping.value(key), running - previous))
            previous = running
        return rows


_MAPPINGS: dict[float, BucketMapping] = {}


def _mapping(alpha: float) -> BucketMapping:
    mapping = _MAPPINGS.get(alpha)
    if mapping is None:
        mapping = _MAPPINGS[alpha] = BucketMapping(alpha)
    return mapping
