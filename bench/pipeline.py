"""Throughput and latency of running workers: (a) the floor, (b)/(f) the pipeline on a
seeded population with one or two workers, (c) event-to-output latency at a fixed rate."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.settings import Settings
from agents.tools.broker import free_port
from agents.tools.simulate_io import produce
from agents.tools.simulator import SimEvent, Simulator
from bench.deployment import Deployment, patiently, poll_until
from bench.profile import sampling, summarize
from bench.soak import GC_FULL, INPUT_DELAY, LOOP_STALL, Sample, sample
from tests.support import Worker, wait_for

CONSUMED = "vipstream_events_consumed_total"
CPU = "process_cpu_seconds_total"
COMMITS = "vipstream_commit_flush_seconds_count"


def run_floor(
    env: dict[str, str], events: int, work: Path, module: str = "bench.floor_app"
) -> dict[str, Any]:
    """(a) A bare Faust agent that decodes the same events: events/s from its first to
    its last event. `module`: another such app (bench/aggregation_app.py)."""
    name = module.rsplit(".", 1)[-1]
    floor_env = {**env, "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(work / name)}
    process = subprocess.Popen(
        [sys.executable, "-m", module, str(events)],
        env=floor_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # Faust logs (and so prints) to stderr
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            # Faust routes print() through its logger: the marker may follow a log prefix
            marker = line.find(b"RESULT ")
            if marker >= 0:
                result = json.loads(line[marker + 7 :])
                return {
                    "events": events,
                    "seconds": result["seconds"],
                    "events_per_second": events / result["seconds"],
                    "cpu_seconds": result["cpu_seconds"],
                    "cpus_used": result["cpu_seconds"] / result["seconds"],
                    "cpu_microseconds_per_event": result["cpu_seconds"] / events * 1e6,
                    **{k: v for k, v in result.items() if k not in {"events", "seconds"}},
                }
        raise RuntimeError(f"{module} exited without a result")
    finally:
        process.terminate()
        process.wait(30)


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consume_backlog(
    deployment: Deployment,
    events: int,
    workers: int,
    *,
    broker_pid: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """(b)/(f) Start `workers` workers on a seeded deployment whose input topics hold
    `events` messages. Once every worker has recovered the state table and built its
    partitions' ledgers (`/tiers` answers), measure events/s until all are consumed,
    and until the last closable day is tiered. With `profile`, py-spy samples the first
    worker over that time and the figures carry the summary."""
    started = time.perf_counter()
    deployment.start(workers)
    ready = deployment.wait_ready()
    at_ready = deployment.metrics()
    broker_ready = process_cpu_seconds(broker_pid)
    before = _sum(at_ready, CONSUMED)
    rss_ready = _sum(at_ready, "process_resident_memory_bytes")
    pid = deployment.workers[0].process.pid if deployment.workers[0].process else None
    with (
        sampling(pid, profile) if profile is not None and pid is not None else nullcontext()
    ) as sampled:
        last = poll_until(
            lambda: deployment.total(CONSUMED) >= events,
            timeout=1800,
            what="every event consumed",
        )
        tiered = poll_until(
            lambda: all(_tiered_through_watermark(m) for m in deployment.metrics()),
            timeout=900,
            what="the last closable day to be tiered",
        )
    _wait_for_the_last_commit(deployment)
    metrics = deployment.metrics()
    measured = events - before
    seconds = last - ready
    if measured < events / 2:  # consumed while the ledgers were built: count from the start
        measured, seconds = events, last - started
    # CPU the workers got, from their process metrics: how much of the machine they had
    cpu = _sum(metrics, CPU) - _sum(at_ready, CPU)
    broker_now = process_cpu_seconds(broker_pid)
    broker_cpu = None if broker_now is None or broker_ready is None else broker_now - broker_ready
    return {
        "workers": workers,
        "events": events,
        "ready_seconds": ready - started,
        "consumed_before_ready": before,
        "seconds": seconds,
        "events_per_second": measured / seconds,
        "tiered_seconds": tiered - ready,
        "events_per_second_tiered": measured / (tiered - ready),
        "applied": _sum(metrics, "vipstream_events_applied_total"),
        "changelog_writes": _sum(metrics, "vipstream_state_writes_total"),
        "commits": _sum(metrics, "vipstream_commit_flush_seconds_count"),
        "rss_bytes": _sum(metrics, "process_resident_memory_bytes"),
        "rss_ready_bytes": rss_ready,
        "customers_held": _sum(metrics, "vipstream_state_customers"),
        "outputs": _sum(metrics, "vipstream_output_events_total"),
        "cpu_seconds": cpu,
        "cpus_used": cpu / (tiered - ready),
        "cpu_microseconds_per_event": cpu / max(events - before, 1) * 1e6,
        "broker_cpus_used": None if broker_cpu is None else broker_cpu / (tiered - ready),
        "profile": summarize(sampled) if sampled is not None and sampled.exists() else None,
    }


def _tiered_through_watermark(metrics: dict[str, float]) -> bool:
    watermark = metrics.get("vipstream_watermark_timestamp_seconds", 0.0)
    merged = metrics.get("vipstream_distribution_day_timestamp_seconds", 0.0)
    return bool(watermark) and merged >= watermark // 86400 * 86400


def _sum(metrics: list[dict[str, float]], name: str) -> float:
    return sum(m.get(name, 0.0) for m in metrics)


@dataclass
class LatencyRun:
    """One rate of the latency measurement: how many events, and the tickets opened."""

    rate: float
    events: int
    opened: set[str] = field(default_factory=set)


async def latency(
    deployment: Deployment,
    settings: Settings,
    stream: Simulator,
    runs: list[LatencyRun],
    *,
    tiered_through: float,
) -> list[dict[str, Any]]:
    """(c) Produce consecutive slices of `stream`, one per run at its rate (0: as fast as
    possible), to a running, caught-up deployment. After the first slice (the warm-up),
    wait until the tiers are decided through `tiered_through` (epoch seconds, a day's
    end), so that every opened ticket after it yields a `ticket-priorities` output as
    soon as it is applied; its latency is the output's Kafka timestamp less the input's."""
    worker = deployment.workers[0]
    events = iter(stream)
    sample_now = functools.partial(patiently, functools.partial(sample, worker, 0.0))
    results = []
    for run in runs:
        consumed = deployment.total(CONSUMED)
        before = sample_now()
        started = time.perf_counter()
        sent = await produce(settings, _noting_tickets(events, run), rate=run.rate)
        produce_seconds = time.perf_counter() - started
        await asyncio.to_thread(_wait_consumed, deployment, consumed + sent)
        consumed_seconds = time.perf_counter() - started
        after = sample_now()
        results.append(
            {
                "rate": run.rate,
                "events": sent,
                "produce_seconds": produce_seconds,
                "consumed_per_second": sent / consumed_seconds,
                # how long the worker still read after the last event was sent: about the
                # fetch and poll interval when it keeps up, a queue when it does not
                "drain_seconds": consumed_seconds - produce_seconds,
                "tickets": len(run.opened),
                "input_delay_p50_seconds": after.quantile(before, INPUT_DELAY, 0.5),
                "input_delay_p99_seconds": after.quantile(before, INPUT_DELAY, 0.99),
                # how long something synchronous held the worker's event loop meanwhile
                # (a 10 ms timer's lateness; upper bounds of histogram buckets)
                "loop_stall_p99_seconds": after.quantile(before, LOOP_STALL, 0.99),
                "loop_stalls_over_20ms": after.above(before, LOOP_STALL, 0.02),
                "loop_stalls_over_100ms": after.above(before, LOOP_STALL, 0.1),
                "loop_stall_longest_at_most_seconds": after.longest(before, LOOP_STALL),
                **full_collections(before, after),
            }
        )
        if len(results) == 1:
            started = time.perf_counter()
            await asyncio.to_thread(_wait_tiered, worker, tiered_through)
            results[0]["tiered_seconds"] = time.perf_counter() - started
            # The close re-valued and re-tiered many customers: the next commits write
            # them all to the changelog, holding the agent meanwhile. Let two pass.
            started = time.perf_counter()
            await asyncio.to_thread(_wait_commits, deployment, 2)
            results[0]["settled_seconds"] = time.perf_counter() - started
    prefix = f"T{stream.config.seed}-"
    opened = await _timestamps(settings, "tickets", prefix, status="opened")
    deadline = time.monotonic() + 60
    while True:  # outputs of the last tickets may still be on their way
        outputs = await _timestamps(settings, "ticket_priorities", prefix)
        if len(outputs) >= len(opened) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    for run, result in zip(runs, results, strict=True):
        latencies = sorted(
            (outputs[t] - opened[t]) / 1000 for t in run.opened if t in outputs and t in opened
        )
        if run.opened:
            first = min(opened[t] for t in run.opened if t in opened)
            worst = sorted(
                ((outputs[t] - opened[t]) / 1000, (opened[t] - first) / 1000)
                for t in run.opened
                if t in outputs and t in opened
            )[-20:]
            # when in the run the slowest tickets were opened (clustered: something held
            # the worker then; spread: the fetch and send path)
            result["slowest"] = [[round(at, 3), round(lat, 3)] for lat, at in worst]
        result.update(
            matched=len(latencies),
            p50_seconds=_quantile(latencies, 0.5),
            p99_seconds=_quantile(latencies, 0.99),
            max_seconds=latencies[-1] if latencies else None,
            mean_seconds=statistics.fmean(latencies) if latencies else None,
        )
    return results


def _wait_tiered(worker: Worker, through: float) -> None:
    def tiered() -> bool:
        status, body = worker.get("/tiers")
        counts_as_of = body.get("counts_as_of") if status == 200 else None
        return bool(counts_as_of) and _epoch(counts_as_of) >= through

    poll_until(tiered, timeout=900, what="the tiers the tickets need")


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _wait_commits(deployment: Deployment, count: int) -> None:
    done = deployment.total(COMMITS) + count
    poll_until(lambda: deployment.total(COMMITS) >= done, timeout=300, what="commits")


def _wait_consumed(deployment: Deployment, target: float) -> None:
    poll_until(
        lambda: deployment.total(CONSUMED) >= target, timeout=900, what="the stream consumed"
    )


def _noting_tickets(events: Iterator[SimEvent], run: LatencyRun) -> Iterator[SimEvent]:
    """The next `run.events` events, noting the ids of the tickets they open."""
    for event in itertools.islice(events, run.events):
        if event.topic == "tickets" and b'"status":"opened"' in event.value:
            run.opened.add(orjson.loads(event.value)["ticket_id"])
        yield event


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


async def _timestamps(
    settings: Settings, topic_key: str, ticket_prefix: str, *, status: str | None = None
) -> dict[str, int]:
    """ticket_id -> the Kafka timestamp (ms) of the first message on the topic for it."""
    name = settings.topics.name(topic_key)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, int] = {}
    try:
        tps = [TopicPartition(name, p) for p in range(settings.kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:  # to the end: until nothing comes for a while (the embedded broker's
            # end offsets can fall a few records short, agents/kafka/highwater.py)
            batch = await consumer.getmany(timeout_ms=1500, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    if record.value is None or ticket_prefix.encode() not in record.value:
                        continue
                    body = orjson.loads(record.value)
                    ticket = body.get("ticket_id", "")
                    if not ticket.startswith(ticket_prefix):
                        continue
                    if status is not None and body.get("status") != status:
                        continue
                    if ticket not in found or record.timestamp < found[ticket]:
                        found[ticket] = record.timestamp
    finally:
        await consumer.stop()
    return found


DAY_OUTPUTS = ("tier_changes", "basic_question_spikes", "care_tasks")


async def day_closes(
    deployment: Deployment, settings: Settings, *, last_event: float, days: int
) -> dict[str, Any]:
    """(g) On a caught-up deployment, close `days` days one at a time, each with a single
    event a day later than the one before (the first two days after `last_event`, epoch
    seconds), and nothing else: for each closed day, the time from sending that event to
    the Kafka timestamp of the day's last output (tier changes, spikes, care tasks), the
    contract's 30 s. The outputs are read as they come, from where the topics ended."""
    worker = deployment.workers[0]
    names = [settings.topics.name(k) for k in DAY_OUTPUTS]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    closes = []
    before = patiently(functools.partial(sample, worker, 0.0))
    try:
        tps = [TopicPartition(n, p) for n in names for p in range(settings.kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        status, body = worker.get("/tiers")
        counts_as_of = body.get("counts_as_of") if status == 200 else None
        previous = int(_epoch(counts_as_of) // 86_400) - 1 if counts_as_of else None
        for k in range(days):
            at = last_event + (k + 2) * 86_400.0 + 3600.0
            closed_day = int(at // 86_400) - 2  # the watermark (a day back) passes its end
            sent_at = time.time()
            await produce(settings, iter([_closing_event(at)]), rate=0.0)
            await asyncio.to_thread(_wait_tiered, worker, (closed_day + 1) * 86_400.0)
            stamps: list[float] = []
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 3.0:  # outputs may still be on their way
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in batch.values():
                    for record in records:
                        body = orjson.loads(record.value)
                        day = int(_epoch(body["as_of"]) // 86_400) - 1
                        if (previous is None or day > previous) and day <= closed_day:
                            stamps.append(record.timestamp / 1000)
                if batch:
                    quiet_since = time.monotonic()
            closes.append(
                {
                    "closed_days": closed_day - previous if previous is not None else None,
                    "outputs": len(stamps),
                    "last_output_seconds": (max(stamps) - sent_at) if stamps else None,
                    "first_output_seconds": (min(stamps) - sent_at) if stamps else None,
                }
            )
            previous = closed_day
    finally:
        await consumer.stop()
    after = patiently(functools.partial(sample, worker, 0.0))
    lasts = sorted(c["last_output_seconds"] for c in closes if c["last_output_seconds"])
    return {
        **full_collections(before, after),
        "loop_stalls_over_100ms": after.above(before, LOOP_STALL, 0.1),
        "loop_stall_longest_at_most_seconds": after.longest(before, LOOP_STALL),
        "days": closes,
        "p50_seconds": statistics.median(lasts) if lasts else None,
        "max_seconds": max(lasts) if lasts else None,
    }


def _closing_event(at: float) -> SimEvent:
    stamp = datetime.fromtimestamp(at, UTC).isoformat()
    body = {
        "event_type": "call",
        "event_id": f"bench-closer-{at:.0f}",
        "customer_id": "ZZ-BENCH-CLOSER",
        "occurred_at": stamp,
        "channel": "web",
        "direction": "inbound",
        "duration_seconds": 0,
        "cost": 0,
    }
    return SimEvent("calls", b"ZZ-BENCH-CLOSER", orjson.dumps(body), at)


def _wait_for_the_last_commit(deployment: Deployment, quiet_seconds: float = 12.0) -> None:
    """Until the changelog writes stop growing for longer than two commit intervals: what
    the last commits wrote (the day's close and tiering included) is then counted."""
    seen = [-1.0, time.perf_counter()]  # the writes last counted, since when

    def quiet() -> bool:
        writes = deployment.total("vipstream_state_writes_total")
        if writes != seen[0]:
            seen[:] = [writes, time.perf_counter()]
            return False
        return time.perf_counter() - seen[1] >= quiet_seconds

    wait_for(quiet, timeout=300, what="the changelog writes to settle", interval=1.0)


def full_collections(before: Sample, after: Sample) -> dict[str, Any]:
    """Python's full garbage collections in the worker between two samples."""
    return {
        "gc_full_collections": after.above(before, GC_FULL, 0.0)
        if after.buckets.get(GC_FULL)
        else None,
        "gc_full_longest_at_most_seconds": after.longest(before, GC_FULL),
    }


def stall_spots(log: Path, since: float, top: int = 6) -> dict[str, Any]:
    """The worker's `event_loop_stalled` lines (JSON log) logged after `since` (epoch
    seconds): how many stalls, the longest, and the code the watchdog found the loop
    held in most often (10 ms samples, summed over them)."""
    spots: Counter[str] = Counter()
    stalls, longest = 0, 0.0
    for line in log.read_bytes().splitlines():
        if b"event_loop_stalled" not in line or not line.startswith(b"{"):
            continue
        entry = orjson.loads(line)
        if datetime.fromisoformat(entry["ts"]).timestamp() < since:
            continue
        stalls += 1 + int(entry.get("held_back", 0))
        longest = max(longest, float(entry.get("longest_seconds", entry["seconds"])))
        spots.update(entry.get("samples", {}))
    return {
        "stalls": stalls,
        "longest_seconds": longest,
        "samples": sum(spots.values()),
        "spots": dict(spots.most_common(top)),
    }
