"""Faust's fetch loop, with a cheaper race per message.

`faust.transport.consumer.Consumer._drain_messages` hands every fetched message to the
conductor as `await self.wait_first(callback(message), self.suspend_flow.wait())`: the
hand-over and the flow's suspension, plus the consumer service's `stopped` and `crashed`
events, each wrapped in a task, and an `asyncio.wait` over the four, for every message.
The race is needed: a rebalance suspends the flow and clears the stream buffers without
waking a hand-over blocked on a full one, so an un-raced hand-over can wait forever (it
did: a worker taking over a partition mid-backlog stopped consuming). But it costs
~65 µs a message on this machine, most of what a bare Faust agent spends on one (`make
bench`'s floor), and the same for every changelog record a standby reads.

`drain_messages` is that loop with the race kept and made cheap: the hand-over runs as one
task, awaited directly; a single watcher per loop cancels the hand-over under way when
the flow is suspended (`_drop_on_suspend`), which drops the message as Faust's race
does. ~8 µs a message. While the flow is suspended, messages go through Faust's own
`wait_first`, as before. One more change: a message whose hand-over outlived a rebalance
is not noted as read, since Faust has sought its partition back to the committed offset
by then, and noting it after that seek would make the loop skip everything up to it.

It replaces the method on the consumer instance (agents/faust_port/app.py);
tests/agents/test_faust_port.py holds the digest of the Faust loop it was copied from, so
an upgrade that changes that loop fails there first.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING


def install_lean_drain(consumer: Any) -> None:
    consumer._drain_messages = types.MethodType(drain_messages, consumer)


async def drain_messages(self: Any, fetcher: Any) -> None:  # noqa: PLR0912, PLR0915 - Faust's loop
    """Faust 0.15.3's `Consumer._drain_messages`, the hand-over changed (see above)."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    suspended = self.suspend_flow.is_set
    app = self.app

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    handing: list[asyncio.Task[Any]] = []  # the hand-over under way, if any
    watcher = asyncio.ensure_future(_drop_on_suspend(self.suspend_flow, handing))
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(AsyncIterator[Any], getmany(timeout=1.0))
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if suspended():
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        elif await _hand_over(callback, message, handing, app):
                            set_read_offset(tp, offset)
                unset_flag(flag_consumer_fetching)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        watcher.cancel()
        unset_flag(flag_consumer_fetching)


async def _hand_over(
    callback: Any, message: Any, handing: list[asyncio.Task[Any]], app: Any
) -> bool:
    """Run the hand-over as a task of its own, which `_drop_on_suspend` cancels if the
    flow is suspended meanwhile (Faust's race, at the cost of one task); whether the
    message is to be noted as read: not if a rebalance came while it was handed over."""
    generation = app.consumer_generation_id
    task = asyncio.get_running_loop().create_task(callback(message))
    handing.append(task)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not task.cancelled() or (current is not None and current.cancelling()):
            raise  # the loop itself is cancelled
        return True  # dropped by a suspended flow, as Faust drops it: noted as read
    finally:
        handing.remove(task)
    return bool(app.consumer_generation_id == generation)


async def _drop_on_suspend(suspend_flow: Any, handing: list[asyncio.Task[Any]]) -> None:
    """Each time the flow is suspended, cancel the hand-over waiting then (a full stream
    buffer that the rebalance clears without waking its putter, or the flow control
    itself), as Faust's race would; then wait for the flow to resume."""
    while True:
        await suspend_flow.wait()
        for task in list(handing):
            task.cancel()
        while suspend_flow.is_set():  # noqa: ASYNC110 - a clear cannot be awaited
            await asyncio.sleep(0.05)
