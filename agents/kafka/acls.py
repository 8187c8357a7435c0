"""The Kafka ACLs a worker's principal needs, and no more: one list, printed by
`vipstream acls` (as kafka-acls.sh commands), documented in the README, proven enough by
tests/integration/test_acls.py, which also leaves one of each kind out and checks that
the worker stops at start-up saying what is missing.

The contract topics are named one by one (their names are configurable and need not
share a prefix with anything else); everything internal to one deployment starts with
`<app_id>-` (the state changelog, the value summaries, Faust's leader topic), and so do
the transactional ids of exactly once (`<app_id>-<input partition>`). The contract
topics are expected to exist (operations create them, or a first run with a principal
allowed to create them); the internal ones the worker creates itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupAuthorizationFailedError

from agents.faust_port.aiokafka_client import group_read_error
from agents.kafka.admin import TOPIC_AUTHORIZATION_FAILED
from agents.kafka.security import client_options
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES, OUTPUT_TOPICS, topic_plan

log = logging.getLogger(__name__)

# Kafka's wire codes (org.apache.kafka.common.resource / acl)
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Describe": 8,
    "DescribeConfigs": 10,
    "IdempotentWrite": 12,
}


@dataclass(frozen=True)
class Acl:
    resource: str  # a key of RESOURCE_TYPES
    name: str
    pattern: str  # a key of PATTERN_TYPES
    operation: str  # a key of OPERATIONS
    why: str

    def command(self, principal: str, bootstrap: str) -> str:
        """The same grant with Apache Kafka's kafka-acls.sh."""
        flag = {
            "topic": f"--topic '{self.name}'",
            "group": f"--group '{self.name}'",
            "transactional_id": f"--transactional-id '{self.name}'",
            "cluster": "--cluster",
        }[self.resource]
        pattern = " --resource-pattern-type prefixed" if self.pattern == "prefixed" else ""
        return (
            f"kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal "
            f"'{principal}' --operation {self.operation} {flag}{pattern}"
        )


def worker_acls(settings: Settings) -> list[Acl]:
    """Every ACL a worker needs with these settings (exactly once adds its ids). Read and
    Write imply Describe in Apache Kafka, so no Describe is listed."""
    internal = f"{settings.app_id}-"
    acls = [
        Acl("topic", settings.topics.name(key), "literal", "Read", "consume the input")
        for key in INPUT_EVENT_TYPES
    ]
    acls += [
        Acl("topic", settings.topics.name(key), "literal", "Write", "produce the output")
        for key in OUTPUT_TOPICS
    ]
    acls += [
        Acl(
            "topic",
            internal,
            "prefixed",
            "Read",
            "recover the state, follow the summaries, read erasure requests",
        ),
        Acl("topic", internal, "prefixed", "Write", "the state changelog, the summaries"),
        Acl("topic", internal, "prefixed", "Create", "create the internal topics"),
        Acl("group", settings.app_id, "literal", "Read", "join the group, commit offsets"),
    ]
    if settings.processing_guarantee == "exactly_once":
        acls.append(
            Acl("transactional_id", internal, "prefixed", "Write", "one id per input partition")
        )
    return acls


class AccessDenied(RuntimeError):
    """The worker's principal lacks an ACL it needs."""


_GROUP_AUTHORIZATION_FAILED = 30


async def check_access(settings: Settings, wait_seconds: float = 15.0) -> None:
    """At start-up, what the worker will need, asked without side effects: Describe on
    every topic (which Read or Write imply) and Read on the consumer group (a heartbeat
    as no member). AccessDenied naming the resource and the ACL, instead of a worker that
    hangs in its group join with nothing in its log (what Apache Kafka's authorizer
    otherwise leads to). Read without Write or the reverse on a topic is not told apart
    here: it shows at the first fetch or output (aiokafka reports a refused fetch only
    in its log); exactly once's transactional ids are checked when its producers start."""
    try:
        async with asyncio.timeout(wait_seconds):
            await _check_access(settings)
    except AccessDenied:
        raise
    except Exception as exc:  # a broker that cannot answer these: the worker will tell
        log.info("access check skipped: %r", exc)


async def _check_access(settings: Settings) -> None:
    client = client_options(settings)
    plan = {p.name for p in topic_plan(settings)}
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        denied = sorted(
            t["topic"]
            for t in await admin.describe_topics(sorted(plan))
            if t["error_code"] == TOPIC_AUTHORIZATION_FAILED
        )
        if denied:
            raise AccessDenied(_missing(settings, "Describe on topic", denied))
        try:
            group_error = await group_read_error(admin, settings.app_id)
        except GroupAuthorizationFailedError:  # finding its coordinator needs Describe
            group_error = _GROUP_AUTHORIZATION_FAILED
        if group_error == _GROUP_AUTHORIZATION_FAILED:
            raise AccessDenied(_missing(settings, "Read on consumer group", [settings.app_id]))
    finally:
        await admin.close()


def _missing(settings: Settings, what: str, names: list[str]) -> str:
    return (
        f"not authorized: the worker's Kafka principal (kafka.sasl_username="
        f"{settings.kafka.sasl_username!r}) lacks {what} {', '.join(names)}; "
        f'`vipstream acls` prints every ACL a worker needs (README "Security")'
    )
