"""Routing of JSONL lines by `vipstream replay`; log lines (JSON format) and the throttle."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime

import pytest

from agents.logs import JsonFormatter, Throttle, logging_config
from agents.tools.replay import route_line


@pytest.mark.parametrize(
    ("line", "routed"),
    [
        (b'{"event_type": "call", "customer_id": "C1"}', ("calls", b"C1")),
        (b'{"event_type": "order", "customer_id": "C2"}', ("orders", b"C2")),
        (b'{"event_type": "ticket", "customer_id": "C3"}', ("tickets", b"C3")),
        (
            b'{"event_type": "contact_preference", "customer_id": "C4"}',
            ("contact_preferences", b"C4"),
        ),
        (b'{"event_type": "call", "customer_id": "\xc3\xa9"}', ("calls", "é".encode())),
    ],
)
def test_lines_are_routed_by_event_type(line: bytes, routed: tuple[str, bytes]) -> None:
    assert route_line(line) == routed


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"{", "invalid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"customer_id": "C1"}', "unknown event_type"),
        (b'{"event_type": "refund", "customer_id": "C1"}', "unknown event_type"),
        (b'{"event_type": "call"}', "missing customer_id"),
        (b'{"event_type": "call", "customer_id": ""}', "missing customer_id"),
    ],
)
def test_unroutable_lines_say_why(line: bytes, why: str) -> None:
    result = route_line(line)
    assert isinstance(result, str)
    assert result.startswith(why)


def test_throttle_allows_one_line_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])
    assert throttle.allow("invalid_json") == (True, 0)
    assert throttle.allow("invalid_json") == (False, 0)
    assert throttle.allow("invalid_json") == (False, 0)
    assert throttle.allow("late_event") == (True, 0)  # keys are independent
    now[0] = 10.5
    assert throttle.allow("invalid_json") == (True, 2)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("vipstream.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("record", "fields"),
    [
        # a plain line: the standard fields, nothing else
        (_record("hello %s", "world"), {"level": "info", "message": "hello world"}),
        # a notable event: its name and figures become fields
        (
            _record("dead letter", event="dead_letter", reason="invalid_json", partition=3),
            {"event": "dead_letter", "reason": "invalid_json", "partition": 3},
        ),
        # a multi-line message (Faust's tables) stays on one line
        (_record("+--+\n|a|\n+--+"), {"message": "+--+\n|a|\n+--+"}),
        # times in RFC 3339; values JSON cannot hold, as text
        (
            _record("x", day=datetime(2026, 1, 1, tzinfo=UTC), tps=frozenset({7})),
            {"day": "2026-01-01T00:00:00+00:00", "tps": "frozenset({7})"},
        ),
    ],
)
def test_json_log_lines_carry_the_event_and_its_figures(
    record: logging.LogRecord, fields: dict[str, object]
) -> None:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["logger"] == "vipstream.test"
    assert {"ts", "level", "logger", "pid", "message"} <= entry.keys()
    for key, value in fields.items():
        assert entry[key] == value
    assert not {"args", "msg", "levelno", "exc_info"} & entry.keys()


def test_json_log_lines_hold_the_traceback_as_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "vipstream.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_logging_config_is_accepted_by_dictconfig(log_format: str) -> None:
    config = logging_config("warning", log_format)
    saved = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(config)
        assert logging.root.level == logging.WARNING
        (handler,) = logging.root.handlers
        assert isinstance(handler.formatter, JsonFormatter) == (log_format == "json")
    finally:
        logging.root.handlers[:], _ = saved
        logging.root.setLevel(saved[1])
