"""The Faust application: topics, the customer-state table, the agent, web views, timers.

Thin on purpose: look up state, call streams/ (through agents.engine.events), queue outputs,
count. Building the app has no side effects beyond creating Python objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
import mode

from agents.engine.barrier import CommitBarrier
from agents.engine.events import InputMessage, Runtime
from agents.engine.frontier import REPLAYED, Hole, InputFrontier
from agents.engine.store import CustomerStore, Snapshot, highest_offsets
from agents.engine.value import ValueEngine
from agents.kafka.highwater import exact_highwaters
from agents.kafka.producing import BatchProducer, ChangelogWriter, OutputQueue
from agents.kafka.refetch import PartitionReader
from agents.metrics import Metrics, input_lag
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES, OUTPUT_TOPICS, summaries_topic
from agents.worker.health import CommitWatch, Health, group_coordination_error
from agents.worker.web import register_views

log = logging.getLogger(__name__)

STATE_TABLE = "customer_state"


class VipApp(faust.App):
    """A Faust app whose offset commits are preceded by the durability barrier."""

    barrier: CommitBarrier
    bootstrap_servers: list[str]
    vip: _Handles
    _committed_labels: set[tuple[str, str]] = set()  # noqa: RUF012 (replaced, not mutated)

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        consumer.force_commit = self.barrier.wrap(consumer)
        # table recovery reads changelogs up to these offsets (see agents/kafka/highwater.py);
        # Faust stops waiting for them after broker_request_timeout, so give up sooner
        consumer.highwaters = exact_highwaters(
            consumer.highwaters,
            self.bootstrap_servers,
            wait_seconds=self.vip.settings.kafka.request_timeout_seconds / 2,
        )
        _set_fetch_max_wait(consumer, self.vip.settings.kafka.fetch_max_wait_seconds)
        return consumer

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
                self.consumer._committed_offset,  # type: ignore[attr-defined]
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
        committed = self.consumer._committed_offset  # type: ignore[attr-defined]
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


def _set_fetch_max_wait(consumer: Any, wait_seconds: float) -> None:
    """Faust creates its aiokafka consumer with fetch_max_wait_ms=1500, fixed
    (transport/drivers/aiokafka.py). The embedded broker holds a caught-up fetch for most
    of that even when records arrive, so each event waited up to 1.5 s. Set on the
    aiokafka consumer when it is created (before it starts its fetcher)."""
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_with_wait(*args: Any, **kwargs: Any) -> Any:
        created = create(*args, **kwargs)
        created._fetch_max_wait_ms = int(wait_seconds * 1000)
        return created

    thread._create_worker_consumer = create_with_wait


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
        "broker_request_timeout": kafka.request_timeout_seconds,
        "producer_max_request_size": kafka.max_message_bytes,
        "producer_linger": kafka.producer_linger_seconds,
        "producer_request_timeout": kafka.delivery_timeout_seconds,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "stream_wait_empty": True,
    }


def create_app(settings: Settings) -> VipApp:  # noqa: PLR0915 - the wiring, in one place
    """Build the worker's Faust app from validated settings."""
    kafka = settings.kafka
    app = VipApp(
        settings.app_id,
        store=settings.store,
        datadir=str(settings.datadir),
        web_enabled=True,
        web_bind=settings.web.host,
        web_port=settings.web.port,
        canonical_url=f"http://{settings.advertised_host}:{settings.web.port}",
        **faust_options(settings),
    )
    app.bootstrap_servers = settings.bootstrap_servers
    metrics = Metrics()
    table = app.Table(
        STATE_TABLE,
        default=None,
        key_type=bytes,  # bytes types mean the raw serializer: keys are the
        value_type=bytes,  # customer id bytes, exactly as on the input topics
        partitions=kafka.partitions,
        options=settings.rocksdb.table_options() if settings.store == "rocksdb://" else None,
        # a customer's state is one message: let the topic take the largest the producer may
        extra_topic_configs={"max.message.bytes": str(kafka.max_message_bytes)},
        help="Per-customer state (streams.customer.CustomerState, encoded by streams.codec).",
    )
    store = CustomerStore(table, capacity=settings.state_cache_customers)
    # outputs and state snapshots: record batches on a producer of their own
    # (agents/kafka/producing.py); Faust's producer carries the partitions' value summaries
    producer = BatchProducer(
        settings.bootstrap_servers,
        max_message_bytes=kafka.max_message_bytes,
        delivery_timeout_seconds=kafka.delivery_timeout_seconds,
    )
    changelog = ChangelogWriter(producer, table.changelog_topic.get_topic_name())
    outputs = OutputQueue(
        producer, linger_seconds=kafka.producer_linger_seconds, exact_log_end=kafka.exact_log_end
    )
    _count_recovery(table, metrics)
    output_names = {key: settings.topics.name(key) for key in OUTPUT_TOPICS}

    def send(topic_key: str, partition: int, key: bytes | None, value: bytes) -> None:
        outputs.queue(output_names[topic_key], partition, key, value)

    runtime = Runtime(settings, store, metrics, send)
    summaries = app.topic(
        summaries_topic(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
    )
    input_names = {settings.topics.name(key) for key in INPUT_EVENT_TYPES}

    def owned_partitions() -> set[int] | None:
        if app.rebalancing or not app.tables.actives_ready:
            return None
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in input_names}

    delivering: set[asyncio.Task[None]] = set()

    def day_done(closable_since: float) -> None:
        """A day is tiered and its outputs queued: time them until the broker has them."""
        if not outputs.flushing:
            return  # not sending at all (an app that was never started)

        async def observe(sends: list[Any]) -> None:
            with contextlib.suppress(Exception):  # a failed send fails the next commit
                await asyncio.gather(*sends)
                metrics.day_outputs.observe(max(0.0, time.time() - closable_since))

        task = asyncio.ensure_future(observe(outputs.take()))
        delivering.add(task)
        task.add_done_callback(delivering.discard)

    engine = ValueEngine(
        settings,
        store,
        metrics,
        emit=runtime.emit,
        publish=lambda key, value: summaries.send_soon(key=key, value=value),
        consumer=lambda: app.consumer,
        assignment=owned_partitions,
        day_done=day_done,
    )
    runtime.value = engine
    # the engine notes the offset of every message it applies (for its caught-up test)
    metrics.consumer_lag.watch(lambda: input_lag(app.consumer, input_names, engine.processed_next))
    frontier = InputFrontier(input_names)
    app.barrier = CommitBarrier(
        producer=_LazyProducer(app),
        take_outputs=outputs.take,
        snapshot_state=store.snapshot,
        write_state=_counting_writes(changelog, metrics),
        confirm_state=lambda snapshot, acks: store.confirm(snapshot, highest_offsets(acks)),
        observe_seconds=metrics.commit_flush.observe,
        frontier=frontier,
    )
    health = Health(app, settings.bootstrap_servers)
    inputs = app.topic(
        *[settings.topics.name(key) for key in INPUT_EVENT_TYPES],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=kafka.partitions,
    )

    reader = PartitionReader(
        settings.bootstrap_servers,
        group_id=settings.app_id,
        max_message_bytes=kafka.max_message_bytes,
        request_timeout_seconds=kafka.request_timeout_seconds,
    )

    async def fill_hole(tp: Any, hole: Hole) -> bool:
        """Apply the records of a hole in the input, read from the broker; False if the
        partition was revoked meanwhile (its new owner starts from the committed offset,
        which is never past the hole)."""
        if hole.start is None:
            # Faust knew of no committed offset, yet its first message is not the
            # partition's first: ask the broker before reading the partition from its start
            committed = await reader.committed(tp.topic, tp.partition)
            log.info(
                "input %s[%d]: first message at offset %d, no committed offset known; the "
                "broker's is %s",
                tp.topic,
                tp.partition,
                hole.end,
                committed,
                extra={"event": "input_committed_unknown"},
            )
            if committed is not None:
                hole = Hole(min(committed, hole.end), hole.end)
        if hole.start == hole.end:
            frontier.skip_to(tp, hole.end)
            return True
        if reader.span.absent(tp, hole):  # a read for an earlier hole showed these empty
            frontier.skip_to(tp, hole.end)
            metrics.input_gaps.labels("absent").inc()
            return True
        generation = frontier.generation
        found = 0
        async for batch in reader.read(tp.topic, tp.partition, hole.start, hole.end):
            if frontier.generation != generation:
                return False
            for r in batch:
                seconds = r.timestamp / 1000.0  # as Faust converts it
                runtime.handle(
                    InputMessage(r.topic, r.partition, r.offset, r.key, r.value, seconds)
                )
                frontier.advance(tp, r.offset)
            found += len(batch)
        if frontier.generation != generation:
            return False
        frontier.skip_to(tp, hole.end)
        kind = "dropped" if found else "absent"
        metrics.input_gaps.labels(kind).inc()
        metrics.input_refetched.inc(found)
        log.log(
            logging.WARNING if found else logging.INFO,
            "input %s[%d]: offsets %s..%d had not reached the agent; read them from the "
            "broker: %d record(s) applied before offset %d",
            tp.topic,
            tp.partition,
            "start" if hole.start is None else hole.start,
            hole.end - 1,
            found,
            hole.end,
            extra={"event": "input_gap", "kind": kind, "records": found},
        )
        return True

    @app.agent(inputs, name="apply_customer_events")
    async def apply_customer_events(stream: Any) -> None:
        """Apply each input event, in offset order and without gaps (agents/engine/frontier.py)."""
        async for event in stream.events():
            m = event.message
            tp = m.tp
            committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
            verdict = frontier.check(tp, m.offset, committed)
            if verdict is REPLAYED:
                continue  # already applied: the frontier is past it
            if isinstance(verdict, Hole) and not await fill_hole(tp, verdict):
                continue
            runtime.handle(
                InputMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            )
            frontier.advance(tp, m.offset)

    @app.on_partitions_revoked.connect
    def forget_moved_customers(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        store.forget_cache()
        engine.forget()
        frontier.clear()

    @app.task  # type: ignore[untyped-decorator]
    async def send_outputs() -> None:
        await outputs.flush_forever()

    @app.on_before_shutdown.connect
    async def stop_producer(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await producer.stop()  # after Faust's last commit, which stopping the consumer made
        await reader.close()

    @app.on_partitions_assigned.connect
    def log_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = kwargs.get("assigned", args[0] if args else set())
        owned = sorted({tp.partition for tp in assigned if tp.topic in input_names})
        log.info(
            "partitions assigned: %s",
            ", ".join(map(str, owned)) or "none",
            extra={"event": "partitions_assigned", "partitions": owned},
        )

    @app.task  # type: ignore[untyped-decorator]
    async def watch_broker() -> None:
        health.started = True
        await health.probe_broker_forever()

    @app.task  # type: ignore[untyped-decorator]
    async def learn_unknown_committed_offsets() -> None:
        """An input partition whose committed offset Faust did not record and which gets
        no new message would look unread forever (the day closes wait for it): ask the
        broker, once per assignment, and note the offset as applied up to there."""
        asked: set[Any] = set()
        generation = frontier.generation
        while not app.should_stop:
            await app.sleep(1.0)
            if frontier.generation != generation:
                asked.clear()
                generation = frontier.generation
            if app.rebalancing or not app.tables.actives_ready:
                continue
            consumer: Any = app.consumer
            try:
                assignment = consumer.assignment()
            except Exception:  # the consumer is not started yet
                continue
            for tp in assignment:
                if tp.topic not in input_names or tp in asked:
                    continue
                if frontier.position(tp) is not None or consumer._committed_offset.get(tp):
                    continue
                asked.add(tp)
                committed = await reader.committed(tp.topic, tp.partition)
                if committed and frontier.generation == generation:
                    log.info(
                        "input %s[%d]: no committed offset known; the broker's is %d",
                        tp.topic,
                        tp.partition,
                        committed,
                        extra={"event": "input_committed_unknown"},
                    )
                    frontier.skip_to(tp, committed)
                    if engine.processed_next.get((tp.topic, tp.partition)) is None:
                        engine.note_offset(tp.topic, tp.partition, committed - 1)

    @app.task  # type: ignore[untyped-decorator]
    async def close_value_days() -> None:
        """Close days, publish and merge population summaries, re-tier."""
        await engine.run_forever()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def count_customers() -> None:
        metrics.state_customers.set(sum(ledger.customers for ledger in engine.ledgers.values()))

    register_views(
        app,
        table=table,
        store=store,
        metrics=metrics,
        health=health,
        settings=settings,
        engine=engine,
    )
    app.vip = _Handles(
        settings=settings,
        runtime=runtime,
        store=store,
        metrics=metrics,
        health=health,
        engine=engine,
        outputs=outputs,
        input_topics=input_names,
        frontier=frontier,
    )
    return app


@dataclass(frozen=True, kw_only=True)
class _Handles:
    """What tests and the CLI reach through `app.vip`."""

    settings: Settings
    runtime: Runtime
    store: CustomerStore
    metrics: Metrics
    health: Health
    engine: ValueEngine
    outputs: OutputQueue
    input_topics: set[str]
    frontier: InputFrontier


class _LazyProducer:
    """app.producer is created on first use; resolve it when the barrier needs it."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    @property
    def buffer(self) -> Any:
        return self._app.producer.buffer

    async def flush(self) -> None:
        await self._app.producer.flush()


def _count_recovery(table: Any, metrics: Metrics) -> None:
    """Count the changelog records Faust's recovery applies to the table's local store."""
    apply_batch = table.apply_changelog_batch

    def counted(batch: Any) -> None:
        metrics.state_recovered.inc(len(batch))
        apply_batch(batch)

    table.apply_changelog_batch = counted


def _counting_writes(changelog: ChangelogWriter, metrics: Metrics) -> Any:
    async def write(snapshot: Snapshot) -> list[Any]:
        metrics.state_writes.inc(len(snapshot))
        return await changelog.write(snapshot)

    return write
