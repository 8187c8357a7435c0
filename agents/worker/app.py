"""The worker's Faust app, wired: topics, the state table, the agent, tasks, web views.

Thin on purpose: the logic is the engine's (agents/engine/), the Kafka clients are
vipstream's own (agents/kafka/), and whatever reaches into Faust beyond its public API
is in agents/faust_port/. Building the app has no side effects beyond creating objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agents.engine.barrier import CommitBarrier, TransactionalBarrier
from agents.engine.events import EventPath, InputMessage
from agents.engine.frontier import InputFrontier
from agents.engine.intake import Intake
from agents.engine.outputs import Outputs
from agents.engine.store import CustomerStore, Snapshot, highest_offsets
from agents.engine.value import ValueEngine
from agents.faust_port.app import TableManager, VipApp, count_recovery, faust_options
from agents.faust_port.consumer import FaustPositions, committed_offsets, input_lag
from agents.faust_port.restore import bulk_read_seconds, install_bulk_restore
from agents.faust_port.stores import local_store_of
from agents.kafka.bulk_read import read_spans
from agents.kafka.producing import BatchProducer, ChangelogWriter, OutputQueue
from agents.kafka.refetch import PartitionReader
from agents.kafka.security import client_options
from agents.kafka.summaries import follow_summaries
from agents.kafka.transactions import PartitionTransactions
from agents.metrics import Metrics
from agents.settings import Settings
from agents.topics import (
    INPUT_EVENT_TYPES,
    OUTPUT_TOPICS,
    STATE_TABLE,
    changelog_configs,
    changelog_topic,
    erasures_topic,
    summaries_topic,
)
from agents.worker.health import Health
from agents.worker.loop_watch import watch_event_loop
from agents.worker.web import register_views, routing_client

log = logging.getLogger(__name__)


__all__ = ["STATE_TABLE", "VipApp", "create_app", "faust_options"]


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
        canonical_url=f"{settings.web.scheme}://{settings.advertised_host}:{settings.web.port}",
        web_ssl_context=settings.web.server_ssl_context(),
        HttpClient=routing_client(settings.web),
        TableManager=TableManager,
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
        extra_topic_configs=changelog_configs(settings),  # as the worker creates it
        help="Per-customer state (streams.customer.CustomerState, encoded by streams.codec).",
    )
    store = CustomerStore(lambda: local_store_of(table), capacity=settings.state_cache_customers)
    # outputs and state snapshots: record batches on producers of their own
    # (agents/kafka/producing.py); Faust's producer carries the partitions' value summaries.
    # Two, not one: a producer has one request in flight per broker, and a commit's state
    # snapshot (megabytes after a close) would hold every output queued behind it
    client = client_options(settings)
    producer, state_producer = (
        BatchProducer(
            client,
            max_message_bytes=kafka.max_message_bytes,
            delivery_timeout_seconds=kafka.delivery_timeout_seconds,
        )
        for _ in range(2)
    )
    changelog = ChangelogWriter(state_producer, changelog_topic(settings))
    exactly_once = settings.processing_guarantee == "exactly_once"
    queue = OutputQueue(
        producer,
        linger_seconds=kafka.producer_linger_seconds,
        exact_log_end=kafka.exact_log_end,
        transactional=exactly_once,
    )
    transactions = (
        PartitionTransactions(
            client,
            app_id=settings.app_id,
            group_id=settings.app_id,  # Faust's consumer group is the app id
            max_message_bytes=kafka.max_message_bytes,
            delivery_timeout_seconds=kafka.delivery_timeout_seconds,
            metrics=metrics,
        )
        if exactly_once
        else None
    )
    count_recovery(table, metrics)
    if kafka.bulk_restore:
        app.before_recovery = functools.partial(
            install_bulk_restore,
            changelog_topic=changelog_topic(settings),
            local=lambda: local_store_of(table),
            read=functools.partial(
                read_spans,
                client,
                max_message_bytes=kafka.max_message_bytes,
                read_committed=settings.processing_guarantee == "exactly_once",
                seconds=bulk_read_seconds(kafka.request_timeout_seconds),
                request_timeout_seconds=kafka.request_timeout_seconds,
            ),
            counted=metrics.count_restored_in_bulk,
        )
    output_names = {key: settings.topics.name(key) for key in OUTPUT_TOPICS}

    def send(topic_key: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        queue.queue(output_names[topic_key], partition, key, value)

    outputs = Outputs(settings, metrics, send)
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
        if not queue.flushing:
            return  # not sending at all (an app that was never started)

        async def observe(sends: list[Any]) -> None:
            with contextlib.suppress(Exception):  # a failed send fails the next commit
                await asyncio.gather(*sends)
                metrics.day_outputs.observe(max(0.0, time.time() - closable_since))

        task = asyncio.ensure_future(observe(queue.take()))
        delivering.add(task)
        task.add_done_callback(delivering.discard)

    summaries_name = summaries_topic(settings)

    def publish_summary(key: bytes, value: bytes) -> None:
        """A partition's value summary (the key is the partition). Exactly once: in that
        partition's transaction, so a deposed owner's late summaries never reach the
        other workers (they read read_committed); else through Faust's producer."""
        if exactly_once:
            queue.queue(summaries_name, 0, key, value, owner=int(key))
        elif not app.should_stop:
            # while the worker stops, Faust's producer may already be gone: the send
            # would crash the shutdown (exit 1). The partitions' next owner publishes
            # their summaries again from the committed state.
            summaries.send_soon(key=key, value=value)

    engine = ValueEngine(
        settings,
        store,
        metrics,
        outputs=outputs,
        publish=publish_summary,
        positions=lambda: FaustPositions(app.consumer),
        assignment=owned_partitions,
        day_done=day_done,
    )
    # a commit while stopping or rebalancing checkpoints every ledger with changes, so
    # the next owner of a partition reads as little as possible (agents/engine/checkpoint.py)
    engine.book.urgent = lambda: app.should_stop or app.rebalancing
    # a ledger checkpoint is copied at a commit and encoded here, off the event loop (at
    # 100k customers ~0.1 s a partition): it goes out with a later commit
    checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="ledger-checkpoint")
    engine.book.offload = checkpoint_thread.submit
    if settings.gc_freeze:
        # a ledger built from every state decodes them all: long-lived objects by the
        # million, which the first full collection would scan for seconds
        engine.book.ledger_built = gc.freeze
    events = EventPath(settings, store, metrics, outputs, book=engine)
    # the engine notes the offset of every message it applies (for its caught-up test)
    metrics.consumer_lag.watch(lambda: input_lag(app.consumer, input_names, engine.processed_next))
    frontier = InputFrontier(input_names)
    if transactions is None:
        app.barrier = CommitBarrier(
            take_outputs=queue.take,
            snapshot_state=store.cut,
            encode_state=store.encode,
            write_state=_counting_writes(changelog, metrics),
            confirm_state=lambda snapshot, acks: store.confirm(snapshot, highest_offsets(acks)),
            observe_seconds=metrics.commit_flush.observe,
            frontier=frontier,
        )
    else:

        def confirm_committed(snapshot: Snapshot, acks: list[Any]) -> None:
            metrics.state_writes.inc(len(snapshot))
            store.confirm(snapshot, highest_offsets(acks))

        app.barrier = TransactionalBarrier(
            take_records=queue.take_records,
            snapshot_state=store.cut,
            encode_state=store.encode,
            changelog_topic=changelog.topic,
            transactions=transactions,
            confirm_state=confirm_committed,
            observe_seconds=metrics.commit_flush.observe,
            frontier=frontier,
        )
    health = Health(app, client)
    inputs = app.topic(
        *[settings.topics.name(key) for key in INPUT_EVENT_TYPES],
        erasures_topic(settings),  # `vipstream erase`: applied in order with the events
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=kafka.partitions,
    )
    reader = PartitionReader(
        client,
        group_id=settings.app_id,
        max_message_bytes=kafka.max_message_bytes,
        request_timeout_seconds=kafka.request_timeout_seconds,
    )
    intake = Intake(frontier, events, reader, metrics)

    @app.agent(inputs, name="apply_customer_events")
    async def apply_customer_events(stream: Any) -> None:
        """Apply each input event, in offset order and without gaps (agents/engine/intake.py)."""
        async for event in stream.events():
            m = event.message
            await intake.receive(
                m.tp,
                InputMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp),
                committed_offsets(app.consumer).get(m.tp),
            )

    @app.on_partitions_revoked.connect
    def forget_moved_customers(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust has committed: what is still queued (exactly once) came from a close or
        # tiering that ran on meanwhile, whose state changes forget_cache drops; the
        # outputs go with them, or they would be committed again when redone
        revoked = args[0] if args else kwargs.get("revoked", set())
        dropped = queue.drop({tp.partition for tp in revoked})
        if dropped:
            log.info(
                "%d outputs of work not committed before the rebalance dropped (redone by "
                "the partitions' owners)",
                dropped,
                extra={"event": "uncommitted_outputs_dropped", "outputs": dropped},
            )
        store.forget_cache()
        engine.forget()
        frontier.clear()

    @app.task  # type: ignore[untyped-decorator]
    async def send_outputs() -> None:
        await queue.flush_forever()

    @app.on_before_shutdown.connect
    async def stop_producer(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await producer.stop()  # after Faust's last commit, which stopping the consumer made
        await state_producer.stop()
        # (the checkpoint thread stays: a commit may still come, and waits for it; idle,
        # it ends with the process)
        if transactions is not None:
            await transactions.stop()
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
            committed = committed_offsets(consumer)
            for tp in assignment:
                if tp.topic not in input_names or tp in asked:
                    continue
                if frontier.position(tp) is not None or committed.get(tp):
                    continue
                asked.add(tp)
                offset = await reader.committed(tp.topic, tp.partition)
                if offset and frontier.generation == generation:
                    log.info(
                        "input %s[%d]: no committed offset known; the broker's is %d",
                        tp.topic,
                        tp.partition,
                        offset,
                        extra={"event": "input_committed_unknown"},
                    )
                    frontier.skip_to(tp, offset)
                    if engine.processed_next.get((tp.topic, tp.partition)) is None:
                        engine.note_offset(tp.topic, tp.partition, offset - 1)

    @app.task  # type: ignore[untyped-decorator]
    async def read_value_summaries() -> None:
        """Every partition's published summary, into the engine's bus."""
        await follow_summaries(settings, engine.bus)

    @app.task  # type: ignore[untyped-decorator]
    async def close_value_days() -> None:
        """Close days, publish and merge population summaries, re-tier."""
        await engine.run_forever()

    @app.task  # type: ignore[untyped-decorator]
    async def watch_stalls() -> None:
        """The event loop's stalls, as a histogram (agents/worker/loop_watch.py)."""
        await watch_event_loop(
            metrics, logged=settings.stall_log_seconds, gc_freeze=settings.gc_freeze
        )

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
        events=events,
        store=store,
        metrics=metrics,
        health=health,
        engine=engine,
        outputs=queue,
        input_topics=input_names,
        frontier=frontier,
        transactions=transactions,
    )
    return app


@dataclass(frozen=True, kw_only=True)
class _Handles:
    """What the Faust port, tests and the CLI reach through `app.vip`."""

    settings: Settings
    events: EventPath
    store: CustomerStore
    metrics: Metrics
    health: Health
    engine: ValueEngine
    outputs: OutputQueue
    input_topics: set[str]
    frontier: InputFrontier
    #: exactly once: the input partitions' transactional producers (else None)
    transactions: PartitionTransactions | None


def _counting_writes(changelog: ChangelogWriter, metrics: Metrics) -> Any:
    async def write(snapshot: Snapshot) -> list[Any]:
        metrics.state_writes.inc(len(snapshot))
        return await changelog.write(snapshot)

    return write
