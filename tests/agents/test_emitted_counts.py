"""The value engine sums the emitted-output counts every partition publishes on the
summaries bus: the same whole-system figures on every worker."""

from __future__ import annotations

import orjson

from agents.worker.app import VipApp


def publish(app: VipApp, partition: int, emitted: dict[str, int] | None) -> None:
    message: dict[str, object] = {"partition": partition, "tiered_day": 10, "tier_counts": {}}
    if emitted is not None:
        message["emitted"] = emitted
    app.vip.engine.bus.receive(orjson.dumps(message))


def test_counts_of_every_partition_are_summed(app: VipApp) -> None:
    publish(app, 0, {"tier_change": 3, "care_task:upsell": 1})
    publish(app, 1, {"tier_change": 2, "basic_question_spike": 1})
    publish(app, 2, None)  # a worker of an older version: no counts in its message
    assert app.vip.engine.emitted_counts() == {
        "tier_change": 5,
        "care_task:upsell": 1,
        "basic_question_spike": 1,
    }


def test_a_partition_s_newer_message_replaces_its_counts(app: VipApp) -> None:
    publish(app, 0, {"tier_change": 3})
    publish(app, 1, {"tier_change": 1})
    publish(app, 0, {"tier_change": 4})  # the partition tiered another day
    assert app.vip.engine.emitted_counts() == {"tier_change": 5}


def test_nothing_published_counts_nothing(app: VipApp) -> None:
    assert app.vip.engine.emitted_counts() == {}
