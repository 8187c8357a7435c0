"""Input partitions whose offsets stopped being committed (the worker warns and counts
them: `commit_stalled`, vipstream_commit_stalled_partitions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class StalledCommit:
    """An input partition whose committed offset has not moved for `seconds` although
    the agent has applied events past it (its frontier is `position`)."""

    tp: Any
    committed: int | None
    position: int
    seconds: float


class CommitWatch:
    """Finds input partitions whose offsets stopped being committed.

    The commit barrier commits every input partition up to its frontier (the events the
    agent has applied without a gap). A committed offset that stays behind the frontier
    for long means commits keep failing or being refused for it: a restart would replay
    everything since (the duplicates are ignored, but the replay grows) and the group's
    lag on that partition only rises."""

    def __init__(self, after_seconds: float = 30.0) -> None:
        self._after = after_seconds
        #: partition -> (committed offset, when it was first seen behind the frontier)
        self._since: dict[Any, tuple[int | None, float]] = {}

    def check(
        self, positions: Mapping[Any, int], committed: Mapping[Any, int | None], now: float
    ) -> list[StalledCommit]:
        stalled = []
        behind = {}
        for tp, position in positions.items():
            current = committed.get(tp)
            if current is None or position > current:
                behind[tp] = (current, position)
        for tp in list(self._since):
            if tp not in behind:
                del self._since[tp]  # committed up to the frontier, or revoked
        for tp, (current, position) in behind.items():
            seen = self._since.get(tp)
            if seen is None or seen[0] != current:
                self._since[tp] = (current, now)
            elif now - seen[1] >= self._after:
                stalled.append(StalledCommit(tp, current, position, now - seen[1]))
        return stalled
