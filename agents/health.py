"""What /healthz reports: is this worker consuming, and if not, why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
    """An input partition whose committed offset has not moved for `seconds` while
    processed offsets wait to be committed: Faust's commit bookkeeping as it stands."""

    tp: Any
    committed: int | None
    first_acked: int
    last_acked: int
    acked: int
    seconds: float
    read_offset: int | None
    gaps: str


class CommitWatch:
    """Finds partitions whose offsets stopped being committed.

    Faust commits a partition only up to the first offset missing from its list of
    processed (acknowledged) offsets, and not at all while the lowest acknowledged offset
    is more than one past the committed one. If an offset is never acknowledged, that
    partition is never committed again: a restart then replays everything since (the
    duplicates are ignored, but the replay grows without end) and the group's lag on it
    only rises. Nothing in Faust reports it."""

    def __init__(self, after_seconds: float = 30.0) -> None:
        self._after = after_seconds
        #: partition -> (committed offset, when it was first seen at that value with acks)
        self._since: dict[Any, tuple[int | None, float]] = {}

    def check(self, consumer: Any, now: float) -> list[StalledCommit]:
        acked_by_tp = getattr(consumer, "_acked", {})
        committed_by_tp = getattr(consumer, "_committed_offset", {})
        stalled = []
        for tp in list(self._since):
            if not acked_by_tp.get(tp):
                del self._since[tp]  # nothing waiting: committed, or revoked
        for tp, acked in list(acked_by_tp.items()):
            if not acked:
                continue
            committed = committed_by_tp.get(tp)
            seen = self._since.get(tp)
            if seen is None or seen[0] != committed:
                self._since[tp] = (committed, now)
                continue
            if now - seen[1] < self._after:
                continue
            gaps = getattr(consumer, "_gap", {}).get(tp)
            stalled.append(
                StalledCommit(
                    tp=tp,
                    committed=committed,
                    first_acked=min(acked),
                    last_acked=max(acked),
                    acked=len(acked),
                    seconds=now - seen[1],
                    read_offset=getattr(consumer, "_read_offset", {}).get(tp),
                    gaps=str(sorted(gaps)[:5]) if gaps else "none",
                )
            )
        return stalled


class DeliveryWatch:
    """Notices input offsets that never reach the agent.

    Faust hands a partition's messages to the agent in offset order. A message it drops on
    the way (its stream skips a message fetched while flow control is suspended or from
    an older consumer generation, and the fetcher drops re-fetched offsets it believes it
    read) is neither applied nor acknowledged; depending on where it falls, Faust then
    commits past it (the event is lost) or never commits that partition again."""

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        #: input partition -> the highest offset delivered since it was assigned
        self._delivered: dict[Any, int] = {}

    def note(self, message: Any, consumer: Any) -> None:
        tp = message.tp
        before = self._delivered.get(tp)
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        if before is None and committed is not None:
            before = committed - 1
        if before is not None and message.offset > before + 1:
            self._counter.inc()
            log.warning(
                "input %s[%d]: offsets %d..%d were never delivered to the agent "
                "(committed %s, read offset %s)",
                message.topic,
                message.partition,
                before + 1,
                message.offset - 1,
                committed,
                getattr(consumer, "_read_offset", {}).get(tp),
                extra={"event": "input_gap"},
            )
        if before is None or message.offset > before:
            self._delivered[tp] = message.offset

    def clear(self) -> None:
        self._delivered.clear()
