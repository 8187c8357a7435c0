"""Runtime.handle: Given a message, Then the state, the dead letters and the counters."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agents.engine.events import InputMessage
from agents.metrics import sample_totals
from agents.settings import load_settings
from agents.worker.app import VipApp, create_app
from schemas.config import IngestSettings
from schemas.outputs import DeadLetter
from streams.codec import decode_state
from streams.units import amount
from tests import factories as f
from tests.agents.conftest import MessageFactory, queued, queued_on
from tests.oracle import expected_figures
from tests.poison import batches


def counter(app: VipApp, name: str, **labels: str) -> float:
    value = app.vip.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_a_valid_event_updates_state_without_output(
    app: VipApp, message: MessageFactory
) -> None:
    app.vip.events.handle(message(f.raw(f.order(amount=120, customer_id="C1")), topic="orders"))
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
    app.vip.events.handle(original)
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
    runtime = app.vip.events
    for junk in (b"\xff", b"[]", b"{}", b"null"):
        runtime.handle(message(junk))
    runtime.handle(message(f.raw(f.call(cost=2.0))))
    state = app.vip.store.get(b"C1")
    assert state is not None
    assert state.contacts == 1


async def test_duplicates_are_counted_not_applied(app: VipApp, message: MessageFactory) -> None:
    body = f.raw(f.order(event_id="same", amount=10))
    for _ in range(3):
        app.vip.events.handle(message(body, topic="orders"))
    state = app.vip.store.get(b"C1")
    assert state is not None
    assert amount(state.revenue) == 10
    topic = app.vip.settings.topics.name("orders")
    assert counter(app, "vipstream_events_duplicate_total", topic=topic) == 2


async def test_late_events_are_dead_lettered_with_the_horizon(
    app: VipApp, message: MessageFactory
) -> None:
    runtime = app.vip.events
    runtime.handle(message(f.raw(f.call(occurred_at="2026-03-02T12:00:00Z"))))
    runtime.handle(message(f.raw(f.call(occurred_at="2026-03-02T10:59:59Z"))))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "late_event"
    assert "2026-03-02T11:00:00Z" in letter["detail"]


async def test_a_processing_error_is_dead_lettered_and_the_worker_goes_on(
    app: VipApp, message: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.engine.events

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(agents.engine.events, "apply_event", broken)
    app.vip.events.handle(message(f.raw(f.call())))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "processing_error"
    assert "ZeroDivisionError" in letter["detail"]
    assert counter(app, "vipstream_processing_errors_total") == 1


async def test_a_bug_outside_apply_is_a_processing_error_not_a_crash(
    app: VipApp, message: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception escaping handle() would crash the agent and lose the message."""
    import agents.engine.events

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug in the decoder")

    monkeypatch.setattr(agents.engine.events, "decode_input", broken)
    app.vip.events.handle(message(b"{}", key=b"\xff" * 2000))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "processing_error"
    assert "a bug in the decoder" in letter["detail"]
    assert counter(app, "vipstream_processing_errors_total") == 1


@pytest.mark.parametrize("seconds", [-1e15, 1e15, 9.3e15, float("nan")])
async def test_any_record_timestamp_gives_a_dead_letter(
    app: VipApp, message: MessageFactory, seconds: float
) -> None:
    """A producer may set any 64-bit timestamp; beyond the calendar, as_of is the clock."""
    bad = message(b"[]")
    app.vip.events.handle(InputMessage(bad.topic, 0, 1, b"C1", b"[]", seconds))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["reason"] == "not_an_object"
    assert letter["as_of"] == letter["emitted_at"]


@pytest.mark.parametrize(("key", "kept"), [(b"\xff" * 1024, True), (b"\xff" * 1025, False)])
async def test_a_large_unreadable_key_is_not_copied_to_the_dead_letter(
    app: VipApp, message: MessageFactory, key: bytes, kept: bool
) -> None:
    app.vip.events.handle(message(b"[]", key=key))
    (letter_key,) = [
        k for topic, _, k, _ in queued(app) if topic == app.vip.settings.topics.name("dead_letters")
    ]
    assert letter_key == (key if kept else None)


async def test_dead_letter_payload_is_truncated(app: VipApp, message: MessageFactory) -> None:
    limit = app.vip.settings.ingest.dead_letter_payload_max_bytes
    big = b"[" + b"1," * limit + b"1]"
    app.vip.events.handle(message(big))
    (letter,) = queued_on(app, "dead_letters")
    assert letter["payload_truncated"] is True
    assert letter["payload_bytes"] == len(big)
    assert len(base64.b64decode(letter["payload"])) == limit


async def test_the_largest_dead_letter_fits_in_a_producer_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the largest settings allowed, the largest dead letter (payload, detail, key)
    stays below Faust's default producer limit, 1,000,000 bytes: one it refuses would
    crash the worker on the same message after every restart."""
    import os

    for name in list(os.environ):
        if name.startswith("VIPSTREAM_"):
            monkeypatch.delenv(name)
    limits = IngestSettings.model_fields
    ingest = {
        name: _upper_bound(limits[name].metadata)
        for name in ("max_event_bytes", "dead_letter_payload_max_bytes")
    }
    app = create_app(load_settings({"app_id": "largest-dead-letter", "ingest": ingest}))
    value = b'{"event_type": "' + "é".encode() * (ingest["max_event_bytes"] // 2 - 20) + b'"}'
    key = b"k" * 1024
    app.vip.events.handle(InputMessage(app.vip.settings.topics.name("calls"), 0, 0, key, value, 0))
    ((_, _, letter_key, letter),) = queued(app)
    assert len(letter) + len(letter_key or b"") < 1_000_000


def _upper_bound(metadata: list[Any]) -> int:
    (bound,) = [m.le for m in metadata if getattr(m, "le", None) is not None]
    return int(bound)


async def test_dead_letter_ids_are_deterministic(app: VipApp, message: MessageFactory) -> None:
    bad = message(b"[]")
    app.vip.events.handle(bad)
    app.vip.events.handle(bad)
    first, second = queued_on(app, "dead_letters")
    assert first["event_id"] == second["event_id"]


async def test_watermark_and_lag_follow_event_time(app: VipApp, message: MessageFactory) -> None:
    app.vip.events.handle(message(f.raw(f.call(occurred_at="2026-03-02T12:00:00Z"))))
    watermark = counter(app, "vipstream_watermark_timestamp_seconds")
    assert watermark == 1_772_452_800 - 3600  # 12:00 less the allowed lateness
    assert counter(app, "vipstream_event_lag_seconds_count") == 1


async def test_changelog_gets_one_write_per_customer_per_commit(
    app: VipApp, message: MessageFactory
) -> None:
    runtime = app.vip.events
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
    changes = [c for c in store.snapshot().changes if not c[0].startswith(b"\x00")]
    assert len(changes) == 2  # the partitions' progress records are written as well
    by_key = {key: (partition, value) for key, partition, value in changes}
    assert by_key[b"C1"][0] == 3
    assert by_key[b"C2"][0] == 5
    assert decode_state(by_key[b"C2"][1]).revenue == 50_000_000
    # The ledger checkpoints copied at that snapshot are encoded in a thread and go out
    # with the next one (agents/engine/checkpoint.py): only they and the progress naming
    # them, no customer
    book = app.vip.engine.book
    for journal in book.journals.values():
        if journal.pending is not None:
            journal.pending.records.result(timeout=30)
    following = store.snapshot().changes
    assert all(key.startswith(b"\x00") for key, _, _ in following)
    assert len(store.snapshot()) == 0  # nothing changed since, progress included


# -- poison, generated --------------------------------------------------------------------
_batches = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # no shrinking: the app keeps the state of earlier examples
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one app; each example has its own customers
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
async def test_every_poison_message_gets_one_dead_letter_with_its_reason(
    app: VipApp, data: st.DataObject
) -> None:
    """tests/poison.py: each message is applied, counted as a duplicate, or dead-lettered
    once with the reason it was made to get; never a processing error, never an exception."""
    runtime, settings_ = app.vip.events, app.vip.settings
    prefix = f"b{next(_batches)}"
    batch = data.draw(batches(prefix), label="batch")
    before = _counts(app)
    app.vip.outputs.pending.clear()  # only this example's dead letters
    for offset, sent in enumerate(batch):
        stamp = 1_772_445_600_000 if sent.timestamp_ms is None else sent.timestamp_ms
        topic = settings_.topics.name(sent.topic)
        runtime.handle(InputMessage(topic, 0, offset, sent.key, sent.value, stamp / 1000))

    letters = {letter["offset"]: letter for letter in queued_on(app, "dead_letters")}
    assert len(letters) == len(queued_on(app, "dead_letters"))  # one per message at most
    poison = {offset: sent for offset, sent in enumerate(batch) if sent.reason}
    assert sorted(letters) == sorted(poison)
    for offset, sent in poison.items():
        letter = letters[offset]
        assert (letter["reason"], letter["source_topic"]) == (
            sent.reason,
            settings_.topics.name(sent.topic),
        ), sent
        limit = settings_.ingest.dead_letter_payload_max_bytes
        assert base64.b64decode(letter["payload"]) == (sent.value or b"")[:limit]

    valid = [sent for sent in batch if sent.reason is None]
    expected, distinct = expected_figures(sent.value or b"" for sent in valid)
    after = _counts(app)
    assert after["applied"] - before["applied"] == distinct
    assert after["duplicate"] - before["duplicate"] == len(valid) - distinct
    assert after["invalid"] - before["invalid"] == len(poison)
    assert after["processing_errors"] == 0
    for customer, figures in expected.items():
        state = app.vip.store.get(customer.encode())
        assert state is not None
        assert (state.revenue, state.service_cost, state.contacts) == (
            figures.revenue,
            figures.service_cost,
            figures.contacts,
        )


def _counts(app: VipApp) -> dict[str, float]:
    totals = sample_totals(app.vip.metrics.render().decode())
    return {
        name: totals.get(f"vipstream_{metric}", 0.0)
        for name, metric in [
            ("applied", "events_applied_total"),
            ("duplicate", "events_duplicate_total"),
            ("invalid", "events_invalid_total"),
            ("processing_errors", "processing_errors_total"),
        ]
    }
