"""The commit barrier: what must be durable, in which order, before offsets are committed.

Faust commits offsets on a timer, on rebalance and on shutdown, all through
`Consumer.force_commit`. We wrap it so that, while no event is being applied:

1. every output produced so far is delivered (broker-acknowledged);
2. every customer state changed since the last commit is written to the changelog once
   and delivered;
3. only then does Faust snapshot the acknowledged offsets and commit them.

Outputs before state: if the worker dies between the two, the events replay and, their
ids not yet remembered in the durable state, produce their outputs again (same ids).
State before offsets: a committed offset never points past state that is not durable.
A delivery failure crashes the worker before anything is committed, so the events are
replayed after restart instead of being lost.

Faust's own `ProducerBuffer.flush()` returns after 0.1 s even with messages still queued
(faust-streaming 0.15.3, transport/producer.py); `drain()` waits until it is empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """An output or a state write was not acknowledged by the broker."""


async def drain(producer: Any) -> None:
    """Hand every buffered message to the Kafka client and wait for acknowledgements."""
    buffer = producer.buffer
    while buffer.size:
        await buffer.flush()
    await producer.flush()


async def await_delivery(futures: list[Any], what: str) -> None:
    """Wait for send futures; raise DeliveryError if any failed."""
    if not futures:
        return
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise DeliveryError(
            f"{len(failures)} of {len(futures)} {what} not delivered: {failures[0]!r}"
        )


class CommitBarrier:
    """Serialises event application and commits, and orders what a commit makes durable."""

    def __init__(
        self,
        producer: Any,
        take_outputs: Callable[[], list[Any]],
        flush_state: Callable[[], list[Any]],
        observe_seconds: Callable[[float], None],
    ) -> None:
        self.lock = asyncio.Lock()
        self._producer = producer
        self._take_outputs = take_outputs
        self._flush_state = flush_state
        self._observe = observe_seconds

    def wrap(self, force_commit: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
        """Return force_commit preceded by the durability steps, under the lock."""

        async def durable_force_commit(*args: Any, **kwargs: Any) -> bool:
            async with self.lock:
                started = time.perf_counter()
                await drain(self._producer)
                await await_delivery(self._take_outputs(), "output events")
                changelog = self._flush_state()
                await drain(self._producer)
                await await_delivery(changelog, "customer state writes")
                self._observe(time.perf_counter() - started)
                return await force_commit(*args, **kwargs)

        return durable_force_commit
