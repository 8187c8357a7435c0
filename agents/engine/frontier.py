"""Which input offsets the agent has applied, contiguously: what may be committed.

Faust decides what to commit from its own lists of acknowledged offsets, and its stream
can drop a message without applying or acknowledging it (faust-streaming 0.15.3):

- `StreamIterator._prepare_event` skips a message fetched while flow control was
  suspended or stamped with another consumer generation;
- `Consumer._drain_messages` records an offset as read even when a rebalance interrupted
  its hand-over to the stream, and later drops a re-fetched copy below that offset;
- after a rebalance, the rest of a batch fetched before it is handed over with the new
  generation, past offsets that the seek to the committed offset then re-fetches and the
  fetcher drops.

Faust's `_new_offset` then either commits past the missing offset (when it is the
committed one: the event is lost) or never commits that partition again (two or more
missing: a stall). Both were observed in kill -9 runs.

vipstream keeps its own frontier instead: per input partition, the next offset the agent
must apply. A message at the frontier is applied and moves it; one below it was applied
already (a replay: skipped); one above it reveals a hole, which the agent fills by
reading the missing range straight from the broker (agents/kafka/refetch.py) before applying
the message, so events are applied in offset order. A hole can also be legitimate
(offsets that hold no record: transaction markers, compaction, retention); reading the
range then returns nothing and the frontier moves on. The commit barrier commits the
frontier, so a committed offset never passes an event that was not applied.

No Faust import: partitions are opaque, hashable keys with `.topic`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Hole:
    """Offsets of one partition that the agent has not seen: [start, end)."""

    start: int | None  # None: from the partition's first offset (nothing committed yet)
    end: int  # the offset of the message that revealed the hole


APPLY = "apply"
REPLAYED = "replayed"


class InputFrontier:
    """The next offset to apply per input partition, since it was (re)assigned."""

    def __init__(self, topics: Iterable[str]) -> None:
        #: the input topics: their offsets are committed from the frontier only
        self.topics = frozenset(topics)
        self._next: dict[Any, int] = {}
        #: bumped whenever the assignment is revoked: work started before is stale
        self.generation = 0

    def check(self, tp: Any, offset: int, committed: int | None) -> str | Hole:
        """APPLY, REPLAYED (below the frontier) or the Hole before `offset`.

        `committed` is the partition's committed offset (the first one to read after an
        assignment; None when nothing, or offset 0, is committed): the frontier until the
        partition's first message has been applied."""
        expected = self._next.get(tp, committed)
        if expected is None:
            return APPLY if offset == 0 else Hole(None, offset)
        if offset < expected:
            return REPLAYED
        if offset > expected:
            return Hole(expected, offset)
        return APPLY

    def advance(self, tp: Any, offset: int) -> None:
        """The message at `offset` has been applied."""
        if offset >= self._next.get(tp, 0):
            self._next[tp] = offset + 1

    def skip_to(self, tp: Any, offset: int) -> None:
        """Everything before `offset` has been applied (a hole held no more records)."""
        if offset > self._next.get(tp, -1):
            self._next[tp] = offset

    def position(self, tp: Any) -> int | None:
        """The next offset to apply, once known since the assignment."""
        return self._next.get(tp)

    def positions(self, topics: Iterable[Any] | None = None) -> dict[Any, int]:
        """Offsets to commit: the frontier of every partition with applied messages
        (restricted to `topics`, partitions or topic names, when given)."""
        if topics is None:
            return dict(self._next)
        wanted = set(topics)
        return {tp: o for tp, o in self._next.items() if tp in wanted or tp.topic in wanted}

    def owns(self, tp: Any) -> bool:
        """Whether `tp` is an input partition (committed from the frontier, never from
        Faust's acknowledgements)."""
        return tp.topic in self.topics

    def clear(self) -> None:
        """The assignment was revoked: start again from the committed offsets."""
        self._next.clear()
        self.generation += 1


class FetchedSpan:
    """The offsets a read from the broker found in one partition's range [low, high]:
    a later hole inside that range whose offsets hold no record needs no read of its own.

    A compacted topic (contact preferences) has many such holes on Apache Kafka; a read
    returns up to a few thousand records past the hole it was made for, so one read
    settles the holes that follow. Offsets without a record never get one, so what a
    span says stays true."""

    def __init__(self) -> None:
        self._spans: dict[Any, tuple[int, tuple[int, ...]]] = {}

    def note(self, tp: Any, low: int, offsets: list[int]) -> None:
        """A read from `low` found records at `offsets` (ascending), and no others up to
        the last of them."""
        if offsets:
            self._spans[tp] = (min(low, offsets[0]), tuple(offsets))

    def absent(self, tp: Any, hole: Hole) -> bool:
        """Whether every offset of `hole` is known to hold no record."""
        span = self._spans.get(tp)
        if span is None or hole.start is None:
            return False
        low, found = span
        if hole.start < low or hole.end - 1 > found[-1]:
            return False
        first_at_or_after = found[bisect_left(found, hole.start)]
        return first_at_or_after >= hole.end
