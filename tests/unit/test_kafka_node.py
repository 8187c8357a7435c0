"""The Apache Kafka test engine's own helpers (agents/tools/kafka_broker.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from agents.tools import kafka_broker


@dataclass
class FakeUuid:
    bytes: bytes


def test_a_cluster_id_never_reads_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """URL-safe base64 can start with "-": the storage tool took such an id for an
    option, and a test session failed to start its broker."""
    dashed = [bytes([0xF8]) + bytes(15), bytes([0xFB]) + bytes(15)]
    assert all(base64.urlsafe_b64encode(raw).startswith(b"-") for raw in dashed)
    drawn = iter([*dashed, bytes(16)])
    monkeypatch.setattr(kafka_broker.uuid, "uuid4", lambda: FakeUuid(next(drawn)))
    assert kafka_broker.random_cluster_id() == "A" * 22
