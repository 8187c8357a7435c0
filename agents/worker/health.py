"""What /healthz reports: is this worker consuming, and if not, why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient

from agents.kafka.security import Client, options_of

log = logging.getLogger(__name__)


@dataclass
class HealthReport:
    status: str  # ok | starting | rebalancing | recovering | broker_unreachable
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Health:
    """Tracks start-up, rebalances, table recovery and broker reachability."""

    def __init__(
        self,
        app: Any,
        client: Client,
        *,
        probe_interval: float = 2.0,
        unreachable_after: float = 8.0,
    ) -> None:
        self._app = app
        self._client = options_of(client)
        self._probe_interval = probe_interval
        self._unreachable_after = unreachable_after
        self.started = False
        self._broker_ok_at: float | None = None
        self._broker_error = "not contacted yet"

    def report(self) -> HealthReport:
        app = self._app
        if not self.started:
            return HealthReport("starting", "the worker is starting")
        broker_age = None if self._broker_ok_at is None else time.monotonic() - self._broker_ok_at
        if broker_age is None or broker_age > self._unreachable_after:
            since = "never" if broker_age is None else f"{broker_age:.0f}s ago"
            return HealthReport(
                "broker_unreachable",
                f"last successful broker contact {since}: {self._broker_error}",
            )
        if app.rebalancing:
            return HealthReport("rebalancing", "the consumer group is rebalancing")
        if not app.tables.actives_ready:
            return HealthReport("recovering", "rebuilding customer state from the changelog")
        return HealthReport("ok", "consuming")

    async def probe_broker_forever(self) -> None:
        """Ask the broker for metadata every few seconds; remember when it last answered."""
        client = AIOKafkaClient(**self._client, request_timeout_ms=5000)
        try:
            while True:
                try:
                    await asyncio.wait_for(self._probe(client), timeout=5.0)
                    if self._broker_ok_at is None or self._broker_error:
                        log.info("broker reachable", extra={"event": "broker_reachable"})
                    self._broker_ok_at = time.monotonic()
                    self._broker_error = ""
                except Exception as exc:  # any failure, timeouts included, means "not reachable"
                    if not self._broker_error:
                        log.warning(
                            "broker not reachable: %r", exc, extra={"event": "broker_unreachable"}
                        )
                    self._broker_error = repr(exc) or type(exc).__name__
                await asyncio.sleep(self._probe_interval)
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    @staticmethod
    async def _probe(client: AIOKafkaClient) -> None:
        if not client.cluster.brokers():
            await client.bootstrap()
        await client.fetch_all_metadata()
