"""A worker whose consumer-group coordination died stops, instead of idling forever.

The embedded broker (Tansu 0.6) can hand a member that joins while a killed member's
session has not expired yet a zero-length assignment; aiokafka fails to decode it and its
group coordination task ends for good: the worker looks alive and never consumes again.
The fault is injected here where it happens in the client (the assignment decoder), in
the worker process only, through a `sitecustomize` module on its PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import WorkerFactory

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]

INJECT = """
from aiokafka.consumer import group_coordinator

class _RefusingAssignment:
    @staticmethod
    def decode(data):
        raise ValueError(f"injected: an assignment of {len(data)} bytes that cannot be decoded")

class _Protocol(group_coordinator.ConsumerProtocol):
    ASSIGNMENT = _RefusingAssignment

group_coordinator.ConsumerProtocol = _Protocol
"""


def test_a_worker_whose_group_coordination_died_exits_with_the_reason(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    path = os.pathsep.join(p for p in (str(inject), os.environ.get("PYTHONPATH")) if p)
    worker = make_worker("w1", PYTHONPATH=path).start()
    assert worker.process is not None
    try:
        code = worker.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker kept running without a group:\n{worker.log()}")
    log = worker.log()
    assert code != 0, log
    assert "consumer-group coordination ended with" in log, log
    assert "injected: an assignment of" in log, log
