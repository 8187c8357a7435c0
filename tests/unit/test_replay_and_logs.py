"""Routing of JSONL lines by `vipstream replay`, and the log throttle."""

from __future__ import annotations

import pytest

from agents.logs import Throttle
from agents.replay import route_line


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
