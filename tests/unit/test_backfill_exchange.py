"""The exchange between the processes of `vipstream backfill --processes N`: every child
gets every other child's messages, barriers end only when a round is quiet, and a child
that fails or dies fails the whole run, stopping the others, never hanging it.

The children are real spawned processes running the toy coroutines below (spawned
children import this module, so it stays light: no Faust)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from dataclasses import dataclass

import pytest

from agents.tools.backfill_exchange import ExchangeError, Hub, Link


@dataclass(frozen=True)
class Talk:
    """A toy child: at each of `barriers` barriers, publishes in its first `rounds`
    rounds (one message per key in `keys`, the key's latest value wins)."""

    name: str
    barriers: int
    rounds: int
    keys: tuple[str, ...] = ("a",)


async def talk(job: Talk, link: Link) -> list[str]:
    received: list[str] = []
    for barrier in range(1, job.barriers + 1):
        turn = 0

        async def settle(barrier: int = barrier) -> None:
            nonlocal turn
            if turn < job.rounds:
                for key in job.keys:
                    for version in (1, 2):  # only the latest of a key is sent
                        value = f"{job.name}{barrier}.{turn}{key}v{version}"
                        link.publish(f"{job.name}{key}".encode(), value.encode())
            turn += 1

        await link.barrier(barrier, settle, lambda value: received.append(value.decode()))
        received.append(f"|{barrier}")
    return received


def sent(job: Talk, barrier: int) -> list[str]:
    return [f"{job.name}{barrier}.{t}{k}v2" for t in range(job.rounds) for k in job.keys]


CASES = [
    ("two children, one round each", [Talk("x", 1, 1), Talk("y", 1, 1)]),
    ("nobody publishes", [Talk("x", 2, 0), Talk("y", 2, 0)]),
    ("one publishes longer", [Talk("x", 2, 3), Talk("y", 2, 0), Talk("z", 2, 1)]),
    ("two keys a round", [Talk("x", 1, 2, ("a", "b")), Talk("y", 1, 1)]),
]


@pytest.mark.parametrize(("why", "jobs"), CASES, ids=[c[0] for c in CASES])
def test_each_child_gets_the_others_messages_before_its_barrier_ends(
    why: str, jobs: list[Talk]
) -> None:
    hub = Hub(talk, jobs)
    results = hub.run()
    for job, received in zip(jobs, results, strict=True):
        marks = [i for i, r in enumerate(received) if r.startswith("|")]
        assert [received[i] for i in marks] == [f"|{b}" for b in range(1, job.barriers + 1)]
        start = 0
        for barrier, end in enumerate(marks, start=1):
            expected = [v for other in jobs if other is not job for v in sent(other, barrier)]
            assert sorted(received[start:end]) == sorted(expected), (job.name, barrier)
            start = end + 1
    # a round per publishing turn of the longest talker, and a quiet one, per barrier
    assert hub.rounds == jobs[0].barriers * (max(j.rounds for j in jobs) + 1)


@dataclass(frozen=True)
class Fail:
    how: str  # "raise", "exit", "kill", "" (waits at its barrier for the others)


async def fail(job: Fail, link: Link) -> None:
    if job.how == "raise":
        raise ValueError("the history is on fire")
    if job.how == "exit":
        os._exit(3)
    if job.how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)

    async def settle() -> None:
        link.publish(b"k", b"again")  # never quiet: without the hub's stop it never ends

    await link.barrier(1, settle, lambda value: None)


FAILURES = [
    ("an exception", "raise", ["failed", "ValueError: the history is on fire"]),
    ("an exit without a word", "exit", ["died (exit code 3) without a result"]),
    ("killed", "kill", [f"died (exit code -{int(signal.SIGKILL)}) without a result"]),
]


@pytest.mark.parametrize(("why", "how", "says"), FAILURES, ids=[c[0] for c in FAILURES])
def test_a_failing_child_fails_the_run_and_the_others_are_stopped(
    why: str, how: str, says: list[str]
) -> None:
    hub = Hub(fail, [Fail(""), Fail(how), Fail("")])
    started = time.monotonic()
    with pytest.raises(ExchangeError) as raised:
        hub.run()
    for words in says:
        assert words in str(raised.value)
    assert "vipstream-backfill-1" in str(raised.value)
    assert not [c for c in hub._children if c.process.is_alive()]
    assert time.monotonic() - started < 60


def test_the_progress_of_all_children_is_reported() -> None:
    seen: list[tuple[int, int]] = []
    Hub(progress, [3, 5], on_progress=lambda done, applied: seen.append((done, applied))).run()
    assert seen[-1] == (3, 8)  # bytes: the slowest reader; events: all children's


async def progress(job: int, link: Link) -> None:
    for step in range(1, job + 1):
        link.send(("progress", step, step))

    async def settle() -> None:
        pass

    await link.barrier(1, settle, lambda value: None)


PROCESSES = [("1", 1), ("4", 4), ("auto", 0)]


@pytest.mark.parametrize(("text", "count"), PROCESSES)
def test_processes_option(text: str, count: int) -> None:
    from agents.cli import _processes

    assert _processes(text) == count


@pytest.mark.parametrize("text", ["0", "-2", "two", ""])
def test_processes_option_refuses(text: str) -> None:
    from agents.cli import _processes

    with pytest.raises(argparse.ArgumentTypeError):
        _processes(text)
