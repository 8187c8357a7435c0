"""The brokers of the integration tests, one of each per test session; workers and topics
are unique per test.

Apache Kafka (a KRaft node from its published jars, agents/tools/kafka_broker.py) is the
engine every guarantee is proven on, and the default. Tests marked `embedded` run on the
embedded broker (Tansu) only, `both_brokers` on each: the smoke set that keeps the demo's
broker working, and the workarounds for the embedded broker, which must stay correct and
silent on Apache Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from agents.tools.broker import EmbeddedBroker
from agents.tools.kafka_broker import KafkaNode
from tests.support import Worker, isolated_env


class RunningBroker(Protocol):
    """What a test uses of a broker, embedded or Apache Kafka."""

    @property
    def url(self) -> str: ...
    @property
    def bootstrap(self) -> str: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


ENGINES = ("kafka", "embedded")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`broker`: Apache Kafka, the embedded broker (`embedded`), or both (`both_brokers`)."""
    if "broker" not in metafunc.fixturenames:
        return
    markers = {m.name for m in metafunc.definition.iter_markers()}
    engines = (
        ["embedded"]
        if "embedded" in markers
        else list(ENGINES)
        if "both_brokers" in markers
        else ["kafka"]
    )
    metafunc.parametrize("broker", engines, indirect=True, scope="session")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaNode]:
    with KafkaNode() as node:
        yield node


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running_broker:
        yield running_broker


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> RunningBroker:
    engine = getattr(request, "param", "kafka")
    found: RunningBroker = request.getfixturevalue(f"{engine}_broker")
    return found


@pytest.fixture
def env(broker: RunningBroker) -> dict[str, str]:
    return isolated_env(broker.url)


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def make_worker(
    env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[WorkerFactory]:
    workers: list[Worker] = []

    def make(name: str = "w1", **extra_env: str) -> Worker:
        worker = Worker({**env, **extra_env}, tmp_path / name, tmp_path / f"{name}.log")
        workers.append(worker)
        return worker

    yield make
    failed = getattr(request.node, "rep_call", None)
    for worker in workers:
        worker.kill()
        if failed is not None and failed.failed:
            print(f"\n--- log of {worker.log_path.name} ---\n{worker.log()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
