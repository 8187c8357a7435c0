"""What /healthz reports: is this worker consuming, and if not, why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient

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
        bootstrap: list[str],
        *,
        probe_interval: float = 2.0,
        unreachable_after: float = 8.0,
    ) -> None:
        self._app = app
        self._bootstrap = bootstrap
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
        client = AIOKafkaClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
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


def group_coordination_error(consumer: Any) -> BaseException | None:
    """The error that ended the Kafka client's consumer-group coordination, once it has.

    aiokafka runs the group protocol (join, sync, heartbeat) in one task. An error it does
    not expect ends that task for good: the worker then never joins, consumes or commits
    again, yet its process, web server and broker connection look healthy. The embedded
    broker (Tansu 0.6) triggers it: a member that joins while a killed member's session
    has not expired yet can be handed a zero-length assignment, which aiokafka fails to
    decode (ValueError). None while coordination runs or after it ended normally (close).
    """
    thread = getattr(consumer, "_thread", None)  # faust's aiokafka consumer thread
    client = getattr(thread, "_consumer", None)  # aiokafka.AIOKafkaConsumer
    coordinator = getattr(client, "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    error: BaseException | None = task.exception()
    return error


@dataclass
class StalledCommit:
    """An input partition whose committed offset has not moved for `seconds` although
    the agent has applied events past it (its frontier is `position`)."""

    tp: Any
    committed: int | None
    position: int
    seconds: float


class CommitWatch:
    """Finds input partitions whose offsets stopped being committed.

    The commit barrier commits every input partition up to its frontier (the events the
    agent has applied without a gap). A committed offset that stays behind the frontier
    for long means commits keep failing or being refused for it: a restart would replay
    everything since (the duplicates are ignored, but the replay grows) and the group's
    lag on that partition only rises."""

    def __init__(self, after_seconds: float = 30.0) -> None:
        self._after = after_seconds
        #: partition -> (committed offset, when it was first seen behind the frontier)
        self._since: dict[Any, tuple[int | None, float]] = {}

    def check(
        self, positions: Mapping[Any, int], committed: Mapping[Any, int | None], now: float
    ) -> list[StalledCommit]:
        stalled = []
        behind = {}
        for tp, position in positions.items():
            current = committed.get(tp)
            if current is None or position > current:
                behind[tp] = (current, position)
        for tp in list(self._since):
            if tp not in behind:
                del self._since[tp]  # committed up to the frontier, or revoked
        for tp, (current, position) in behind.items():
            seen = self._since.get(tp)
            if seen is None or seen[0] != current:
                self._since[tp] = (current, now)
            elif now - seen[1] >= self._after:
                stalled.append(StalledCommit(tp, current, position, now - seen[1]))
        return stalled
