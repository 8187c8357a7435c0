"""Nothing lost, nothing counted twice, in the spirit of Kafka Streams' system tests.

One simulated history (~29,000 events, 1,000 customers, 150 days) is processed three
times from its own topics: once by one worker left alone (the reference); once by a
worker killed with SIGKILL at several points of the stream, once of them while it was
restoring its state from the changelog; and once by a group whose membership changes
mid-stream (a second worker joins, then the first leaves). Afterwards every customer's
windowed and lifetime figures equal an independent computation exactly, the population
report equals the reference's, and the output topics hold the reference's events: the
same ids, each copy identical (a crash may repeat an output, never alter or lose one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.settings import KafkaSettings
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import group_lag
from tests.integration.outcome import Outcome, outcome
from tests.oracle import Expected, check_figures, figures_of_file
from tests.support import (
    Worker,
    agreeing_answer,
    cli,
    isolated_env,
    settle,
    simulate_history,
    wait_for,
)

pytestmark = pytest.mark.integration

WINDOW_DAYS = 60
#: care-task kinds evaluated only on a day the customer is re-valued
REVALUATION_KINDS = frozenset({"upsell", "service_cost_review"})
VALUE_ENV = {"VIPSTREAM_VALUE__WINDOW_DAYS": str(WINDOW_DAYS)}


@dataclass
class History:
    path: Path
    expected: dict[str, Expected]
    distinct: int
    reference: Outcome


def new_env(broker: RunningBroker) -> dict[str, str]:
    return isolated_env(broker.url, **VALUE_ENV)


def replay(env: dict[str, str], path: Path) -> int:
    result = cli(["replay", "--quiet", str(path)], env)
    return int(result.stderr.split("replayed ")[1].split(" ")[0].replace(",", ""))


@pytest.fixture(scope="module")
def history(broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> History:
    work = tmp_path_factory.mktemp("reference")
    env = new_env(broker)
    path = simulate_history(
        env,
        work / "history.jsonl",
        customers=600,  # 1,000 until 2026-12-07 (CI's time)
        days=150,
        seed=5,
        start="2026-01-05T00:00:00Z",
    )
    expected, distinct = figures_of_file(path)
    replay(env, path)
    worker = Worker(env, work / "w", work / "w.log").start()
    try:
        worker.wait_healthy()
        reference = outcome(env, worker, sorted(expected))
    finally:
        worker.stop()
    assert sum(len(ids) for ids in reference.outputs.values()) > 600
    return History(path, expected, distinct, reference)


def assert_same_as_reference(history: History, got: Outcome) -> None:
    check_figures(history.expected, got.customers, WINDOW_DAYS)
    got.assert_same(history.reference)


def consumed(worker: Worker) -> float:
    try:
        return worker.metric("vipstream_events_consumed_total")
    except OSError:  # the web server is not up yet
        return 0.0


def kill_when(worker: Worker, condition: Callable[[], bool], what: str) -> None:
    """kill -9 once `condition` holds; return when a successor may join the group."""
    wait_for(condition, timeout=120, what=what, interval=0.05)
    worker.kill(wait_out_session=True)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill_9_at_several_points_loses_and_doubles_nothing(
    broker: RunningBroker, history: History, tmp_path: Path, guarantee: str
) -> None:
    """At least once: every output of the reference, a crash may repeat some (same ids,
    same content). Exactly once: every output of the reference once, read_committed."""
    env = {**new_env(broker), "VIPSTREAM_PROCESSING_GUARANTEE": guarantee}
    replay(env, history.path)
    total = history.distinct

    def start(name: str) -> Worker:
        return Worker(env, tmp_path / name, tmp_path / f"{name}.log").start()

    # 1. a quarter of the way in, while events are being applied
    first = start("w1")
    kill_when(first, lambda: consumed(first) >= 0.25 * total, "a quarter consumed")

    # 2. while the next worker restores the state from the changelog (in bulk, or what
    # Faust's recovery reads after it)
    second = start("w2")
    kill_when(
        second,
        lambda: any(
            line in second.log_path.read_text()
            for line in ("in bulk", "Restoring state from changelog")
        ),
        "the changelog recovery to start",
    )

    # 3. further on; the first worker's progress was committed, so count afresh
    third = start("w3")
    third.wait_healthy()
    kill_when(third, lambda: consumed(third) >= 0.3 * total, "a further 30% consumed")

    # 4. right after a commit flushed its state: between the changelog write and the offsets
    fourth = start("w4")
    fourth.wait_healthy()
    commits = fourth.metric("vipstream_commit_flush_seconds_count")
    kill_when(
        fourth,
        lambda: fourth.metric("vipstream_commit_flush_seconds_count") > commits + 3,
        "three commits",
    )

    last = start("w5")
    try:
        last.wait_healthy()
        got = outcome(env, last, sorted(history.expected))
    finally:
        last.stop()
    assert_same_as_reference(history, got)
    print(f"outputs repeated after the crashes (same ids, same content): {got.repeated}")
    if guarantee == "exactly_once":
        assert got.repeated == 0


# Faust's fetcher hands each message to the stream through the conductor's callback and
# records the offset as read whether or not the hand-over completed (a rebalance can
# interrupt it); the stream also skips messages of an older generation. Either way the
# agent never sees the message and Faust never re-fetches it. Injected here where it
# happens, in the worker process only: the first delivery of these offsets of the
# calls, orders and tickets topics (hundreds of events per partition) is dropped.
DROP = """
from faust.transport import conductor

TOPICS = ("-calls", "-orders", "-tickets")
DROPPED = {(p, o) for p, offsets in {0: (0, 1, 57, 300, 301, 302), 1: (40,)}.items()
           for o in offsets}
seen = set()
compile_handler = conductor.Conductor._compile_message_handler

def _compile(self):
    handler = compile_handler(self)

    async def on_message(message):
        place = (message.topic, message.partition, message.offset)
        if (
            message.topic.endswith(TOPICS)
            and (message.partition, message.offset) in DROPPED
            and place not in seen
        ):
            seen.add(place)
            return None
        return await handler(message)

    return on_message

conductor.Conductor._compile_message_handler = _compile
"""


def test_messages_faust_drops_are_read_back_and_applied_in_order(
    broker: RunningBroker, history: History, tmp_path: Path
) -> None:
    """The agent fills holes in its input from the broker: the answers and outputs equal
    the reference's, and every partition's committed offset reaches its end."""
    env = new_env(broker)
    replay(env, history.path)
    injected = with_injected(env, tmp_path / "inject", DROP)
    worker = Worker(injected, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_healthy()
        got = outcome(env, worker, sorted(history.expected))
        gaps = worker.metric("vipstream_input_gaps_total")
        refetched = worker.metric("vipstream_input_refetched_total")
    finally:
        worker.stop()
    assert_same_as_reference(history, got)
    # three topics: seven offsets each, in four holes (0-1, 57, 300-302, 40)
    assert (gaps, refetched) == (3 * 4, 3 * 7), worker.log()


def with_injected(env: dict[str, str], directory: Path, code: str) -> dict[str, str]:
    """`env` for a worker that runs `code` at start-up (a sitecustomize module)."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(code)
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path}


# Faust learns a partition's committed offset only when its seek after an assignment ends,
# and its fetcher hands messages to the agent before that (Recovery._resume_streams resumes
# the input partitions, then seeks), so the agent's first messages come with no committed
# offset; some never come, dropped when the seek ends (faust-streaming #216 again).
# Injected: Faust never learns any input partition's committed offset.
FORGET_COMMITTED = """
from faust.transport import consumer

perform_seek = consumer.Consumer.perform_seek

async def _perform_seek(self):
    await perform_seek(self)
    for tp in list(self._committed_offset):
        if not tp.topic.endswith("-changelog"):
            self._committed_offset.pop(tp, None)

consumer.Consumer.perform_seek = _perform_seek
"""


def test_a_worker_that_never_learns_the_committed_offsets_asks_the_broker(
    broker: RunningBroker, history: History, tmp_path: Path
) -> None:
    """It reads on from the group's committed offsets: every record after them is applied
    exactly once, none before them is read again, and the day closes do not wait for
    partitions that get no message."""
    env = new_env(broker)
    replay(env, history.path)
    first = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    first.wait_healthy()
    wait_for(lambda: consumed(first) >= 0.4 * history.distinct, timeout=120, what="40% consumed")
    assert first.stop() == 0  # commits what it applied
    left = sum(end - (committed or 0) for committed, end in group_lag(env).values())
    assert left > 0
    injected = with_injected(env, tmp_path / "inject", FORGET_COMMITTED)
    second = Worker(injected, tmp_path / "w2", tmp_path / "w2.log").start()
    try:
        second.wait_healthy()
        got = outcome(env, second, sorted(history.expected))
        handled = second.metric("vipstream_events_consumed_total")
    finally:
        second.stop()
    assert_same_as_reference(history, got)
    assert handled == left, second.log()
    assert "no committed offset known; the broker's is" in second.log_path.read_text()


def test_a_worker_joins_then_the_first_leaves_mid_stream(
    broker: RunningBroker, history: History, tmp_path: Path
) -> None:
    env = new_env(broker)
    replay(env, history.path)
    total = history.distinct
    first = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    second = Worker(env, tmp_path / "w2", tmp_path / "w2.log")
    try:
        first.wait_healthy()
        wait_for(lambda: consumed(first) >= 0.3 * total, timeout=120, what="30% consumed")
        second.start().wait_healthy(timeout=90)
        wait_for(
            lambda: consumed(first) + consumed(second) >= 0.7 * total,
            timeout=120,
            what="70% consumed by the two",
        )
        # both answer for every customer, whichever owns it
        for customer in sorted(history.expected)[:50]:
            status, body = wait_for(
                lambda c=customer: agreeing_answer(first, second, c),
                timeout=30,
                what=f"both workers answering for {customer}",
                interval=0.3,
            )
            assert status == 200, body
        assert consumed(second) > 0, "the second worker took no partition"
        assert first.stop() == 0  # leaves the group; its partitions move to the second
        got = outcome(env, second, sorted(history.expected))
    finally:
        first.kill()
        second.stop()
    check_figures(history.expected, got.customers, WINDOW_DAYS)
    # Known gap (README "Known gaps"): which days a customer is re-valued on depends on
    # whether a late event arrives before or after its day's close, and with two workers
    # a partition's close waits for the other worker's summaries, so upsell and
    # service-cost reviews (evaluated only when re-valued) can fall on another day than
    # in the reference (seen: 6-7 upsell tasks of ~1,000 care tasks, in 2 of 4 full runs).
    # Everything else must equal the reference.
    got.assert_same(history.reference, except_kinds=REVALUATION_KINDS)


def test_a_standby_serves_a_killed_workers_customers_within_seconds(
    broker: RunningBroker, history: History, tmp_path: Path
) -> None:
    """`kafka.standby_replicas = 1`, two workers, every event consumed and tiered; one is
    killed with SIGKILL. The survivor's standby copy of the dead worker's partitions is
    current: once the group gives it those partitions, it reads little more of the
    changelog, builds their ledgers from the checkpoints, and answers for every customer
    exactly as before (and as the independent computation says)."""
    # RocksDB, as in production: a memory store's standby is read again from the start
    # when it becomes active (Faust keeps no offset for it)
    env = {
        **new_env(broker),
        "VIPSTREAM_KAFKA__STANDBY_REPLICAS": "1",
        "VIPSTREAM_STORE": "rocksdb://",
    }
    session = float(
        env.get(
            "VIPSTREAM_KAFKA__SESSION_TIMEOUT_SECONDS",
            KafkaSettings.model_fields["session_timeout_seconds"].default,
        )
    )
    replay(env, history.path)
    customers = sorted(history.expected)
    survivor = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    victim = Worker(env, tmp_path / "w2", tmp_path / "w2.log").start()
    try:
        survivor.wait_healthy()
        victim.wait_healthy(timeout=90)
        settle([survivor, victim], lambda: not group_lag(env), lambda: group_lag(env))
        before = {}
        for customer in customers:
            before[customer] = wait_for(
                lambda c=customer: agreeing_answer(survivor, victim, c),
                timeout=30,
                what=f"both workers answering for {customer}",
                interval=0.3,
            )
        recovered = survivor.metric("vipstream_state_recovered_records_total")
        built_before = len(_ledger_lines(survivor))
        victim.kill()
        killed = time.monotonic()
        for customer in customers:
            wait_for(
                lambda c=customer: survivor.get(f"/customers/{c}") == before[c],
                timeout=session + 60,
                what=f"the survivor answering for {customer} as before",
                interval=0.2,
            )
        serving = time.monotonic() - killed
        caught_up = survivor.metric("vipstream_state_recovered_records_total") - recovered
        built = _ledger_lines(survivor)[built_before:]
    finally:
        victim.kill()
        survivor.stop()
    check_figures(history.expected, before, WINDOW_DAYS)
    print(
        f"standby failover: every customer served {serving:.1f} s after the kill (the "
        f"session timeout is {session:.0f} s); {caught_up:,.0f} changelog records read "
        f"after the kill; ledgers: {built}"
    )
    # the dead member is noticed after the session timeout; what follows is the standby
    # catching up and the ledgers read from their checkpoints: seconds
    assert serving < session + 15
    # the standby copies were current: a takeover reads a small tail of the changelog.
    # Faust applies a standby's records in batches of the table's standby_buffer_size
    # (1,000), so up to that many read before the kill are applied, and counted, after it
    buffered = 1000
    assert caught_up < 0.2 * recovered + buffered, (caught_up, recovered)
    assert built
    assert all("from its checkpoint" in line for line in built), built


def _ledger_lines(worker: Worker) -> list[str]:
    text = worker.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if "value ledger of partition" in line]
