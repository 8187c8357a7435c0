"""One embedded broker per test session; workers and topics are unique per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.tools.broker import EmbeddedBroker
from tests.support import Worker, isolated_env


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running_broker:
        yield running_broker


@pytest.fixture
def env(broker: EmbeddedBroker) -> dict[str, str]:
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
