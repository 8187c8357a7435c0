"""Runtime.handle: Given a message, Then the state, the dead letters and the counters."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from agents.app import VipApp
from schemas.outputs import DeadLetter
from streams.units import amount
from tests import factories as f
from tests.agents.conftest import MessageFactory, queued_on


def counter(app: VipApp, name: str, **labels: str) -> float:
    value = app.vip.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_a_valid_event_updates_state_without_output(
    app: VipApp, message: MessageFactory
) -> None:
    app.vip.runtime.handle(message(f.raw(f.order(amount=120, customer_id="C1")), topic="orders"))
    state = app.vip.store.get(b"C1")
    assert state is not None
    assert amount(state.revenue) == 120
    assert queued_on(app, "dead_letters") == []
    topic = app.vip.settings.topics.name("orders")
    assert counter(app, "vipstream_events_consumed_total", topic=topic) == 1
    assert counter(app, "vipstream_events_applied_total", topic=topic) == 1


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("invalid JSON", {"value": b"{not json"}, "invalid_json"),
    ("an array", {"value": b"[1]"}, "not_an_object"),
    ("unknown type", {"value": f.raw(f.call(event_type="complaint"))}, "unknown_event_type"),
    ("an order on calls", {"value": f.raw(f.order())}, "wrong_topic"),
    ("a bad field", {"value": f.raw(f.call(duration_seconds=-5))}, "schema_violation"),
    ("wrong key", {"value": f.raw(f.call()), "key": b"C2"}, "key_mismatch"),
    ("tombstone", {"value": None}, "empty_payload"),
]


@pytest.mark.parametrize(("why", "parts", "reason"), BAD, ids=[c[0] for c in BAD])
async def test_bad_input_becomes_a_dead_letter(
    app: VipApp, message: MessageFactory, why: str, parts: dict[str, Any], reason: str
) -> None:
    original = message(**parts)
    app.vip.runtime.handle(original)
    (letter,) = queued_on(app, "dead_letters")
    DeadLetter.model_validate(letter, strict=False)
    assert letter["reason"] == reason
    assert letter["source_topic"] == original.topic
    assert letter["offset"] == original.offset
    assert base64.b64decode(letter["payload"]) == (original.value or b"")
    assert counter(app, "vipstream_events_invalid_total", topic=original.topic, reason=reason) == 1


async def test_the_next_valid_event_is_applied_after_bad_ones(
    app: VipApp, message: MessageFactory
) -> None:
    runtime = app.vip.runtime
    for junk in (b"\xff", b"[]", b"{}", b"null"):
        runtime.handle(message(junk))
    runtime.handle(message(f.raw(f.call(cost=2.0))))
    state = app.vip.store.get(b"C1")
    assert state is not None
    assert state.contacts == 1


async def test_duplicates_are_counted_not_applied(app: VipApp, message: MessageFactory) -> None:
    body = f.raw(f.order(event_id="same", amount=10))
    for _ in range(3):
        app.vip.runtime.handle(message(body, topic="orders"))
    state = app.vip.store.get(b"C1")
    assert state is not None
    assert amount(state.revenue) == 10
    topic = app.vip.settings.topics.name("orders")
    assert counter(app, "vipstream_events_duplicate_total", topic=topic) == 2


async def test_late_events_are_dead_lettered_with_the_horizon(
    app: VipApp, message: MessageFactory
) -> None:
    runtime = app.vip.runtime
    runtime.handle(message(f.raw(f.call(occurred_at="2026-03-02T12:00:00Z"))))
    runtime.handle(message(f.raw(f.call(occurred_at="2026-03-02T10:59:59Z"))))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "late_event"
    assert "2026-03-02T11:00:00Z" in letter["detail"]


async def test_a_processing_error_is_dead_lettered_and_the_worker_goes_on(
    app: VipApp, message: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.runtime

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(agents.runtime, "apply_event", broken)
    app.vip.runtime.handle(message(f.raw(f.call())))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "processing_error"
    assert "ZeroDivisionError" in letter["detail"]
    assert counter(app, "vipstream_processing_errors_total") == 1


async def test_dead_letter_payload_is_truncated(app: VipApp, message: MessageFactory) -> None:
    limit = app.vip.settings.ingest.dead_letter_payload_max_bytes
    big = b"[" + b"1," * limit + b"1]"
    app.vip.runtime.handle(message(big))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["payload_truncated"] is True
    assert letter["payload_bytes"] == len(big)
    assert len(base64.b64decode(letter["payload"])) == limit


async def test_dead_letter_ids_are_deterministic(app: VipApp, message: MessageFactory) -> None:
    bad = message(b"[]")
    app.vip.runtime.handle(bad)
    app.vip.runtime.handle(bad)
    first, second = queued_on(app, "dead_letters")
    assert first["event_id"] == second["event_id"]


async def test_watermark_and_lag_follow_event_time(app: VipApp, message: MessageFactory) -> None:
    app.vip.runtime.handle(message(f.raw(f.call(occurred_at="2026-03-02T12:00:00Z"))))
    watermark = counter(app, "vipstream_watermark_timestamp_seconds")
    assert watermark == 1_772_452_800 - 3600  # 12:00 less the allowed lateness
    assert counter(app, "vipstream_event_lag_seconds_count") == 1


async def test_changelog_gets_one_write_per_customer_per_commit(
    app: VipApp, message: MessageFactory
) -> None:
    runtime = app.vip.runtime
    for i in range(50):
        runtime.handle(
            message(f.raw(f.order(customer_id="C1", amount=i)), topic="orders", partition=3)
        )
        runtime.handle(
            message(
                f.raw(f.order(customer_id="C2", amount=1)), topic="orders", key=b"C2", partition=5
            )
        )
    store = app.vip.store
    futures = [
        f for f in store.write_changelog(store.snapshot()) if not f.message.key.startswith(b"\x00")
    ]
    assert len(futures) == 2  # the partitions' progress records are written as well
    by_key = {fut.message.key: fut.message for fut in futures}
    assert by_key[b"C1"].partition == 3
    assert by_key[b"C2"].partition == 5
    assert orjson.loads(by_key[b"C2"].value)["revenue"] == 50_000_000
    assert len(store.snapshot()) == 0  # nothing changed since, progress included
