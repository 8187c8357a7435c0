"""One partition's view of its customers' value: the index the population summary and
the re-tiering are computed from. Rebuilt from the customer states after a rebalance.

- `index`: customer -> score of every judged customer, and the customers of each sketch
  bucket, so the partition's summary is always at hand and the customers whose score
  lies between a cut's old and new value are found without a scan.
- stale days: customers with events not yet seen by a close, by the day of the event, so
  a close of day E re-values exactly the customers with new events on or before E (a
  worker catching up runs days ahead of its closes: re-valuing every recently touched
  customer at every close would multiply the work by that lag).
- due days: customers whose value changes on a given day without any event.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.history import HistorySample
from streams.sketch import ScoreSummary


@dataclass
class Progress:
    """How far a partition has got; persisted with the partition's customer states."""

    closed_day: int | None = None  # every day up to this one is closed
    tiered_day: int | None = None  # tiers are decided up to this closed day
    #: input topic -> the earliest event day applied from this partition
    first: dict[str, int] = field(default_factory=dict)
    #: input topic -> latest occurred_at applied from this partition (epoch µs)
    latest: dict[str, int] = field(default_factory=dict)
    #: the summaries this partition published last: day -> summary JSON (at most two)
    published: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: customers per tier as of `tiered_day`
    tier_counts: dict[str, int] = field(default_factory=dict)
    #: outputs emitted by the tiering of this partition's days, ever (keys below)
    emitted: dict[str, int] = field(default_factory=dict)
    #: the first day this partition closed (None: none yet, or closed before it was kept)
    started_day: int | None = None
    #: care tasks of the day being tiered, waiting for the dialer budget
    #: (streams/care.py within_budget): [value, task_id, kind, customer id, event JSON]
    outbox: list[list[Any]] = field(default_factory=list)
    #: the population model in use when this partition last closed a day
    #: (streams/predictive.py model_to_json), or {"pending": why there is none yet},
    #: so a worker that starts again has it
    model: dict[str, Any] | None = None
    #: the ledger checkpoint this progress is consistent with (agents/engine/checkpoint.py
    #: `Reference`), None: there is none, a start builds the ledger from every state
    checkpoint: dict[str, int] | None = None
    #: every judged customer of the partition has its record on `customer-tiers` (False
    #: for a partition written by a version without that topic: its next tiering
    #: publishes them all once)
    snapshot_complete: bool = True
    #: erased customers (streams.ids.erasure_hash of the id, not the id) -> when the
    #: erasure was requested (epoch µs): their input events dated before are dropped
    erased: dict[str, int] = field(default_factory=dict)

    def count_emitted(self, key: str) -> None:
        self.emitted[key] = self.emitted.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_day": self.closed_day,
            "tiered_day": self.tiered_day,
            "first": self.first,
            "latest": self.latest,
            "published": {str(d): s for d, s in self.published.items()},
            "tier_counts": self.tier_counts,
            "emitted": self.emitted,
            "started_day": self.started_day,
            "outbox": self.outbox,
            "model": self.model,
            "checkpoint": self.checkpoint,
            "snapshot_complete": self.snapshot_complete,
            "erased": self.erased,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            data["closed_day"],
            data["tiered_day"],
            dict(data["first"]),
            dict(data["latest"]),
            {int(d): s for d, s in data["published"].items()},
            dict(data["tier_counts"]),
            dict(data.get("emitted") or {}),  # absent in records written before it existed
            data.get("started_day"),  # likewise
            list(data.get("outbox") or []),  # likewise
            data.get("model"),  # likewise
            data.get("checkpoint"),  # likewise
            data.get("snapshot_complete", False),  # likewise: not published yet
            dict(data.get("erased") or {}),  # likewise
        )


#: Keys of `Progress.emitted`: the output's event type, with the kind for care tasks.
TIER_CHANGE = "tier_change"
CUSTOMER_TIER = "customer_tier"
SPIKE = "basic_question_spike"
_CARE_TASK = "care_task:"


def care_task_key(kind: str) -> str:
    return _CARE_TASK + kind


def care_task_counts(emitted: Mapping[str, int]) -> dict[str, int]:
    """Care tasks by kind, from emitted counts."""
    return {k[len(_CARE_TASK) :]: n for k, n in emitted.items() if k.startswith(_CARE_TASK)}


def sum_counts(parts: Iterable[Mapping[str, int] | None]) -> dict[str, int]:
    """Counts of several partitions added up (a missing part counts nothing)."""
    total: dict[str, int] = {}
    for part in parts:
        for key, n in (part or {}).items():
            total[key] = total.get(key, 0) + n
    return total


class PartitionLedger:
    """Index, stale set and due days of one partition's customers."""

    def __init__(self, partition: int, alpha: float, sample_size: int = 4000) -> None:
        self.partition = partition
        self.summary = ScoreSummary(alpha)
        #: the buyers the purchase model is fitted on (streams/history.py)
        self.sample = HistorySample(sample_size)
        self.scores: dict[bytes, float] = {}  # judged customers only
        self.members: dict[int, set[bytes]] = {}  # sketch key -> customers
        self.buyers: dict[bytes, bool] = {}  # buyer in window -> silent?
        self.tier_counts: Counter[str] = Counter()
        #: customer -> its tier: every customer of the partition (what a start adds up
        #: without reading the states)
        self.tiers: dict[bytes, str] = {}
        self._stale: dict[int, set[bytes]] = {}  # event day -> customers
        self._stale_days: list[int] = []  # heap of the keys of _stale
        self.to_tier: set[bytes] = set()  # closed, tier not yet decided for that day
        self.progress = Progress()
        #: customer -> the earliest tier day its waiting tickets need (streams/care.py)
        self.tickets_waiting: dict[bytes, int] = {}
        self._due: list[tuple[int, bytes]] = []
        self._due_day: dict[bytes, int] = {}
        #: a close or a tiering is part-way through (its candidates are in flight): the
        #: ledger is not consistent with the states until it ends
        self.busy = False
        #: the task ids of `progress.outbox`, and the list and length they were taken from
        self._queued: tuple[list[list[Any]] | None, int, set[str]] = (None, 0, set())

    def queued_task_ids(self) -> set[str]:
        """The ids of the care tasks in the outbox (kept up to date as entries are
        appended; taken again when the outbox is replaced or shrinks)."""
        outbox = self.progress.outbox
        source, length, ids = self._queued
        if source is not outbox or length > len(outbox):
            source, length, ids = outbox, 0, set()
        if length < len(outbox):
            ids.update(entry[1] for entry in outbox[length:])
        self._queued = (outbox, len(outbox), ids)
        return ids

    # -- index ---------------------------------------------------------------------------
    def index(self, key: bytes, score: float | None) -> None:
        """Record the customer's judged score (None: not judged, out of the population)."""
        old = self.scores.get(key)
        if old is not None:
            if old == score:
                return
            self.summary.remove(old)
            bucket_key = self.summary.mapping.key(old)
            members = self.members[bucket_key]
            members.discard(key)
            if not members:
                del self.members[bucket_key]
            del self.scores[key]
        if score is not None:
            self.summary.add(score)
            self.scores[key] = score
            self.members.setdefault(self.summary.mapping.key(score), set()).add(key)

    def set_buyer(self, key: bytes, buyer: bool, silent: bool) -> None:
        if buyer:
            self.buyers[key] = silent
        else:
            self.buyers.pop(key, None)

    def churn_counts(self) -> tuple[int, int]:
        """(buyers in the window, of which silent for churn_days)."""
        return len(self.buyers), sum(self.buyers.values())

    def members_of(self, bucket_keys: Iterable[int]) -> set[bytes]:
        """Customers whose score falls in any of the given sketch buckets."""
        found: set[bytes] = set()
        for bucket_key in bucket_keys:
            members = self.members.get(bucket_key)
            if members:
                found |= members
        return found

    def count_tier(self, key: bytes, new: str | None) -> None:
        """The customer's tier is now `new` (None: it is gone from the partition)."""
        old = self.tiers.get(key)
        if old == new:
            return
        if old is not None:
            self.tier_counts[old] -= 1
            if not self.tier_counts[old]:
                del self.tier_counts[old]
        if new is None:
            del self.tiers[key]
            return
        self.tiers[key] = new
        self.tier_counts[new] += 1

    def erase_customer(self, key: bytes, erased_hash: str, requested_at: int) -> None:
        """Forget a customer for good: everything above, its purchase history in the
        model's sample and its care tasks waiting for the dialer budget; remember when
        (by a hash of its id), so older input does not bring it back."""
        self.forget_customer(key)
        self.sample.forget(key)
        customer_id = key.decode()
        self.progress.outbox = [e for e in self.progress.outbox if e[3] != customer_id]
        known = self.progress.erased.get(erased_hash)
        self.progress.erased[erased_hash] = max(requested_at, known or requested_at)

    def forget_customer(self, key: bytes) -> None:
        """Drop everything the ledger holds about a customer (before it is derived again
        from its state)."""
        self.count_tier(key, None)
        self.index(key, None)
        self.buyers.pop(key, None)
        self._due_day.pop(key, None)  # its heap entry goes stale and is skipped
        self.to_tier.discard(key)
        self.tickets_waiting.pop(key, None)
        for customers in self._stale.values():
            customers.discard(key)

    # -- checkpoint ----------------------------------------------------------------------
    def to_checkpoint(self) -> dict[str, Any]:
        """Everything above in JSON form (customer ids as text): what a start reads
        instead of every customer's state (agents/engine/checkpoint.py)."""
        return self.checkpoint_copy()()

    def checkpoint_copy(self) -> Callable[[], dict[str, Any]]:
        """`to_checkpoint` in two steps: copies of what it reads, now (shallow copies
        of dicts and sets, quick), and a function that makes the JSON from the copies,
        whenever and wherever it runs (another thread: the ledger may change meanwhile)."""
        tiers = dict(self.tiers)
        scores = dict(self.scores)
        members = {bucket: list(keys) for bucket, keys in self.members.items()}
        buyers = dict(self.buyers)
        due = dict(self._due_day)
        to_tier = list(self.to_tier)
        stale = {day: list(keys) for day, keys in self._stale.items() if keys}
        tickets = dict(self.tickets_waiting)
        summary = self.summary.to_json()
        sample = [list(entry) for entry in self.sample.to_json()]

        def build() -> dict[str, Any]:
            by_tier: dict[str, list[str]] = {}
            for key, tier in tiers.items():
                by_tier.setdefault(tier, []).append(key.decode())
            return {
                "tiers": by_tier,
                "summary": summary,
                "scores": {
                    str(bucket): [[key.decode(), scores[key]] for key in keys]
                    for bucket, keys in members.items()
                },
                "buyers": [[key.decode(), silent] for key, silent in buyers.items()],
                "due": [[key.decode(), day] for key, day in due.items()],
                "to_tier": [key.decode() for key in to_tier],
                "stale": {str(day): [key.decode() for key in keys] for day, keys in stale.items()},
                "tickets": [[key.decode(), day] for key, day in tickets.items()],
                "sample": sample,
            }

        return build

    def load_checkpoint(self, data: dict[str, Any]) -> None:
        """Take the index, sets and counts of `to_checkpoint` (on an empty ledger)."""
        tiers = self.tiers
        for tier, keys in data["tiers"].items():
            for text in keys:
                tiers[text.encode()] = tier
            self.tier_counts[tier] += len(keys)
        self.summary = ScoreSummary.from_json(data["summary"])
        scores = self.scores
        for bucket, members in data["scores"].items():
            found = self.members[int(bucket)] = set()
            for text, score in members:
                key = text.encode()
                scores[key] = score
                found.add(key)
        self.buyers = {text.encode(): silent for text, silent in data["buyers"]}
        self._due_day = {text.encode(): day for text, day in data["due"]}
        self._due = [(day, key) for key, day in self._due_day.items()]
        heapq.heapify(self._due)
        self.to_tier = {text.encode() for text in data["to_tier"]}
        for day, keys in data["stale"].items():
            for text in keys:
                self.mark_stale(text.encode(), int(day))
        self.tickets_waiting = {text.encode(): day for text, day in data["tickets"]}
        self.sample.load(data["sample"])

    # -- stale customers -----------------------------------------------------------------
    def mark_stale(self, key: bytes, day: int) -> None:
        """The customer has new figures on `day` that no close has seen yet."""
        customers = self._stale.get(day)
        if customers is None:
            customers = self._stale[day] = set()
            heapq.heappush(self._stale_days, day)
        customers.add(key)

    def pop_stale(self, through_day: int) -> set[bytes]:
        """Customers with new figures on or before `through_day` (and forget them)."""
        found: set[bytes] = set()
        heap = self._stale_days
        while heap and heap[0] <= through_day:
            found |= self._stale.pop(heapq.heappop(heap))
        return found

    @property
    def stale_count(self) -> int:
        return sum(len(c) for c in self._stale.values())

    # -- due days ------------------------------------------------------------------------
    def set_due(self, key: bytes, day: int | None) -> None:
        if day is None:
            self._due_day.pop(key, None)
            return
        if self._due_day.get(key) == day:
            return
        self._due_day[key] = day
        heapq.heappush(self._due, (day, key))

    def pop_due(self, through_day: int) -> set[bytes]:
        """Customers due on or before `through_day` (each once; entries go stale lazily)."""
        due: set[bytes] = set()
        heap = self._due
        while heap and heap[0][0] <= through_day:
            day, key = heapq.heappop(heap)
            if self._due_day.get(key) == day:
                del self._due_day[key]
                due.add(key)
        return due

    @property
    def customers(self) -> int:
        return sum(self.tier_counts.values())


def next_merge_day(
    merged_through: int | None,
    offered: Sequence[Iterable[int]],
    started: Sequence[int | None] | None = None,
) -> int | None:
    """The next day whose population a worker can merge, or None to wait.

    `offered` holds, per partition, the days whose summaries its latest published message
    carries (its last two closed days). Partitions close in lock-step, at most one day
    apart, so the days every partition offers are the ones that can be merged. A worker
    that has merged nothing yet (it just started, perhaps after a crash) resumes at the
    earliest of them, not at the population's first day, whose summaries are long gone;
    one that merged day E takes E + 1, or skips ahead if E + 1 is no longer offered.

    `started` holds, per partition, the first day it closed (None: not known). A
    partition never closes a day before it, so it counts as offering every earlier day,
    with nobody in it: partitions that started on different days (two workers that
    decided at the same moment from different views, see `first_day_to_close`) still
    merge their common days instead of waiting for each other forever.
    """
    if not offered:
        return None
    starts = list(started) if started is not None else [None] * len(offered)
    days = [set(d) for d in offered]
    candidates = set().union(*days)

    def everywhere(day: int) -> bool:
        return all(
            day in own or (start is not None and day < start)
            for own, start in zip(days, starts, strict=True)
        )

    later = [
        day
        for day in candidates
        if (merged_through is None or day > merged_through) and everywhere(day)
    ]
    return min(later) if later else None


@dataclass(frozen=True, slots=True)
class StartReport:
    """What a partition's latest published message says about where days start."""

    started: int | None  # the first day it closed, once it has closed one
    ready: bool  # it has read its earliest events (or knows it has none)
    first_day: int | None  # its earliest event day


def first_day_to_close(reports: Sequence[StartReport], partitions: int) -> int | None:
    """The day a partition that has closed nothing yet closes first, or None to wait.

    Once any partition has started, the earliest start is adopted: the population has
    started, and a partition whose first events turn out older closes them with that
    day (they are late). Before that: the earliest event day of the population, once
    every partition has reported and is ready.
    """
    started = [r.started for r in reports if r.started is not None]
    if started:
        return min(started)
    if len(reports) < partitions or not all(r.ready for r in reports):
        return None
    firsts = [r.first_day for r in reports if r.first_day is not None]
    return min(firsts) if firsts else None
