"""Whether an input partition is caught up, as the value engine's watermark asks it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agents.engine.book import Book
from agents.engine.store import CustomerStore, DictStore
from agents.engine.summaries import SummaryBus
from agents.engine.watermarks import Watermarks
from agents.settings import Settings


@dataclass
class Positions:
    """agents.engine.ports.InputPositions, from dicts."""

    highwaters: dict[tuple[str, int], int] = field(default_factory=dict)
    committed_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def highwater(self, topic: str, partition: int) -> int | None:
        return self.highwaters.get((topic, partition))

    def committed(self, topic: str, partition: int) -> int | None:
        return self.committed_offsets.get((topic, partition))


def test_a_partition_that_comes_back_is_judged_by_its_committed_offset(
    settings: Settings,
) -> None:
    book = Book(settings, CustomerStore(DictStore, capacity=10))
    calls = settings.topics.name("calls")
    positions = Positions({(calls, 0): 100}, {(calls, 0): 40})
    marks = Watermarks(book, SummaryBus(), lambda: positions, time.time)
    book.note_offset(calls, 0, 99)  # read up to its end here
    assert marks.caught_up(calls, 0)

    # the partition moves to another worker, which reads 200 more, then comes back
    book.forget()
    positions.highwaters[(calls, 0)] = 300
    positions.committed_offsets[(calls, 0)] = 300
    assert marks.caught_up(calls, 0), "a stale position made it look behind"

    positions.highwaters[(calls, 0)] = 301  # a new message: behind until it is read
    assert not marks.caught_up(calls, 0)
    book.note_offset(calls, 0, 300)
    assert marks.caught_up(calls, 0)


def test_an_unknown_log_end_is_not_caught_up(settings: Settings) -> None:
    book = Book(settings, CustomerStore(DictStore, capacity=10))
    marks = Watermarks(book, SummaryBus(), Positions, time.time)
    assert not marks.caught_up(settings.topics.name("calls"), 3)
