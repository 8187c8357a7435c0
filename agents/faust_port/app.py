"""The Faust app class vipstream runs, and what it changes in Faust at run time.

- `VipApp._new_consumer` (a private factory of faust.App, overridden): every consumer
  Faust creates commits through vipstream's commit barrier (its `force_commit` replaced:
  agents/engine/barrier.py), learns log ends that are right on every broker
  (agents/kafka/highwater.py: the embedded broker's ListOffsets answer falls short), and
  fetches with vipstream's `fetch_max_wait` (agents/faust_port/consumer.py), and hands
  messages over without a race of four futures each (agents/faust_port/drain.py).
- `VipApp._on_partitions_assigned` (private, overridden): with exactly-once, the
  previous owners of the assigned partitions are fenced before Faust recovers them; and
  the bulk changelog restore is installed, once, on Faust's recovery (`before_recovery`,
  set by agents/worker/app.py: see agents/faust_port/restore.py).
- `VipApp._on_agent_error` (private, overridden): Faust restarts a crashed agent and only
  logs it; vipstream counts it for an alert.
- `count_recovery` wraps the table's `apply_changelog_batch` on the instance, to count
  the changelog records recovery applies (Faust has no hook for it).
- A service task watches the consumer's group coordination and the committed offsets.
- `TableManager.on_start` (a Service hook, overridden with a copy of Faust's body less
  its first line): Faust sleeps a second first, for tables declared after the app
  starts; vipstream declares its table before, so every start waited that second.

tests/agents/test_faust_port.py fails when one of these moves upstream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust
import faust.tables
import mode

from agents.engine.barrier import CommitBarrier
from agents.engine.commit_watch import CommitWatch
from agents.faust_port.consumer import (
    FaustCommitter,
    committed_offsets,
    configure_fetching,
    group_coordination_error,
)
from agents.faust_port.drain import install_lean_drain
from agents.kafka.highwater import committed_highwaters, exact_highwaters
from agents.kafka.security import client_options, ssl_context
from agents.metrics import Metrics
from agents.settings import Settings

log = logging.getLogger(__name__)


class TableManager(faust.tables.TableManager):
    """Faust's table manager without the second it waits at start (see the module's
    docstring). The worker's table is declared, and its changelog topic created
    (agents/topics.py), before the worker starts."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class LeanDrainApp(faust.App):
    """A Faust app whose consumer hands messages over without Faust's per-message race
    (agents/faust_port/drain.py); the benchmark's aggregation-only app runs it too."""

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        install_lean_drain(consumer)
        return consumer


class VipApp(LeanDrainApp):
    """A Faust app whose offset commits are preceded by the durability barrier."""

    barrier: CommitBarrier
    bootstrap_servers: list[str]
    vip: Any  # the worker's handles (agents/worker/app.py)
    #: called with Faust's table recovery before each assignment is recovered
    before_recovery: Callable[[Any], None] | None = None
    _committed_labels: set[tuple[str, str]] = set()  # noqa: RUF012 (replaced, not mutated)

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        install_barrier(consumer, self.barrier, lambda: self.producer)
        # table recovery reads changelogs up to these offsets (see agents/kafka/highwater.py);
        # Faust stops waiting for them after broker_request_timeout, so give up sooner
        exactly_once = self.vip.settings.processing_guarantee == "exactly_once"
        consumer.highwaters = (committed_highwaters if exactly_once else exact_highwaters)(
            consumer.highwaters,
            client_options(self.vip.settings),
            wait_seconds=self.vip.settings.kafka.request_timeout_seconds / 2,
        )
        settings = self.vip.settings
        configure_fetching(
            consumer,
            settings.kafka.fetch_max_wait_seconds,
            read_committed=settings.processing_guarantee == "exactly_once",
        )
        return consumer

    async def _on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        """Exactly once: fence the previous owners of the assigned input partitions before
        Faust reads their changelogs or seeks to their committed offsets (both happen in
        the assignment Faust runs next; agents/kafka/transactions.py says why first)."""
        transactions = self.vip.transactions
        if transactions is not None and not self.should_stop:
            inputs = self.vip.input_topics
            try:
                await transactions.assign({tp.partition for tp in assigned if tp.topic in inputs})
            except Exception as exc:
                log.critical(
                    "cannot take over the assigned partitions' transactions: %r",
                    exc,
                    extra={"event": "transactions_assign_failed"},
                )
                await self.crash(exc)
                return
        if self.before_recovery is not None:
            tables: Any = self.tables
            self.before_recovery(tables.recovery)
        await super()._on_partitions_assigned(assigned, generation_id)

    @mode.Service.task
    async def _watch_group_coordination(self) -> None:
        """A worker whose group coordination died would never consume again while looking
        alive: stop it (exit status 1) so that its supervisor starts a fresh one. A task of
        the app service itself: Faust starts app tasks and timers only once table
        recovery has completed, which needs the group this watches."""
        commits = CommitWatch()
        warned: dict[Any, float] = {}
        while not self.should_stop:
            await self.sleep(2.0)
            now = time.monotonic()
            stalled = commits.check(
                self.vip.frontier.positions(),
                committed_offsets(self.consumer),
                now,
            )
            self.vip.metrics.commit_stalled_partitions.set(len(stalled))
            self._note_committed_offsets()
            for stall in stalled:
                if now - warned.get(stall.tp, -1e9) >= 60:
                    warned[stall.tp] = now
                    log.warning(
                        "offsets of %s[%d] not committed for %.0fs: committed %s, events "
                        "applied up to offset %d",
                        stall.tp.topic,
                        stall.tp.partition,
                        stall.seconds,
                        stall.committed,
                        stall.position - 1,
                        extra={"event": "commit_stalled"},
                    )
            error = group_coordination_error(self.consumer)
            # stopping: the coordination may end with an error while leaving the group
            if error is not None and not self.should_stop:
                log.critical(
                    "the Kafka client's consumer-group coordination ended with %r: this "
                    "worker would never consume again; stopping so that it is restarted",
                    error,
                    extra={"event": "group_coordination_failed"},
                )
                await self.crash(error)
                return

    def _note_committed_offsets(self) -> None:
        gauge = self.vip.metrics.committed_offset
        inputs = self.vip.input_topics
        try:
            assignment = self.consumer.assignment()
        except Exception:  # not started yet
            return
        committed = committed_offsets(self.consumer)
        owned = {(tp.topic, str(tp.partition)) for tp in assignment if tp.topic in inputs}
        for labels in self._committed_labels - owned:
            gauge.remove(*labels)
        for tp in assignment:
            if tp.topic in inputs:
                offset = committed.get(tp)
                gauge.labels(tp.topic, str(tp.partition)).set(-1 if offset is None else offset)
        self._committed_labels = owned

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        """Faust restarts a crashed agent and only logs it: count it, so it can alert."""
        await super()._on_agent_error(agent, exc)
        self.vip.metrics.agent_crashes.inc()
        log.error(
            "agent %s crashed; Faust restarts it: %r",
            agent.name,
            exc,
            exc_info=exc,
            extra={"event": "agent_crashed"},
        )


def install_barrier(consumer: Any, barrier: CommitBarrier, producer: Callable[[], Any]) -> None:
    """Route every commit Faust makes (timer, rebalance, shutdown: all call
    `Consumer.force_commit`) through the barrier."""
    committer = FaustCommitter(consumer, producer)

    async def durable_force_commit(topics: Any = None, start_new_transaction: bool = True) -> bool:
        return await barrier.commit(committer, topics, start_new_transaction)

    consumer.force_commit = durable_force_commit


def count_recovery(table: Any, metrics: Metrics) -> None:
    """Count the changelog records Faust's recovery applies to the table's local store."""
    apply_batch = table.apply_changelog_batch

    def counted(batch: Any) -> None:
        metrics.state_recovered.inc(len(batch))
        apply_batch(batch)

    table.apply_changelog_batch = counted


def broker_credentials(settings: Settings) -> Any:
    """The `[kafka]` security settings as Faust's credentials (its consumer, producer and
    topic creation use them; vipstream's own clients use agents/kafka/security.py)."""
    kafka = settings.kafka
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.password(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


#: a message count no worker reaches between two interval commits
_NEVER = 2**62


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust settings derived from ours (also used by the benchmark's floor app, so the
    two consume with identical group, fetch and commit behaviour)."""
    kafka = settings.kafka
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "env": {},  # Faust's own environment variables must not override our settings
        "autodiscover": False,
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "table_standby_replicas": kafka.standby_replicas,
        "broker_session_timeout": kafka.session_timeout_seconds,
        "broker_heartbeat_interval": kafka.heartbeat_interval_seconds,
        "broker_rebalance_timeout": kafka.rebalance_timeout_seconds,
        "broker_commit_interval": kafka.commit_interval_seconds,
        # Faust also commits every `broker_commit_every` (10,000) messages, and does it
        # inline in the loop that hands messages to the agents: the agent gets nothing
        # until that commit (state snapshot, deliveries, offsets) is through, ~0.5 s of
        # latency for every message behind it. Commits run on the interval's timer only.
        "broker_commit_every": _NEVER,
        "broker_request_timeout": kafka.request_timeout_seconds,
        "producer_max_request_size": kafka.max_message_bytes,
        "producer_linger": kafka.producer_linger_seconds,
        "producer_request_timeout": kafka.delivery_timeout_seconds,
        "consumer_auto_offset_reset": "earliest",
        "broker_credentials": broker_credentials(settings),
        "producer_acks": -1,
        "stream_wait_empty": True,
    }
