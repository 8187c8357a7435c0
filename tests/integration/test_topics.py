"""Start-up refuses contract topics whose partition count differs from kafka.partitions:
the outputs go to the partition their customer's events came from."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.kafka.admin import TopicError, ensure_topics
from agents.settings import load_settings
from tests.integration.conftest import RunningBroker
from tests.support import isolated_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("topic_key", ["orders", "tier_changes", "dead_letters"])
def test_a_topic_with_another_partition_count_is_refused_by_name(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch, topic_key: str
) -> None:
    for name, value in isolated_env(broker.url).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    name = settings.topics.name(topic_key)

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name, settings.kafka.partitions + 1, 1)])
        await admin.close()
        with pytest.raises(TopicError) as refused:
            await ensure_topics(settings, wait_seconds=10)
        assert repr(name) in str(refused.value)
        assert f"kafka.partitions={settings.kafka.partitions}" in str(refused.value)

    asyncio.run(run())
