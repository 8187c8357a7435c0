"""A deployment under test: an app id on the benchmark's broker, its worker processes,
and what the harness reads from them (readiness, metrics)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.settings import Settings, load_settings
from tests.support import Worker, wait_for


@dataclass
class Deployment:
    """Workers sharing one app id (group, state table, summaries) on the benchmark's
    input topics."""

    name: str
    env: dict[str, str]
    work: Path
    workers: list[Worker] = field(default_factory=list)
    starts: int = 0  # workers started so far (each logs to its own file)

    @classmethod
    def of(cls, base_env: dict[str, str], name: str, work: Path, **extra: str) -> Deployment:
        env = {**base_env, "VIPSTREAM_APP_ID": f"{base_env['VIPSTREAM_APP_ID']}-{name}", **extra}
        return cls(name, env, work / name)

    def settings(self) -> Settings:
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start(self, count: int = 1, *, datadir: str | None = None) -> list[Worker]:
        """Start `count` workers (each its own data directory and web port)."""
        started = []
        self.work.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            self.starts += 1
            data = self.work / (datadir or f"worker-{len(self.workers) + 1}")
            log = self.work / f"worker-{self.starts}.log"
            worker = Worker(self.env, data, log).start()
            self.workers.append(worker)
            started.append(worker)
        return started

    def stop(self) -> None:
        for worker in self.workers:
            try:
                worker.stop(60)
            except AssertionError:
                worker.kill()
        self.workers.clear()

    def wait_ready(self, workers: list[Worker] | None = None, timeout: float = 600) -> float:
        """Wait until every worker consumes and serves the merged population (`/tiers`
        200: every partition's ledger is built from the recovered states); the time."""
        chosen = workers if workers is not None else self.workers

        def ready() -> bool:
            for worker in chosen:
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise AssertionError(f"worker exited:\n{worker.log()}")
                if worker.get("/healthz")[0] != 200 or worker.get("/tiers")[0] != 200:
                    return False
            return True

        wait_for(ready, timeout=timeout, what=f"{self.name}: workers ready", interval=0.1)
        return time.perf_counter()

    def total(self, name: str) -> float:
        return sum(m.get(name, 0.0) for m in self.metrics())

    def metrics(self) -> list[dict[str, float]]:
        """Every worker's metrics. A worker busy with a long synchronous step (building
        a ledger from 100k states) may not answer for a while: ask again."""
        return [patiently(w.metrics) for w in self.workers]


@contextmanager
def running(deployment: Deployment) -> Iterator[Deployment]:
    try:
        yield deployment
    finally:
        deployment.stop()


def patiently(read: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except OSError:  # a timeout, or a refused connection while it starts
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def poll_until(condition: Callable[[], Any], *, timeout: float, what: str) -> float:
    """Poll often; the time at which `condition()` first held."""
    wait_for(condition, timeout=timeout, what=what, interval=0.05)
    return time.perf_counter()
