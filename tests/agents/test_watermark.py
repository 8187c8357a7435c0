"""Whether an input partition is caught up, as the value engine's watermark asks it."""

from __future__ import annotations

from dataclasses import dataclass, field

from faust.types import TP

from agents.worker.app import VipApp


@dataclass
class Consumer:
    """The two things the engine reads from Faust's consumer."""

    highwaters: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


def test_a_partition_that_comes_back_is_judged_by_its_committed_offset(app: VipApp) -> None:
    engine = app.vip.engine
    calls = app.vip.settings.topics.name("calls")
    tp = TP(calls, 0)
    consumer = Consumer({tp: 100}, {tp: 40})
    engine._consumer = lambda: consumer
    engine.note_offset(calls, 0, 99)  # read up to its end here
    assert engine._caught_up(consumer, calls, 0)

    # the partition moves to another worker, which reads 200 more, then comes back
    engine.forget()
    consumer.highwaters[tp] = 300
    consumer._committed_offset[tp] = 300
    assert engine._caught_up(consumer, calls, 0), "a stale position made it look behind"

    consumer.highwaters[tp] = 301  # a new message: behind until it is read
    assert not engine._caught_up(consumer, calls, 0)
    engine.note_offset(calls, 0, 300)
    assert engine._caught_up(consumer, calls, 0)
