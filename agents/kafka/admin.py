"""Creating the contract's topics, and checking those that exist (agents/topics.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from agents.kafka.security import check_credentials, client_options
from agents.settings import Settings
from agents.topics import topic_plan

log = logging.getLogger(__name__)

TOPIC_AUTHORIZATION_FAILED = 29  # Kafka's error code
_TOPIC_EXISTS = 36


class TopicError(RuntimeError):
    """A topic is missing, cannot be created, or has the wrong partition count."""


async def ensure_topics(settings: Settings, *, wait_seconds: float = 60.0) -> None:
    """Create missing contract topics; refuse any with a different partition count.

    Contract topics must all have `kafka.partitions` partitions: a customer's calls,
    orders, tickets and state are co-partitioned by the key's hash, which depends on the
    count, and a customer's outputs go to the partition its events came from.
    Retries while the broker is not reachable yet, up to `wait_seconds`.
    """
    admin = await _connect_admin(settings, wait_seconds)
    try:
        plan = topic_plan(settings)
        existing = set(await admin.list_topics())
        missing = [p for p in plan if p.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        p.name,
                        p.partitions,
                        settings.kafka.replication_factor,
                        topic_configs={
                            **({"cleanup.policy": "compact"} if p.compacted else {}),
                            **dict(p.configs),
                        },
                    )
                    for p in missing
                ]
            )
            for name, code, message in response.topic_errors:
                if code == TOPIC_AUTHORIZATION_FAILED:
                    raise TopicError(
                        f"not authorized: topic {name!r} is missing or the worker's Kafka "
                        f"principal lacks Describe on topic {name} (Read or Write imply it) "
                        f"and may not create it; `vipstream acls` prints every ACL a worker "
                        f'needs (README "Security")'
                    )
                if code not in (0, _TOPIC_EXISTS):
                    raise TopicError(f"cannot create topic {name!r}: error {code} {message}")
            log.info(
                "created topics %s",
                ", ".join(p.name for p in missing),
                extra={"event": "topics_created", "topics": [p.name for p in missing]},
            )
        if missing:
            await _wait_for_leaders(admin, [p.name for p in missing], wait_seconds=30.0)
        partitioned = [p.name for p in plan if p.partitions == settings.kafka.partitions]
        for described in await _described(admin, partitioned, wait_seconds=30.0):
            count = len(described["partitions"])
            if count != settings.kafka.partitions:
                raise TopicError(
                    f"topic {described['topic']!r} has {count} partitions but "
                    f"kafka.partitions={settings.kafka.partitions}; the contract topics and the "
                    "state are co-partitioned by customer, so the counts must be equal"
                )
    finally:
        await admin.close()


async def _described(
    admin: AIOKafkaAdminClient, topics: list[str], *, wait_seconds: float
) -> list[dict[str, Any]]:
    """The topics described, asking again for any with no partitions: in a cluster, the
    broker asked may not know a topic created a moment ago on another (seen with three
    nodes under load); after `wait_seconds` what it says stands."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    found = {d["topic"]: d for d in await admin.describe_topics(topics)}
    while True:
        unknown = [t for t in topics if not found.get(t, {}).get("partitions")]
        if not unknown or asyncio.get_running_loop().time() >= deadline:
            return [found.get(t, {"topic": t, "partitions": []}) for t in topics]
        await asyncio.sleep(0.2)
        found.update({d["topic"]: d for d in await admin.describe_topics(unknown)})


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], *, wait_seconds: float
) -> None:
    """Until every partition of the new topics has a leader: Apache Kafka elects them a
    moment after the topics are created, and a producer that sends meanwhile is told
    NotLeaderForPartition (it retries, with a warning)."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        described = await admin.describe_topics(topics)
        leaderless = [
            f"{d['topic']}[{p['partition']}]"
            for d in described
            for p in d.get("partitions", [])
            if p.get("leader", -1) < 0
        ]
        if not leaderless and all(d.get("partitions") for d in described):
            return
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("topics without a leader after %.0fs: %s", wait_seconds, leaderless[:5])
            return
        await asyncio.sleep(0.1)


async def _connect_admin(settings: Settings, wait_seconds: float) -> AIOKafkaAdminClient:
    deadline = asyncio.get_running_loop().time() + wait_seconds
    attempt = 0
    while True:
        admin = AIOKafkaAdminClient(
            **client_options(settings),
            request_timeout_ms=int(settings.kafka.request_timeout_seconds * 1000),
        )
        try:
            await admin.start()
            return admin
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            await admin.close()
            if settings.kafka.security_protocol != "PLAINTEXT":
                await check_credentials(settings)  # refused credentials: no retry helps
            attempt += 1
            if asyncio.get_running_loop().time() >= deadline:
                raise TopicError(
                    f"broker {settings.broker} not reachable after {wait_seconds:.0f}s: {exc}"
                ) from exc
            log.warning(
                "broker %s not reachable yet (attempt %d: %s); retrying",
                settings.broker,
                attempt,
                exc,
            )
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
