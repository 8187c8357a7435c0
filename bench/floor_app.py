"""The floor: a bare Faust agent that only decodes the same JSON events and counts them.

Run by the benchmark as `python -m bench.floor_app N`; prints one `RESULT {json}` line
when N events were consumed. Same broker, partitions and group timings as the worker.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import faust
import orjson

from agents.settings import Settings, load_settings
from agents.topics import INPUT_EVENT_TYPES
from agents.worker.app import faust_options


def bench_app(
    settings: Settings, name: str, app_class: type[faust.App] = faust.App
) -> tuple[faust.App, Any]:
    """A Faust app of its own group (`<app_id>-<name>`) with the workers' options, and
    the input topics as raw bytes (the floor's, a bare faust.App, and
    bench/aggregation_app.py's, with the worker's fetch loop)."""
    app = app_class(
        f"{settings.app_id}-{name}",
        store="memory://",
        web_port=int(os.environ["BENCH_WEB_PORT"]),
        datadir=os.environ["BENCH_DATADIR"],
        **faust_options(settings),
    )
    topic = app.topic(
        *[settings.topics.name(k) for k in INPUT_EVENT_TYPES],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    return app, topic


def main() -> None:
    target = int(sys.argv[1])
    app, topic = bench_app(load_settings(), "floor")
    progress: dict[str, Any] = {"count": 0, "first": None, "cpu": None}

    @app.agent(topic)
    async def decode_only(stream: Any) -> None:
        async for event in stream.events():
            if progress["first"] is None:
                progress["first"] = time.perf_counter()
                progress["cpu"] = time.process_time()  # every thread of the process
            orjson.loads(event.message.value)
            progress["count"] += 1
            if progress["count"] == target:
                seconds = time.perf_counter() - progress["first"]
                cpu = time.process_time() - progress["cpu"]
                line = orjson.dumps({"events": target, "seconds": seconds, "cpu_seconds": cpu})
                print("RESULT " + line.decode(), flush=True)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
