"""One customer with 50,000 events through the real broker: every event applied, and the
state the worker writes to its changelog stays bounded (read back from the changelog).

(Oversized messages: tests/integration/test_poison.py. More partitions than workers: the
same file, eight partitions and one worker. The bound of every part of the state, with
the longest identifiers: tests/unit/test_state_bounds.py.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from agents.kafka.clients import consume_topics
from streams.codec import decode_state
from tests.integration.conftest import WorkerFactory
from tests.integration.kafka import produce, settings_for
from tests.oracle import expected_figures
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

EVENTS = 50_000
BURST = 10_000  # calls on the last day: more than the 4,096 ids remembered per stream
DAYS = 60
START = datetime(2026, 1, 5, tzinfo=UTC)


def history() -> list[tuple[str, bytes]]:
    """(topic key, value): calls, orders, tickets and preferences spread over 60 days,
    then a burst of calls within the last day; always in time order."""
    spread = EVENTS - BURST
    step = timedelta(days=DAYS - 1) / spread
    out = []
    for n in range(spread):
        moment = (START + n * step).isoformat()
        kind = n % 10
        common = {"event_id": f"e{n}", "customer_id": "BIG", "occurred_at": moment}
        if kind < 6:
            body = {
                **common,
                "event_type": "call",
                "channel": "phone",
                "direction": "inbound",
                "duration_seconds": n % 900,
                "category": ["login", "billing", "how_to"][n % 3],
                "satisfaction": 1 + n % 5,
            }
            out.append(("calls", orjson.dumps(body)))
        elif kind < 9:
            body = {
                **common,
                "event_type": "order",
                "kind": "refund" if n % 7 == 0 else "purchase",
                "amount": (n % 500) / 4,
                "currency": "EUR",
                "items": [{"sku": f"sku-{n % 40}", "quantity": 1, "consumption_days": 30}],
            }
            out.append(("orders", orjson.dumps(body)))
        elif n % 50 == 9:  # few: each waiting ticket costs every later one (see README)
            body = {**common, "event_type": "ticket", "ticket_id": f"T{n}", "status": "opened"}
            out.append(("tickets", orjson.dumps(body)))
        else:
            body = {**common, "event_type": "contact_preference", "do_not_call": n % 20 == 9}
            out.append(("contact_preferences", orjson.dumps(body)))
    last = START + timedelta(days=DAYS - 1, hours=1)
    for n in range(BURST):
        body = {
            "event_type": "call",
            "event_id": f"burst{n}",
            "customer_id": "BIG",
            "occurred_at": (last + timedelta(seconds=n)).isoformat(),
            "channel": "chat",
            "direction": "inbound",
            "duration_seconds": 60,
        }
        out.append(("calls", orjson.dumps(body)))
    return out


def test_one_customer_with_50000_events_keeps_a_bounded_state(
    make_worker: WorkerFactory, env: dict[str, str]
) -> None:
    events = history()
    expected, distinct = expected_figures(value for _, value in events)
    assert distinct == EVENTS
    with running(make_worker()) as worker:
        produce(env, [(topic, b"BIG", value) for topic, value in events])
        progress: list[float] = []

        def all_applied() -> bool:
            progress.append(worker.metric("vipstream_events_applied_total"))
            return progress[-1] == EVENTS

        try:
            wait_for(all_applied, timeout=150, what=f"{EVENTS} events applied", interval=1.0)
        except AssertionError as exc:  # slow, or stuck: the progress tells which
            raise AssertionError(f"{exc}; applied, every 10 s: {progress[::10]}") from None
        status, body = worker.get("/customers/BIG")
        assert status == 200
        assert round(body["lifetime_revenue"] * 1e6) == expected["BIG"].revenue
        assert round(body["lifetime_service_cost"] * 1e6) == expected["BIG"].service_cost
        assert body["lifetime_contacts"] == expected["BIG"].contacts
        assert worker.metric("vipstream_events_invalid_total") == 0

        # every version of the state the worker made durable, read back from the changelog
        def all_applied_and_written() -> list[bytes] | None:
            states = _states_in_changelog(env)
            complete = states and decode_state(states[-1]).contacts == expected["BIG"].contacts
            return states if complete else None

        sizes = wait_for(
            all_applied_and_written,
            timeout=30,
            what="the state with every event in the changelog",
        )
    cap = settings_for(env).ingest.dedupe_max_ids_per_customer
    latest = decode_state(sizes[-1])
    assert len(latest.streams["call"].seen) == cap  # the burst filled the id memory
    assert all(len(memory.seen) <= cap for memory in latest.streams.values())
    assert len(latest.days) <= DAYS
    assert len(latest.care.orders) <= 40  # one line per sku and day waiting for a close
    largest = max(len(value) for value in sizes)
    # 4 streams x 4,096 ids x 16 bytes in base64 is 350 kB; the rest is small here
    assert largest < 400_000, largest
    print(f"\n{len(sizes)} state writes, largest {largest:,} bytes, last {len(sizes[-1]):,}")


def _states_in_changelog(env: dict[str, str]) -> list[bytes]:
    """Every state of the customer the worker wrote to its changelog, oldest first."""
    settings = settings_for(env)
    topic = f"{settings.app_id}-customer_state-changelog"

    async def read() -> list[bytes]:
        return [
            value
            async for _, _, _, key, value in consume_topics(settings, [topic], idle_timeout=1.0)
            if key == b"BIG" and value is not None
        ]

    return asyncio.run(read())
