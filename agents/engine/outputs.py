"""Output events to their contract topics: encoded once, counted, queued for sending."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.engine.ports import OutputSend
from agents.metrics import Metrics
from agents.settings import Settings


class Outputs:
    """The one way out for every output event (the event path's dead letters and ticket
    priorities, the day close's tier changes, spikes and care tasks)."""

    def __init__(self, settings: Settings, metrics: Metrics, send: OutputSend) -> None:
        self._send = send
        self._topics = settings.topics
        self._metric = metrics.outputs
        self._counters: dict[str, Any] = {}  # topic key -> its counter, made when first used

    def emit(self, topic_key: str, partition: int, key: bytes | None, event: BaseModel) -> None:
        """Queue one output event (JSON) on a contract topic, in the customer's partition."""
        self._send(topic_key, partition, key, event.model_dump_json().encode())
        counter = self._counters.get(topic_key)
        if counter is None:
            counter = self._counters[topic_key] = self._metric.labels(
                topic=self._topics.name(topic_key)
            )
        counter.inc()

    def tombstone(self, topic_key: str, partition: int, key: bytes) -> None:
        """Queue a tombstone (no value) for the key on a compacted output: an erased
        customer's record goes away when the topic is compacted."""
        self._send(topic_key, partition, key, None)
