"""Where simulated events go: a JSONL file, or the input topics (optionally paced)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from agents.tools.simulator import SimEvent, Simulator, jsonl_batches

if TYPE_CHECKING:
    from agents.settings import Settings


def write_jsonl(events: Iterable[SimEvent], output: Path) -> tuple[int, float]:
    """Write one JSON object per line; returns (events, seconds)."""
    started = time.perf_counter()
    handle = sys.stdout.buffer if str(output) == "-" else output.open("wb")
    chunks = events.jsonl_chunks() if isinstance(events, Simulator) else jsonl_batches(events)
    try:
        count = 0
        for chunk, lines in chunks:  # a Simulator's a day at a time, without SimEvents
            handle.write(chunk)
            count += lines
    finally:
        if handle is not sys.stdout.buffer:
            handle.close()
        else:
            handle.flush()
    return count, time.perf_counter() - started


async def produce(
    settings: Settings,
    events: Iterable[SimEvent],
    *,
    rate: float = 0.0,
    sim_seconds_per_second: float | None = None,
    sim_start: float | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce events to the input topics.

    Pacing: `rate` events per second, or `sim_seconds_per_second` of event time per
    wall-clock second counted from `sim_start` (the demo's accelerated history), or
    neither: as fast as the broker takes them.
    """
    # imported here: writing a file (`vipstream simulate -o`) needs neither the Kafka
    # client nor the settings models, which take longer to import than a small file
    from agents.kafka.admin import ensure_topics
    from agents.kafka.clients import BatchSender, make_producer

    await ensure_topics(settings, wait_seconds=30.0)
    producer = make_producer(settings)
    await producer.start()
    sender = BatchSender(producer, window=2000)
    started = time.monotonic()
    try:
        for event in events:
            if stop is not None and stop.is_set():
                break
            if rate > 0:
                due = started + sender.sent / rate
            elif sim_seconds_per_second and sim_start is not None:
                due = started + (event.occurred_at - sim_start) / sim_seconds_per_second
            else:
                due = 0.0
            delay = due - time.monotonic()
            if delay > 0:
                await sender.wait()  # deliver what is queued before idling
                await asyncio.sleep(delay)
            await sender.send(settings.topics.name(event.topic), event.key, event.value)
        await sender.wait()
        await producer.flush()
    finally:
        await producer.stop()
    return sender.sent
