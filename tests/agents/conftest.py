"""A real (unstarted) Faust app: real table, memory store and output queue, no broker.

Output messages the runtime queues stay in the output queue (its sender task does not
run), where the tests read them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from agents.engine.events import InputMessage
from agents.kafka.producing import Record
from agents.settings import Settings, load_settings
from agents.worker.app import VipApp, create_app

_apps = itertools.count()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for name in list(os.environ):
        if name.startswith("VIPSTREAM_"):
            monkeypatch.delenv(name)
    return load_settings(
        {"app_id": f"test-{next(_apps)}", "ingest": {"allowed_lateness_seconds": 3600}}
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[VipApp]:
    return create_app(settings)


def queued(app: VipApp) -> list[Record]:
    """Output messages (topic, partition, key, value) queued, oldest first, not removed."""
    return list(app.vip.outputs.pending)


def queued_on(app: VipApp, topic_key: str) -> list[dict[str, Any]]:
    name = app.vip.settings.topics.name(topic_key)
    return [orjson.loads(value) for topic, _, _, value in queued(app) if topic == name]


MessageFactory = Callable[..., InputMessage]


@pytest.fixture
def message(settings: Settings) -> MessageFactory:
    offsets = itertools.count()

    def make(
        value: bytes | None, *, topic: str = "calls", key: bytes | None = b"C1", partition: int = 0
    ) -> InputMessage:
        return InputMessage(
            settings.topics.name(topic), partition, next(offsets), key, value, 1_772_445_600.0
        )

    return make
