"""The processes of a `vipstream backfill --processes N`, and what they tell each other.

Each child process plays a subset of the partitions with the workers' own runtime and
value engine. A worker's value engine publishes its partitions' population summaries on
a Kafka topic and reads everyone's from it; here every child sends what its engine
publishes to the parent (the hub), which passes it on to every other child. So each
child merges the same population and tiers its customers against the whole base.

Children meet at barriers: every child reads every line (it must know the position in
the whole history) and applies only its partitions' lines; at the positions at which
the one-process backfill settles its value engine, the children settle theirs together,
in rounds. In a round each child settles its engine on what it knows and sends what it
published (each partition's latest message only, possibly nothing); when every child
has sent its round, the hub hands each the others' messages, and the next round begins.
A round in which nobody published anything ends the barrier: no engine can close, merge
or tier anything more with what every other has published, and nothing is in flight.
The engines are then in the state the one-process backfill's engine is in at that
settle (a settle's end state does not depend on the order of its steps), so the results
are identical.

Rounds keep the children in step: a child's engine closes a day only after it has
tiered the day before, which needs every partition's summary of that day, and a child
ends its settle in a round after a step that closed a day (`one_day`), so a round is
one day for everybody, in parallel. With messages passed on as they come and settles
run to the end, a child one day behind caught up and overtook by a day in one settle
(the others' messages carry their last two closed days) while the other waited, and
the two took turns instead of working together.

Deadlock: a child waiting for its round's messages does nothing else, and the hub
writes to a child only when it waits for them; the hub reads whatever comes at any
time. Failures: a child's exception is sent to the hub (a traceback) before it exits
non-zero; a child that dies without a word is noticed by its process sentinel. Either
way the hub stops every child and raises `ExchangeError`. A child whose hub went away
reads the end of its pipe at its next barrier and exits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

# child -> hub
ROUND = "round"  # (ROUND, barrier, [value, ...]): settled; what its engine published
PROGRESS = "progress"  # (PROGRESS, bytes read, events applied)
RESULT = "result"  # (RESULT, anything picklable): the child's outcome; it then exits
ERROR = "error"  # (ERROR, traceback text)
# hub -> child
DELIVER = "deliver"  # (DELIVER, [value, ...]): the others' messages of the round
GO = "go"  # (GO, barrier): the barrier is over, read on

_STOP_SECONDS = 5.0


class ExchangeError(RuntimeError):
    """A child process failed or died, or the protocol was broken."""


# -- the child's side ------------------------------------------------------------------------
class Link:
    """A child's two pipe ends: what its engine publishes goes up, others' come down."""

    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._unsent: dict[bytes, bytes] = {}
        self.rounds = 0

    def publish(self, key: bytes, value: bytes) -> None:
        """The engine's `publish` callback (key: the partition). Held until the round
        ends, and only each partition's latest: a reader of the summaries keeps only the
        latest per partition, and a partition's message carries its last two closed
        days, while no partition closes a day beyond the one after everyone's."""
        self._unsent[key] = value

    def send(self, message: tuple[Any, ...]) -> None:
        self._outbox.send(message)

    async def barrier(
        self,
        number: int,
        settle: Callable[[], Awaitable[None]],
        receive: Callable[[bytes], None],
    ) -> None:
        """Settle in rounds with the other children until a round publishes nothing."""
        while True:
            await settle()
            published, self._unsent = list(self._unsent.values()), {}
            self._outbox.send((ROUND, number, published))
            self.rounds += 1
            message = await self._next()
            if message[0] == GO:
                if message[1] != number:
                    raise ExchangeError(f"released from barrier {message[1]} at {number}")
                return
            if message[0] != DELIVER:
                raise ExchangeError(f"unexpected message from the hub: {message[0]!r}")
            for value in message[1]:
                receive(value)

    async def _next(self) -> tuple[Any, ...]:
        """The next message from the hub; the event loop runs while none is there."""
        if not self._inbox.poll():
            loop = asyncio.get_running_loop()
            ready = loop.create_future()
            fd = self._inbox.fileno()

            def readable() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        message: tuple[Any, ...] = self._inbox.recv()  # EOFError: the hub is gone
        return message


def child_main(
    target: Callable[[Any, Link], Coroutine[Any, Any, Any]],
    job: Any,
    inbox: Connection,
    outbox: Connection,
    log_level: int,
) -> None:
    """A spawned child: run `target(job, link)`, send its result or its traceback."""
    logging.basicConfig(
        level=log_level,
        format=f"%(levelname)s %(name)s[{multiprocessing.current_process().name}]: %(message)s",
    )
    link = Link(inbox, outbox)
    try:
        result: Any = asyncio.run(target(job, link))
    except BaseException:  # whatever it was, the hub must hear of it
        try:
            outbox.send((ERROR, traceback.format_exc()))
        finally:
            sys.exit(1)
    outbox.send((RESULT, result))


# -- the hub's side --------------------------------------------------------------------------
@dataclass
class _Child:
    index: int
    process: BaseProcess
    inbox: Connection  # hub <- child
    outbox: Connection  # hub -> child
    round: tuple[int, list[bytes]] | None = None  # (barrier, published) of its round
    done_bytes: int = 0
    applied: int = 0
    finished: bool = False


@dataclass
class Hub:
    """Starts the children (spawned: the parent may hold threads), collects their rounds
    and hands each the others' messages, ends their barriers, and returns their results
    in child order."""

    target: Callable[[Any, Link], Coroutine[Any, Any, Any]]  # a module-level coroutine function
    jobs: Sequence[Any]  # one picklable job per child
    on_progress: Callable[[int, int], None] = lambda done_bytes, applied: None
    name: str = "vipstream-backfill"
    rounds: int = 0  # rounds completed, all barriers together
    _children: list[_Child] = field(default_factory=list)

    def run(self) -> list[Any]:
        results: dict[int, Any] = {}
        try:
            self._start()
            while len(results) < len(self._children):
                self._serve(results)
        finally:
            self._stop()
        return [results[i] for i in range(len(self._children))]

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        for index, job in enumerate(self.jobs):
            down_read, down_write = context.Pipe(duplex=False)
            up_read, up_write = context.Pipe(duplex=False)
            process = context.Process(
                target=child_main,
                args=(self.target, job, down_read, up_write, level),
                name=f"{self.name}-{index}",
                daemon=True,
            )
            self._children.append(_Child(index, process, up_read, down_write))
            process.start()
            down_read.close()  # the child's ends: closed here, so either side sees EOF
            up_write.close()

    def _serve(self, results: dict[int, Any]) -> None:
        by_handle: dict[Any, _Child] = {}
        for child in self._children:
            if not child.finished:
                by_handle[child.inbox] = child
                by_handle[child.process.sentinel] = child
        for handle in wait(list(by_handle), timeout=1.0):
            child = by_handle[handle]
            # messages first: a child sends its result (or error) before it exits
            while not child.finished and child.inbox.poll():
                try:
                    message = child.inbox.recv()
                except EOFError:
                    break
                self._handle(child, message, results)
            if not child.finished and not child.process.is_alive():
                child.process.join()
                raise ExchangeError(
                    f"{child.process.name} died (exit code {child.process.exitcode}) "
                    "without a result"
                )
        self._maybe_end_round()

    def _handle(self, child: _Child, message: tuple[Any, ...], results: dict[int, Any]) -> None:
        kind = message[0]
        if kind == ROUND:
            if child.round is not None:
                raise ExchangeError(f"{child.process.name} sent two rounds at once")
            child.round = (message[1], message[2])
        elif kind == PROGRESS:
            child.done_bytes, child.applied = message[1], message[2]
            self.on_progress(
                min(c.done_bytes for c in self._children), sum(c.applied for c in self._children)
            )
        elif kind == RESULT:
            results[child.index] = message[1]
            child.finished = True
        elif kind == ERROR:
            raise ExchangeError(f"{child.process.name} failed:\n{message[1]}")
        else:
            raise ExchangeError(f"unexpected message from {child.process.name}: {kind!r}")

    def _maybe_end_round(self) -> None:
        """Once every child has sent its round: the others' messages to each, or, if
        nobody published anything, the end of the barrier."""
        rounds = [c.round for c in self._children]
        if any(r is None for r in rounds):
            return  # (a finished child sends no more rounds: neither does any other)
        numbers = {r[0] for r in rounds if r is not None}
        if len(numbers) != 1:
            raise ExchangeError(f"children at different barriers: {sorted(numbers)}")
        (number,) = numbers
        quiet = not any(r[1] for r in rounds if r is not None)
        self.rounds += 1
        for child in self._children:
            if quiet:
                message: tuple[Any, ...] = (GO, number)
            else:
                others = [c.round[1] for c in self._children if c is not child and c.round]
                message = (DELIVER, [value for batch in others for value in batch])
            self._send(child, message)
        for child in self._children:
            child.round = None

    def _send(self, child: _Child, message: tuple[Any, ...]) -> None:
        # The child is waiting for it, reading: this does not block for long.
        try:
            child.outbox.send(message)
        except OSError as exc:
            child.process.join(_STOP_SECONDS)
            raise ExchangeError(
                f"{child.process.name} is gone (exit code {child.process.exitcode}): {exc}"
            ) from exc

    def _stop(self) -> None:
        """Every child ends: finished ones exit by themselves, the others are stopped."""
        for child in self._children:
            if not child.finished and child.process.is_alive():
                child.process.terminate()
        for child in self._children:
            child.process.join(_STOP_SECONDS)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.inbox.close()
            child.outbox.close()
