"""The Faust worker that runs `vipstream worker`, less mode's fixed second at shutdown."""

from __future__ import annotations

import asyncio

import faust

#: loop iterations left to callbacks scheduled by the services' last stops (a closed
#: transport's connection_lost, a cancelled task's done callbacks) before the loop closes
SHUTDOWN_SETTLE_SECONDS = 0.05


class Worker(faust.Worker):
    """`mode.Worker._shutdown_loop` runs `_sentinel_task`, a bare `asyncio.sleep(1.0)`,
    after every service has stopped and every task is gathered: a second added to every
    stop (a rolling restart, a supervisor's restart, each of the tests' workers) for
    nothing left to wait for. A few loop iterations are enough for what is scheduled."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(SHUTDOWN_SETTLE_SECONDS)
