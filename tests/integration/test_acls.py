"""Least privilege: a worker whose SASL principal holds exactly the ACLs of
agents/kafka/acls.py (what README "Security" lists) processes a history as on a
plaintext broker; without one of them it fails with an error that names what is
missing. Apache Kafka's standard authorizer; the tests' own clients use the plaintext
listener, whose principal (ANONYMOUS) is a super user here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agents.faust_port.aiokafka_client import create_acl
from agents.kafka.acls import OPERATIONS, PATTERN_TYPES, RESOURCE_TYPES, Acl, worker_acls
from agents.kafka.admin import ensure_topics
from tests.integration.kafka import settings_for
from tests.integration.outcome import outcome
from tests.integration.test_security import (
    USER,
    WINDOW_DAYS,
    SecureKafka,
    plaintext_view,
    secure_env,
    secure_node,
)
from tests.oracle import check_figures, figures_of_file
from tests.support import Worker, cli, simulate_history

pytestmark = pytest.mark.integration

PRINCIPAL = f"User:{USER}"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    authorizer = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    }
    with secure_node(tmp_path_factory.mktemp("acl"), authorizer) as node:
        yield node


def acl_env(kafka: SecureKafka, tmp_path: Path) -> dict[str, str]:
    """A worker's environment whose contract topics do not share the app id's prefix
    (the internal topics' prefixed ACLs must not cover them)."""
    env = secure_env(kafka, tmp_path, VIPSTREAM_PROCESSING_GUARANTEE="exactly_once")
    env["VIPSTREAM_TOPICS__PREFIX"] = "contract." + env["VIPSTREAM_TOPICS__PREFIX"]
    return env


def granted(kafka: SecureKafka, env: dict[str, str], acls: list[Acl]) -> None:
    """Create the topics (as operations would) and grant the ACLs, as the super user."""
    plain = settings_for(plaintext_view(env, kafka))

    async def run() -> None:
        await ensure_topics(plain, wait_seconds=30)
        admin = AIOKafkaAdminClient(bootstrap_servers=plain.bootstrap_servers)
        await admin.start()
        try:
            for acl in acls:
                await create_acl(
                    admin,
                    resource_type=RESOURCE_TYPES[acl.resource],
                    resource_name=acl.name,
                    pattern_type=PATTERN_TYPES[acl.pattern],
                    principal=PRINCIPAL,
                    operation=OPERATIONS[acl.operation],
                )
        finally:
            await admin.close()

    asyncio.run(run())


def test_the_documented_acls_are_enough(kafka: SecureKafka, tmp_path: Path) -> None:
    env = acl_env(kafka, tmp_path)
    granted(kafka, env, worker_acls(settings_for(env)))
    plain = plaintext_view(env, kafka)
    path = simulate_history(
        plain, tmp_path / "h.jsonl", customers=120, days=90, seed=41, start="2026-01-05T00:00:00Z"
    )
    expected, _ = figures_of_file(path)
    cli(["replay", "--quiet", str(path)], plain)
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        got = outcome(plain, worker, sorted(expected))
    finally:
        worker.stop()
    check_figures(expected, got.customers, WINDOW_DAYS)
    assert sum(len(ids) for ids in got.outputs.values()) > 50
    assert "AuthorizationFailed" not in worker.log_path.read_text()


#: one of each kind left out, and what the worker's error must name
MISSING = {
    "input Read": (lambda a: a.why == "consume the input", "Describe on topic"),
    "output Write": (lambda a: a.why == "produce the output", "Describe on topic"),
    "group Read": (lambda a: a.resource == "group", "Read on consumer group"),
    "transactional Write": (lambda a: a.resource == "transactional_id", "transactional ids"),
    "internal Create": (lambda a: a.operation == "Create", "Cannot create topic"),
}


@pytest.mark.parametrize("missing", list(MISSING))
def test_without_one_acl_the_worker_fails_saying_what(
    kafka: SecureKafka, tmp_path: Path, missing: str
) -> None:
    leave_out, named = MISSING[missing]
    env = acl_env(kafka, tmp_path)
    acls = worker_acls(settings_for(env))
    kept = [a for a in acls if not leave_out(a)]
    assert len(kept) < len(acls)
    granted(kafka, env, kept)
    plain = plaintext_view(env, kafka)
    path = simulate_history(
        plain, tmp_path / "h.jsonl", customers=30, days=40, seed=42, start="2026-01-05T00:00:00Z"
    )
    cli(["replay", "--quiet", str(path)], plain)
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    assert worker.process is not None
    try:
        code = worker.process.wait(90)
    finally:
        worker.kill()
    log = worker.log_path.read_text()
    assert code != 0, log[-3000:]
    assert "not authorized" in log.lower() or "AuthorizationFailed" in log, log[-3000:]
    assert named in log, log[-3000:]
    assert "Traceback" not in log or missing == "internal Create", log[-3000:]
