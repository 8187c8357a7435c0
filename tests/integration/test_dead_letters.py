"""Garbage on every input topic: each message dead-lettered with the right reason, the
worker stays healthy, and valid events behind the garbage are applied."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from schemas.export import all_schemas
from tests import factories as f
from tests.integration.conftest import WorkerFactory
from tests.integration.kafka import produce, read_topic
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

TOPICS: dict[str, Callable[..., dict[str, Any]]] = {
    "calls": f.call,
    "orders": f.order,
    "tickets": f.ticket,
    "contact_preferences": f.preference,
}


def garbage(topic: str) -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, expected reason): one message per reason for the given input topic.

    No keyless message on the compacted contact-preferences topic: Apache Kafka refuses
    those itself (a compacted topic keeps the latest value per key); and no tombstone
    there: it deletes a customer's preference record (an erasure writes one), it is not
    bad input."""
    valid = TOPICS[topic]
    other = TOPICS["orders" if topic != "orders" else "calls"]
    keyless = [] if topic == "contact_preferences" else [(None, f.raw(valid()), "key_mismatch")]
    tombstone = [] if topic == "contact_preferences" else [(b"C1", None, "empty_payload")]
    return [
        (b"C1", b"\xff\xfe not json", "invalid_json"),
        (b"C1", b"[1, 2, 3]", "not_an_object"),
        (b"C1", b'{"event_type": "complaint"}', "unknown_event_type"),
        (b"C1", f.raw(other()), "wrong_topic"),
        (b"C1", f.raw(f.without(valid(), "occurred_at")), "schema_violation"),
        (b"C9", f.raw(valid()), "key_mismatch"),
        *keyless,
        *tombstone,
        (b"C1", f.raw(valid(occurred_at="1990-01-01T00:00:00Z")), "timestamp_out_of_range"),
        (b"C1", b"{" + b" " * 300_000 + b"}", "payload_too_large"),
    ]


def test_garbage_is_dead_lettered_and_valid_events_still_apply(
    make_worker: WorkerFactory, env: dict[str, str]
) -> None:
    messages: list[tuple[str, bytes | None, bytes | None]] = []
    expected: list[tuple[str, str]] = []
    for topic in TOPICS:
        for key, value, reason in garbage(topic):
            messages.append((topic, key, value))
            expected.append((topic, reason))
    messages.append(("orders", b"C1", f.raw(f.order(currency="USD"))))
    expected.append(("orders", "currency_mismatch"))
    # valid events after all the garbage
    messages += [
        ("orders", b"C1", f.raw(f.order(amount=42.5))),
        ("calls", b"C1", f.raw(f.call(cost=3.0))),
    ]

    with running(make_worker()) as worker:
        produce(env, messages)
        wait_for(
            lambda: worker.metric("vipstream_events_consumed_total") >= len(messages),
            timeout=60,
            what="all messages consumed",
        )
        status, customer = worker.get("/customers/C1")
        assert status == 200
        assert customer["lifetime_revenue"] == 42.5
        assert customer["lifetime_service_cost"] == 3.0
        assert worker.get("/healthz")[0] == 200

        letters = wait_for(
            lambda: _enough(read_topic(env, "dead_letters", idle=1.0), len(expected)),
            timeout=30,
            what="every dead letter",
        )
        prefix = env["VIPSTREAM_TOPICS__PREFIX"]
        got = sorted(
            (d["source_topic"].removeprefix(prefix).replace("-", "_"), d["reason"]) for d in letters
        )
        assert got == sorted(expected)
        validator = jsonschema.Draft202012Validator(all_schemas()["dead_letter.schema.json"])
        for letter in letters:
            validator.validate(json.loads(json.dumps(letter)))
            if letter["reason"] == "payload_too_large":
                assert letter["payload_truncated"] is True
                assert letter["payload_bytes"] > 300_000
            elif letter["reason"] == "invalid_json":
                assert base64.b64decode(letter["payload"]).startswith(b"\xff\xfe")
        assert worker.metric("vipstream_events_invalid_total") == len(expected)


def _enough(letters: list[dict[str, object]], count: int) -> list[dict[str, object]] | None:
    return letters if len(letters) >= count else None
