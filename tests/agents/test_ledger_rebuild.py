"""A partition's ledger rebuilt from the store (after a restart or a rebalance) schedules
the same closes as the live ledger it replaces: a customer no close has seen yet is
closed on the day of its events, even when they left no day bucket (a contact
preference), so its later due days (leaving `new`) are not lost."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from agents.worker.app import VipApp
from streams.units import day_of, to_micros
from tests.agents.conftest import MessageFactory

PREFERENCE = {
    "event_type": "contact_preference",
    "event_id": "p-1",
    "customer_id": "C1",
    "occurred_at": "2026-01-05T07:20:46Z",
    "do_not_call": True,
}


def _stale_days(app: VipApp, key: bytes) -> list[int]:
    ledger = app.vip.engine.ledger(0)
    return [day for day, keys in ledger._stale.items() if key in keys]


def test_a_customer_with_only_a_preference_is_closed_after_a_rebuild(
    app: VipApp, message: MessageFactory
) -> None:
    app.vip.events.handle(message(orjson.dumps(PREFERENCE), topic="contact_preferences", key=b"C1"))
    day = day_of(to_micros(datetime(2026, 1, 5, tzinfo=UTC)))
    live = _stale_days(app, b"C1")
    assert live == [day]

    # committed, then rebuilt from the store alone, as after a restart
    store = app.vip.store
    store.confirm(store.snapshot(), {})
    store.forget_cache()
    app.vip.engine.forget()
    assert _stale_days(app, b"C1") == live
