"""Structured logs: with log_format = "json", every line a worker writes (Faust's own
included) is one JSON object, the notable events carry their names and figures, and no
input payload reaches the log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import factories as f
from tests.integration.conftest import WorkerFactory
from tests.integration.kafka import produce
from tests.support import wait_for

pytestmark = pytest.mark.integration

MARKER = "payload-value-that-must-not-be-logged"


def test_json_logs_name_the_notable_events(make_worker: WorkerFactory, env: dict[str, str]) -> None:
    worker = make_worker(VIPSTREAM_LOG_FORMAT="json").start().wait_healthy()
    days = [f"2026-03-0{d}T10:00:00Z" for d in range(1, 6)]
    messages: list[tuple[str, bytes | None, bytes | None]] = [
        ("orders", b"C1", f.raw(f.order(occurred_at=day, amount=10.0))) for day in days
    ]
    messages += [
        ("calls", b"C1", b"{not json " + MARKER.encode()),
        ("calls", b"C1", f.raw({**f.call(), "unexpected": MARKER})),
    ]
    produce(env, messages)
    wait_for(
        lambda: worker.metric("vipstream_distribution_day_timestamp_seconds") > 0,
        timeout=60,
        what="a day closed and its population merged",
    )
    wait_for(
        lambda: worker.metric("vipstream_events_invalid_total") == 2,
        timeout=30,
        what="both dead letters",
    )
    worker.stop()

    text = worker.log_path.read_text()
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"log line {number} is not JSON: {line[:200]!r}")
    assert entries
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in entries)
    events = {e["event"]: e for e in entries if "event" in e}
    for name in (
        "worker_starting",
        "partitions_assigned",
        "ledger_built",
        "summary_published",
        "population_merged",
        "dead_letter",
    ):
        assert name in events, f"no {name} line"
    assert events["partitions_assigned"]["partitions"] == [0, 1, 2, 3]
    reasons = {e["reason"] for e in entries if e.get("event") == "dead_letter"}
    assert reasons <= {"invalid_json", "schema_violation"}
    assert reasons  # the throttle lets the first of each reason through
    assert MARKER not in text
