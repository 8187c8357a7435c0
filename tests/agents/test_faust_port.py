"""agents/faust_port/: every reach into faust, mode or aiokafka beyond their public API
still finds what it expects (a canary per attribute: when an upgrade moves one, these
fail before a worker does), and the upstream defects the port works around are still
there (when one is fixed upstream, its test here fails and the workaround can go)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from agents.faust_port.consumer import drain
from agents.worker.app import VipApp

# -- a commit the broker refuses (faust-streaming #316) -----------------------------------
CALLS_0 = TP("calls", 0)


class RefusingBroker:
    """Stands in for aiokafka's commit: answers each commit with the next planned result
    (False is what Faust returns for CommitFailedError "already rebalanced")."""

    def __init__(self, consumer: Any, results: list[bool]) -> None:
        self.results = list(results)
        self.commits: list[dict[TP, int]] = []
        consumer._commit = self.commit
        consumer.assignment = lambda: {CALLS_0}

    async def commit(self, offsets: Any) -> bool:
        self.commits.append(dict(offsets))
        return self.results.pop(0)


def acknowledge(app: VipApp, first: int, end: int) -> None:
    """What the agent and Faust do when the agent has applied the events at these offsets:
    the agent moves its frontier, Faust acknowledges."""
    consumer = app.consumer
    for offset in range(first, end):
        app.vip.frontier.advance(CALLS_0, offset)
        consumer._acked[CALLS_0].append(offset)
        consumer._acked_index[CALLS_0].add(offset)


def committed(consumer: Any) -> int | None:
    value: int | None = consumer._committed_offset.get(CALLS_0)
    return value


async def test_faust_records_a_refused_commit_as_done(app: VipApp) -> None:
    """The upstream bug the barrier guards against, on Faust's own consumer code.

    When faust-streaming fixes #316 this test fails: the guard can then go.
    """
    consumer = app.consumer
    broker = RefusingBroker(consumer, [False])
    acknowledge(app, 0, 10)
    offsets = consumer._filter_committable_offsets([CALLS_0])
    assert await FaustConsumer._commit_offsets(consumer, offsets) is False
    assert broker.commits == [{CALLS_0: 10}]
    assert committed(consumer) == 10  # believed committed although the broker refused
    assert consumer._acked[CALLS_0] == []  # and no longer pending: never sent again


async def test_a_refused_commit_is_undone_and_sent_again(app: VipApp) -> None:
    consumer = app.consumer  # a real Faust consumer, with the barrier installed
    broker = RefusingBroker(consumer, [True, False, True])
    acknowledge(app, 0, 5)
    assert await consumer.force_commit() is True
    acknowledge(app, 5, 10)
    assert await consumer.force_commit() is False  # refused
    assert committed(consumer) == 5  # Faust's bookkeeping put back
    # no new events on the partition: the next commit still sends the refused offset
    assert await consumer.force_commit() is True
    assert broker.commits == [{CALLS_0: 5}, {CALLS_0: 10}, {CALLS_0: 10}]
    assert committed(consumer) == 10
    assert await consumer.force_commit() is False  # nothing left to commit
    assert len(broker.commits) == 3


async def test_commits_continue_after_a_refused_one(app: VipApp) -> None:
    """Putting the committed offset back is not enough with Faust's bookkeeping alone: it
    then sees a gap before the next acknowledged offset and stops committing the
    partition. Committing from the frontier, the next commit covers the refused offsets
    and everything applied since."""
    consumer = app.consumer
    broker = RefusingBroker(consumer, [True, False, True, True])
    acknowledge(app, 0, 5)
    await consumer.force_commit()
    acknowledge(app, 5, 10)
    await consumer.force_commit()  # refused
    acknowledge(app, 10, 15)
    assert await consumer.force_commit() is True
    assert broker.commits[-1] == {CALLS_0: 15}  # the refused offsets and what followed
    acknowledge(app, 15, 20)
    assert await consumer.force_commit() is True
    assert broker.commits[-1] == {CALLS_0: 20}
    assert committed(consumer) == 20
    assert consumer._acked[CALLS_0] == []  # Faust's acknowledgements do not pile up


async def test_a_refused_offset_is_not_retried_after_the_partition_moved(app: VipApp) -> None:
    consumer = app.consumer
    broker = RefusingBroker(consumer, [False])
    acknowledge(app, 0, 10)
    assert await consumer.force_commit() is False
    assert committed(consumer) is None  # never committed before: no entry, as before
    consumer.assignment = set  # revoked: the new owner resumes from the broker's offset
    assert await consumer.force_commit() is False
    assert broker.commits == [{CALLS_0: 10}]


# -- offsets Faust's stream dropped (agents/engine/frontier.py) -----------------------------------
def faust_ack(consumer: Any, offsets: range) -> None:
    """Faust's acknowledgements alone: the agent never applied anything else."""
    for offset in offsets:
        consumer._acked[CALLS_0].append(offset)
        consumer._acked_index[CALLS_0].add(offset)


@pytest.mark.parametrize(
    ("acked", "faust_commits"),
    [
        (range(11, 15), 15),  # offset 10 dropped: committed past it, the event is lost
        (range(12, 15), None),  # 10 and 11 dropped: never committed again, a stall
    ],
)
def test_faust_commits_past_one_dropped_offset_and_stalls_on_two(
    app: VipApp, acked: range, faust_commits: int | None
) -> None:
    """The upstream behaviour the frontier replaces, on Faust's own consumer code."""
    consumer = app.consumer
    consumer._committed_offset[CALLS_0] = 10
    faust_ack(consumer, acked)
    offsets = consumer._filter_committable_offsets([CALLS_0])
    assert offsets.get(CALLS_0) == faust_commits


async def test_the_barrier_commits_the_frontier_not_faust_acknowledgements(app: VipApp) -> None:
    consumer = app.consumer
    broker = RefusingBroker(consumer, [True, True])
    consumer._committed_offset[CALLS_0] = 10
    faust_ack(consumer, range(11, 15))  # offset 10 dropped: the agent applied nothing
    assert await consumer.force_commit() is False
    assert broker.commits == []  # nothing committed past the missing event
    assert consumer._acked[CALLS_0] == []  # and Faust's list does not pile up
    acknowledge(app, 10, 15)  # the agent read 10 back, then applied the rest
    assert await consumer.force_commit() is True
    assert broker.commits == [{CALLS_0: 15}]


# -- canaries: the private attributes the port names ----------------------------------------
class _Buffer:
    """Like Faust's ProducerBuffer: flush() may return with messages still queued."""

    def __init__(self, log: list[str]) -> None:
        self.size = 0
        self._log = log

    async def flush(self) -> None:
        if self.size:
            self.size -= 1  # gives up after one message, as Faust's does after 0.1 s
            self._log.append("buffer-flush")


class _Producer:
    def __init__(self, log: list[str]) -> None:
        self.buffer = _Buffer(log)
        self._log = log

    async def flush(self) -> None:
        assert self.buffer.size == 0, "client flushed before the buffer was drained"
        self._log.append("producer-flush")


async def test_drain_waits_until_the_buffer_is_empty() -> None:
    log: list[str] = []
    producer = _Producer(log)
    producer.buffer.size = 3
    await drain(producer)
    assert log == ["buffer-flush"] * 3 + ["producer-flush"]


def test_faust_producer_buffer_is_what_drain_expects(app: VipApp) -> None:
    buffer = app.producer.buffer
    assert isinstance(buffer.size, int)
    assert asyncio.iscoroutinefunction(buffer.flush)


@pytest.mark.parametrize(
    "name",
    [
        "_committed_offset",
        "_acked",
        "_acked_index",
        "_gap",
        "_filter_tps_with_pending_acks",
        "_filter_committable_offsets",
        "_commit_offsets",
        "_commit",
        "_thread",
    ],
)
def test_faust_consumer_still_has(app: VipApp, name: str) -> None:
    assert hasattr(app.consumer, name)


async def test_faust_consumer_thread_creates_an_aiokafka_consumer_with_a_fetch_wait(
    app: VipApp,
) -> None:
    from aiokafka import AIOKafkaConsumer

    thread = app.consumer._thread  # type: ignore[attr-defined]
    assert callable(thread._create_worker_consumer)
    assert hasattr(AIOKafkaConsumer(), "_fetch_max_wait_ms")


def test_aiokafka_group_coordination_runs_in_a_task_the_port_can_see() -> None:
    import inspect

    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert "_coordination_task" in inspect.getsource(GroupCoordinator.__init__)


def test_aiokafka_client_refreshes_metadata_on_demand() -> None:
    from aiokafka.client import AIOKafkaClient

    assert callable(AIOKafkaClient.force_metadata_update)  # returns an awaitable future


def test_faust_app_hooks_the_port_overrides_exist() -> None:
    import faust

    assert callable(faust.App._new_consumer)
    assert asyncio.iscoroutinefunction(faust.App._on_agent_error)


def test_faust_table_applies_changelog_batches(app: VipApp) -> None:
    from agents.worker.app import STATE_TABLE

    assert callable(app.tables[STATE_TABLE].apply_changelog_batch)


@pytest.mark.parametrize(
    ("store", "names"),
    [
        ("memory://", ["data", "_key_partition"]),
        (
            "rocksdb://",
            [
                "_db_for_partition",
                "_key_index",
                "_get_bucket_for_key",
                "_visible_keys",
                "_dbs",
                "offset_key",
                "use_rocksdict",
            ],
        ),
    ],
)
def test_faust_table_stores_still_have(
    settings: Any, tmp_path: Any, store: str, names: list[str]
) -> None:
    from agents.worker.app import STATE_TABLE, create_app

    app = create_app(settings.model_copy(update={"store": store, "datadir": tmp_path}))
    data = app.tables[STATE_TABLE].data
    for name in names:
        assert hasattr(data, name), name


def test_aiokafka_admin_sends_raw_requests_the_port_uses() -> None:
    """agents/faust_port/aiokafka_client.py sends CreateAcls and Heartbeat requests
    through the admin client's private senders (aiokafka has the requests, no calls)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest
    from aiokafka.protocol.group import HeartbeatRequest

    assert callable(AIOKafkaAdminClient._send_request)
    assert callable(AIOKafkaAdminClient._send_request_to_node)
    assert callable(AIOKafkaAdminClient.find_coordinator)
    CreateAclsRequest(2, "t", 3, "User:u", "*", 3, 3)
    HeartbeatRequest("group", -1, "member")


async def test_aiokafka_keeps_why_a_producers_transactions_failed_where_the_port_reads_it() -> None:
    """agents/faust_port/aiokafka_client.py transactions_failed_by: a fence seen by the
    sender task leaves the transaction manager fatal and the cause on that task."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import ProducerFenced

    from agents.faust_port.aiokafka_client import transactions_failed_by

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="canary")
    assert transactions_failed_by(producer) is None  # not failed

    async def fenced() -> None:
        raise ProducerFenced()

    task = asyncio.ensure_future(fenced())
    with contextlib.suppress(ProducerFenced):
        await task
    producer._sender._sender_task = task  # what the sender routine's failure leaves
    manager = producer._txn_manager
    manager._transaction_waiter = asyncio.get_running_loop().create_future()  # as started
    manager.fatal_error(ProducerFenced())
    with contextlib.suppress(ProducerFenced):
        await manager._transaction_waiter
    assert isinstance(transactions_failed_by(producer), ProducerFenced)


# -- another thread's stack (the event-loop stall watchdog) -------------------------------
def test_another_threads_stack_can_be_read() -> None:
    import threading

    from agents.faust_port.threads import stack_of

    seen: list[str] = []

    def look() -> None:
        frame = stack_of(main)
        while frame is not None:
            seen.append(frame.f_code.co_name)
            frame = frame.f_back

    main = threading.get_ident()
    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert seen[0] != "look"  # the main thread's stack (waiting in `join`), not this one's
    assert "test_another_threads_stack_can_be_read" in seen
    assert stack_of(-1) is None


# -- no count-based commit inline in the message loop ------------------------------------
def test_commits_run_on_the_interval_only(settings: Any) -> None:
    """Faust commits every `broker_commit_every` messages inside the loop that feeds the
    agent (which then waits for the whole commit): the worker sets a count it never
    reaches. Canary: the consumer still takes its count from that setting."""
    from faust.transport.consumer import Consumer as BaseConsumer

    from agents.worker.app import create_app

    app = create_app(settings)
    assert app.conf.broker_commit_every >= 2**62
    consumer = app.consumer
    assert isinstance(consumer, BaseConsumer)
    assert consumer._commit_every == app.conf.broker_commit_every


def test_faust_recovery_builds_active_offsets_after_the_highwaters_where_restore_hooks_in(
    app: VipApp,
) -> None:
    """agents/faust_port/restore.py replaces `Recovery._build_offsets` on the instance and
    reads `active_offsets` and `active_highwaters`: the restore relies on Faust calling it
    for the active partitions after it learnt their high watermarks, and before it seeks."""
    import inspect

    from faust.tables.recovery import Recovery

    assert list(inspect.signature(Recovery._build_offsets).parameters) == [
        "self",
        "consumer",
        "tps",
        "destination",
        "title",
    ]
    import re

    source = inspect.getsource(Recovery._restart_recovery.fun)  # a mode ServiceTask
    highwaters = source.index("self._build_highwaters")
    found = re.search(r"_build_offsets\)\(\s*consumer, assigned_active_tps, active_offsets", source)
    assert found is not None
    seek = source.index("self._seek_offsets")
    assert highwaters < found.start() < seek
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    assert isinstance(recovery.active_offsets, dict)
    assert isinstance(recovery.active_highwaters, dict)
    assert recovery.active_offsets is not recovery.standby_offsets


def test_faust_fetch_loop_is_the_one_drain_py_was_copied_from(app: VipApp) -> None:
    """agents/faust_port/drain.py is Faust 0.15.3's `Consumer._drain_messages` with the
    hand-over changed. When an upgrade changes Faust's loop, this fails: compare the two,
    carry the change over to the copy, then update the digest."""
    import hashlib
    import inspect

    source = inspect.getsource(FaustConsumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == (
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
    )
    assert "await self.wait_first(\n" in source  # the race drain.py avoids
    # the worker's consumer runs the copy
    assert app.consumer._drain_messages.__func__.__module__ == "agents.faust_port.drain"  # type: ignore[attr-defined]


async def test_the_fetch_loop_hands_messages_over_and_drops_one_a_suspension_interrupts() -> None:
    """drain.py's loop on a stand-in consumer: each message handed over once, in order;
    a message whose hand-over outlived a rebalance is not noted as read (Faust seeks
    afterwards); a hand-over blocked when the flow is suspended is cancelled and the
    message dropped, as Faust's race drops it; while suspended, Faust's own race."""
    from agents.faust_port.drain import drain_messages

    class Diag:
        def set_flag(self, flag: str) -> None: ...
        def unset_flag(self, flag: str) -> None: ...

    tp = TP("calls", 0)
    handed: list[int] = []
    raced: list[int] = []

    class Message:
        def __init__(self, offset: int) -> None:
            self.offset = offset
            self.topic = "calls"

    class Stub:
        consumer_stopped_errors = ()

        def __init__(self) -> None:
            self._stopped = asyncio.Event()
            self.suspend_flow = asyncio.Event()
            self.app = type("App", (), {"consumer_generation_id": 1})()
            self.app.topics = type("Topics", (), {"acks_enabled_for": lambda self, t: True})()
            self._read_offset: dict[TP, int | None] = {tp: None}
            self.diag = Diag()
            self._commit_every = None
            self.should_stop = False
            # after the rebalance during message 2, Faust seeks back to the committed 2
            self.batches = [[0, 1, 2], [2, 3], [4], [5]]

        async def callback(self, message: Message) -> None:
            handed.append(message.offset)
            if handed == [0, 1, 2]:  # a rebalance while this one is handed over
                self.app.consumer_generation_id = 2
            if message.offset == 3:  # blocked (a full buffer) until the flow is suspended
                asyncio.get_running_loop().call_later(0.05, self.suspend_flow.set)
                await asyncio.Event().wait()

        async def getmany(self, **options: float) -> Any:
            if not self.batches:
                self._stopped.set()
                return
            batch = self.batches.pop(0)
            if batch == [5]:
                self.suspend_flow.clear()  # the flow resumed
            for offset in batch:
                yield tp, Message(offset)

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

        async def wait_first(self, *coros: Any) -> None:
            raced.append(len(coros))
            for coro in coros:
                coro.close()

        async def _add_gap(self, *args: Any) -> None:
            raise AssertionError("no gap expected")

    stub = Stub()
    fetcher = type("Fetcher", (), {"_stopped": asyncio.Event()})()
    await asyncio.wait_for(drain_messages(stub, fetcher), timeout=10)
    # 2 twice: not noted as read before the seek; 3 dropped by the suspension; 4 raced
    assert handed == [0, 1, 2, 2, 3, 5]
    assert raced == [2]
    assert stub._read_offset[tp] == 5


def test_mode_still_closes_its_loop_after_a_one_second_sentinel() -> None:
    """agents/faust_port/worker.py overrides `_sentinel_task`, the bare one-second sleep
    mode's Worker runs after everything has stopped and before the loop closes. When mode
    stops calling it or gives it a purpose, this fails and the override goes."""
    import inspect

    from mode import Worker as ModeWorker

    from agents.faust_port.worker import Worker

    shutdown = inspect.getsource(ModeWorker._shutdown_loop)
    assert "ensure_future(self._sentinel_task()" in shutdown
    sentinel = inspect.getsource(ModeWorker._sentinel_task)
    assert sentinel.rstrip().endswith("await asyncio.sleep(1.0)")
    assert sentinel.count("\n") == 2  # the signature and the sleep: nothing else
    assert Worker._sentinel_task is not ModeWorker._sentinel_task


def test_faust_table_manager_starts_as_the_port_copies_it_less_the_sleep(app: VipApp) -> None:
    """agents/faust_port/app.py's TableManager.on_start is Faust's without the one-second
    sleep before it. When Faust's body changes, this fails: carry the change over."""
    import inspect

    from faust.tables import TableManager as FaustTableManager

    from agents.faust_port.app import TableManager

    body = [
        line.strip()
        for line in inspect.getsource(FaustTableManager.on_start).splitlines()[1:]
        if line.strip() and not line.strip().startswith(('"""', "#"))
    ]
    assert body == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ]
    copied = [line.strip() for line in inspect.getsource(TableManager.on_start).splitlines()[1:]]
    assert copied == body[1:]
    assert type(app.tables) is TableManager
