"""vipstream with only the aggregation: the like-for-like row beside the peers' sums.

A Faust agent on the same input topics as the pipeline, applying each event through
vipstream's own per-event path (agents/engine/events.py: decode, validate, dedupe,
the customer's rolling buckets and lifetime totals) on a write-back store
(agents/engine/store.py), whose changed states go to a changelog topic at every commit
interval, as the worker's do; Faust's fetch loop is the worker's
(agents/faust_port/drain.py). Left out: the day close, the tiering, the ledgers and
their checkpoints, ticket priorities and the commit barrier's ordering.

Run by the benchmark as `python -m bench.aggregation_app N`; prints one `RESULT {json}`
line when N events were applied.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import faust
import orjson

from agents.engine.barrier import await_delivery
from agents.engine.events import EventPath, InputMessage
from agents.engine.outputs import Outputs
from agents.engine.store import CustomerStore, DictStore, highest_offsets
from agents.faust_port.app import LeanDrainApp
from agents.kafka.producing import BatchProducer, ChangelogWriter
from agents.kafka.security import client_options
from agents.metrics import Metrics
from agents.settings import load_settings
from bench.floor_app import bench_app


def main() -> None:
    target = int(sys.argv[1])
    settings = load_settings()
    kafka = settings.kafka
    app, topic = bench_app(settings, "aggregation", LeanDrainApp)
    changelog_topic = app.topic(
        f"{settings.app_id}-aggregation-changelog",
        partitions=kafka.partitions,
        internal=True,
        compacting=True,
    )
    producer = BatchProducer(
        client_options(settings),
        max_message_bytes=kafka.max_message_bytes,
        delivery_timeout_seconds=kafka.delivery_timeout_seconds,
    )
    changelog = ChangelogWriter(producer, changelog_topic.get_topic_name())
    store = CustomerStore(DictStore, capacity=settings.state_cache_customers)
    metrics = Metrics()
    dropped: list[bytes] = []  # dead letters (none expected): counted, not produced

    def send(topic_key: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        dropped.append(value or b"")

    events = EventPath(settings, store, metrics, Outputs(settings, metrics, send))
    progress: dict[str, Any] = {"count": 0, "first": None, "cpu": None, "writes": 0}

    async def write_back() -> None:
        snapshot = store.snapshot()
        acks = await await_delivery(await changelog.write(snapshot), "state writes")
        store.confirm(snapshot, highest_offsets(acks))
        progress["writes"] += len(snapshot)

    @app.task  # type: ignore[untyped-decorator]
    async def create_changelog() -> None:
        await changelog_topic.maybe_declare()

    @app.timer(interval=kafka.commit_interval_seconds)  # type: ignore[untyped-decorator]
    async def commit_states() -> None:
        await write_back()

    @app.agent(topic)
    async def aggregate(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            if progress["first"] is None:
                progress["first"] = time.perf_counter()
                progress["cpu"] = time.process_time()  # every thread of the process
            events.handle(InputMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp))
            progress["count"] += 1
            if progress["count"] == target:
                await write_back()
                seconds = time.perf_counter() - progress["first"]
                cpu = time.process_time() - progress["cpu"]
                result = {
                    "events": target,
                    "seconds": seconds,
                    "cpu_seconds": cpu,
                    "state_writes": progress["writes"],
                    "dead_letters": len(dropped),
                }
                print("RESULT " + orjson.dumps(result).decode(), flush=True)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
