"""`vipstream demo`: the whole system on one machine, with a live feed of what it emits.

Starts the embedded broker on a free port, creates the topics, starts a worker process,
replays a year of simulated history up to now at an accelerated pace (then continues in
real time), and prints every output event as one readable line, with a status line every
few seconds. Ctrl-C stops the simulator, the worker and the broker, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from agents.kafka.admin import ensure_topics
from agents.kafka.clients import consume_topics
from agents.metrics import sample_totals
from agents.settings import Settings, load_settings
from agents.tools.broker import EmbeddedBroker, free_port
from agents.tools.simulate_io import produce
from agents.tools.simulator import SimulationConfig, Simulator
from agents.topics import OUTPUT_TOPICS
from agents.worker.process import spawn_worker

_STATUS_EVERY = 5.0
_COLOURS = {
    "tier_change": "35",
    "basic_question_spike": "33",
    "care_task": "36",
    "ticket_priority": "34",
    "dead_letter": "31",
    "status": "2",
}


class Feed:
    """Formats output events as single lines (coloured on a terminal)."""

    def __init__(self, stream: Any = sys.stdout) -> None:
        self._stream = stream
        self._colour = stream.isatty()
        self.counts: dict[str, int] = {}

    def line(self, kind: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self._colour and kind in _COLOURS:
            text = f"\033[{_COLOURS[kind]}m{text}\033[0m"
        self._stream.write(f"{stamp}  {text}\n")
        self._stream.flush()

    def show(self, value: bytes | None) -> None:
        try:
            event = orjson.loads(value or b"null")
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = str(event.get("event_type"))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        text = describe(event)
        if text is not None:
            self.line(kind, text)


def describe(e: dict[str, Any]) -> str | None:
    """One line for an output event, or None for one not worth a line of its own."""
    kind = e.get("event_type")
    who = e.get("customer_id") or "-"
    if kind == "tier_change":
        return (
            f"TIER    {who:<10} {e.get('previous_tier')} -> {e.get('tier'):<7} "
            f"ratio {e.get('ratio', 0):.2f}  p{e.get('percentile', 0):.0f}  {e.get('reason')}"
        )
    if kind == "basic_question_spike":
        return (
            f"SPIKE   {who:<10} {e.get('recent_count')} basic questions in "
            f"{e.get('recent_days')}d (expected {e.get('expected_count', 0):.1f}, "
            f"p={e.get('p_value', 0):.1e}) -> {e.get('suggested_action')}"
        )
    if kind == "care_task":
        return (
            f"TASK    {who:<10} {e.get('kind'):<24} priority {e.get('priority')}  {e.get('reason')}"
        )
    if kind == "ticket_priority":
        if int(e.get("priority", 5)) > 2:
            return None  # only urgent tickets get a line; the rest are counted
        return (
            f"TICKET  {who:<10} {e.get('ticket_id')} priority {e.get('priority')} "
            f"({e.get('tier')}), SLA {e.get('sla_minutes')} min"
        )
    if kind == "dead_letter":
        return (
            f"DEAD    {e.get('source_topic')}[{e.get('partition')}]@{e.get('offset')} "
            f"{e.get('reason')}: {str(e.get('detail'))[:90]}"
        )
    return None


def run_demo(*, customers: int, days: float, days_per_second: float, seed: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="vipstream-demo-"))
    feed = Feed()
    feed.line("status", "starting the embedded broker ...")
    broker = EmbeddedBroker().start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        settings = load_settings({"broker": broker.url, "datadir": workdir / "data"})
        web_port = free_port()
        log_path = workdir / "worker.log"
        feed.line("status", f"broker {broker.url}; starting a worker (log: {log_path}) ...")
        asyncio.run(ensure_topics(settings, wait_seconds=30))
        worker = spawn_worker(
            web_port=web_port,
            datadir=workdir / "data",
            env={**os.environ, "VIPSTREAM_BROKER": broker.url},
            log_path=log_path,
        )
        asyncio.run(
            _live(
                settings,
                worker,
                web_port,
                log_path,
                feed,
                customers=customers,
                days=days,
                days_per_second=days_per_second,
                seed=seed,
            )
        )
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        feed.line("status", "stopping: worker ...")
        _stop_process(worker)
        feed.line("status", "stopping: broker ...")
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        feed.line("status", "stopped.")


async def _live(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    web_port: int,
    log_path: Path,
    feed: Feed,
    *,
    customers: int,
    days: float,
    days_per_second: float,
    seed: int,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    base = f"http://127.0.0.1:{web_port}"
    async with aiohttp.ClientSession() as http:
        await _wait_healthy(http, base, worker, log_path, stop)
        if stop.is_set():
            return
        now = datetime.now(UTC).timestamp()
        start = now - days * 86400
        config = SimulationConfig(
            customers=customers,
            days=days,
            seed=seed,
            start=datetime.fromtimestamp(start, UTC),
            currency=settings.ingest.currency,
            invalid_share=0.003,
            duplicate_share=0.01,
        )
        feed.line(
            "status",
            f"worker ready on {base}; replaying {days:.0f} days of "
            f"{customers} customers at {days_per_second:g} days/s (then live) ...",
        )
        tasks = [
            asyncio.create_task(
                _simulate(
                    settings,
                    config=config,
                    start=start,
                    days_per_second=days_per_second,
                    stop=stop,
                    feed=feed,
                )
            ),
            asyncio.create_task(_show_outputs(settings, feed)),
            asyncio.create_task(_status(http, base, feed, worker)),
        ]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, tasks[2]], return_when=asyncio.FIRST_COMPLETED)
        for task in [*tasks, stopper]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _wait_healthy(
    http: aiohttp.ClientSession,
    base: str,
    worker: subprocess.Popen[bytes],
    log_path: Path,
    stop: asyncio.Event,
) -> None:
    deadline = time.monotonic() + 90
    while not stop.is_set():
        if worker.poll() is not None:
            tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-3000:]
            raise RuntimeError(f"the worker exited with code {worker.returncode}:\n{tail}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not become healthy; see {log_path}")
        await asyncio.sleep(0.3)


async def _simulate(
    settings: Settings,
    *,
    config: SimulationConfig,
    start: float,
    days_per_second: float,
    stop: asyncio.Event,
    feed: Feed,
) -> None:
    sent = await produce(
        settings,
        Simulator(config),
        sim_seconds_per_second=days_per_second * 86400,
        sim_start=start,
        stop=stop,
    )
    feed.line(
        "status",
        f"history replayed ({sent:,} events) and caught up with the present; "
        "the worker keeps running. Ctrl-C to stop.",
    )


async def _show_outputs(settings: Settings, feed: Feed) -> None:
    topics = [settings.topics.name(key) for key in OUTPUT_TOPICS]
    async for _, _, _, _, value in consume_topics(settings, topics, from_beginning=True):
        feed.show(value)


async def _status(
    http: aiohttp.ClientSession, base: str, feed: Feed, worker: subprocess.Popen[bytes]
) -> None:
    while worker.poll() is None:
        await asyncio.sleep(_STATUS_EVERY)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{base}/metrics", timeout=aiohttp.ClientTimeout(total=2)) as r:
                totals = sample_totals(await r.text())
            watermark = totals.get("vipstream_watermark_timestamp_seconds", 0.0)
            shown = (
                datetime.fromtimestamp(watermark, UTC).strftime("%Y-%m-%d %H:%M")
                if watermark > 0
                else "-"
            )
            outputs = ", ".join(f"{k} {v:,}" for k, v in sorted(feed.counts.items())) or "none"
            feed.line(
                "status",
                (
                    f"status: consumed {totals.get('vipstream_events_consumed_total', 0):,.0f}  "
                    f"applied {totals.get('vipstream_events_applied_total', 0):,.0f}  "
                    f"duplicates {totals.get('vipstream_events_duplicate_total', 0):,.0f}  "
                    f"dead letters {totals.get('vipstream_events_invalid_total', 0):,.0f}  "
                    f"watermark {shown}  | outputs: {outputs}"
                ),
            )
    feed.line("status", f"the worker exited with code {worker.returncode}")


def _stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
