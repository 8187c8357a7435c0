"""The Faust app as configured: topics, table, settings isolation, the commit barrier."""

from __future__ import annotations

import pytest

from agents.settings import Settings, load_settings
from agents.topics import changelog_topic, erasures_topic, topic_plan
from agents.worker.app import STATE_TABLE, create_app


def test_topics_and_partitions(app: object, settings: Settings) -> None:
    agent = app.agents[next(iter(app.agents))]  # type: ignore[attr-defined]
    subscribed = set(agent.channel.topics)
    assert subscribed == {
        *(settings.topics.name(k) for k in ("calls", "orders", "tickets", "contact_preferences")),
        erasures_topic(settings),  # `vipstream erase`
    }
    assert app.conf.topic_partitions == settings.kafka.partitions  # type: ignore[attr-defined]


def test_state_table_is_keyed_by_raw_customer_bytes(app: object) -> None:
    table = app.tables[STATE_TABLE]  # type: ignore[attr-defined]
    assert table.key_type is bytes
    assert table.key_serializer == "raw"
    assert table.changelog_topic.get_topic_name().endswith("customer_state-changelog")
    # the router hashes these bytes, exactly like a producer keyed by customer_id
    assert table.changelog_topic.prepare_key("C42", None)[0] == b"C42"


def test_faust_environment_variables_do_not_override_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_PORT", "1234")
    monkeypatch.setenv("BROKER_URL", "kafka://elsewhere:1")
    monkeypatch.setenv("APP_DATADIR", "/elsewhere")
    settings = load_settings({"app_id": "env-isolation", "web": {"port": 6123}})
    app = create_app(settings)
    assert app.conf.web_port == 6123
    assert [str(u) for u in app.conf.broker] == ["kafka://127.0.0.1:9092"]
    assert str(app.conf.datadir) != "/elsewhere"


def test_group_timeouts_come_from_settings(app: object, settings: Settings) -> None:
    conf = app.conf  # type: ignore[attr-defined]
    assert conf.broker_session_timeout == settings.kafka.session_timeout_seconds
    assert conf.broker_rebalance_timeout == settings.kafka.rebalance_timeout_seconds
    assert conf.broker_commit_interval == settings.kafka.commit_interval_seconds
    assert conf.consumer_auto_offset_reset == "earliest"


def test_the_largest_state_fits_the_producer_and_the_changelog_topic(
    app: object, settings: Settings
) -> None:
    """A customer's state is one changelog message: the producer and the topic take the
    configured size, which start-up checked against the largest possible state."""
    largest = settings.kafka.max_message_bytes
    assert app.conf.producer_max_request_size == largest  # type: ignore[attr-defined]
    changelog = app.tables[STATE_TABLE].changelog_topic  # type: ignore[attr-defined]
    assert changelog.config["max.message.bytes"] == str(largest)
    assert largest > 1_000_000  # Faust's default, below the default caps' largest state


def test_start_up_creates_the_changelog_faust_would(app: object, settings: Settings) -> None:
    """The worker creates the changelog before Faust starts (agents/topics.py says why):
    Faust's name, partitions and configs, so that Faust finds it as it would have made it."""
    faust_topic = app.tables[STATE_TABLE].changelog_topic  # type: ignore[attr-defined]
    (planned,) = [p for p in topic_plan(settings) if p.key == "changelog"]
    assert planned.name == changelog_topic(settings) == faust_topic.get_topic_name()
    assert planned.partitions == faust_topic.partitions == settings.kafka.partitions
    assert planned.compacted
    assert faust_topic.compacting
    assert dict(planned.configs) == dict(faust_topic.config)


def test_offset_commits_go_through_the_durability_barrier(app: object) -> None:
    consumer = app.consumer  # type: ignore[attr-defined]
    assert consumer.force_commit.__name__ == "durable_force_commit"


def test_the_faust_internals_the_barrier_relies_on_exist(app: object) -> None:
    """agents/engine/barrier.py uses these private Consumer methods (faust-streaming 0.15.3):
    if an upgrade renames them, this fails before anything is committed wrongly."""
    consumer = app.consumer  # type: ignore[attr-defined]
    for name in ("_filter_tps_with_pending_acks", "_filter_committable_offsets", "_commit_offsets"):
        assert callable(getattr(consumer, name, None)), name


async def test_the_kafka_consumer_fetches_with_the_configured_wait(
    app: object, settings: Settings
) -> None:
    """Faust fixes fetch_max_wait_ms=1500 on the aiokafka consumer it creates; the worker's
    is kafka.fetch_max_wait_seconds, set before the consumer starts its fetcher."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    created = thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    assert created._fetch_max_wait_ms == int(settings.kafka.fetch_max_wait_seconds * 1000)
    assert created._fetch_max_wait_ms != 1500


async def test_an_agent_crash_is_counted_and_logged(
    app: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Faust restarts a crashed agent and only logs it; the worker counts it for alerting.
    Driven through Faust's own actor runner, with its supervisor and actor reference
    stubbed (they exist only in a started worker)."""
    agent = app.agents[next(iter(app.agents))]  # type: ignore[attr-defined]
    crashed: list[BaseException] = []

    class Ref:
        async def crash(self, exc: BaseException) -> None:
            crashed.append(exc)

    class Supervisor:
        woken = 0

        def wakeup(self) -> None:
            Supervisor.woken += 1

    async def failing() -> None:
        raise RuntimeError("boom")

    agent.supervisor = Supervisor()
    metrics = app.vip.metrics  # type: ignore[attr-defined]
    await agent._execute_actor(failing(), Ref())
    assert [str(e) for e in crashed] == ["boom"]
    assert Supervisor.woken == 1
    assert b"vipstream_agent_crashes_total 1.0" in metrics.render()
    record = next(r for r in caplog.records if getattr(r, "event", None) == "agent_crashed")
    assert record.levelname == "ERROR"
    assert record.exc_info is not None


def test_standby_records_are_applied_in_batches_of_a_thousand(app: object) -> None:
    """Faust's default, which the standby failover test's bound on the records a
    takeover applies relies on (tests/integration/test_crash_and_rebalance.py)."""
    assert app.tables[STATE_TABLE].standby_buffer_size == 1000  # type: ignore[attr-defined]
