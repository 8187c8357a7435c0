"""`make bench`: what the vipstream pipeline costs, against a floor, in one run.

One embedded broker, one simulated population, everything measured on the same machine
in the same run, so the ratios hold even where the absolute figures are noisy:

- simulator: events/s the simulator writes to a file;
- (a) floor: a bare Faust agent that only decodes the events of the stream;
- (b) pipeline: one vipstream worker on the same events, its state table seeded with a
  mature population (a year of history per customer, bench/population.py): events/s
  consumed, and until the last closable day is tiered; changelog writes per event;
- (c) latency: event -> ticket priority at a fixed input rate, on that worker;
- (d) state: encoded bytes per customer, and the worker's RSS per customer held;
- (e) recovery: a restarted worker serving again, changelog -> memory and RocksDB;
- (f) scaling: two workers in one group on the same events;
- (g) day close: after (c), days closed one by one with a single event each: the time
  to each closed day's last output (the contract's 30 s);
- re-tier: a 1M-customer population re-tiered after its distribution moves;
- predictive: the purchase and spend models on CDNOW's public history, judged on its
  holdout against a ranking by past revenue (bench/predictive.py);
- kafka: (a) and (b) again on one Apache Kafka node, after the embedded broker stopped,
  so the pipeline/floor ratio can be read on both engines;
- peers: on that node and its events, Kafka Streams and Quix Streams keeping a running
  total per customer (bench/peers.py), at least once and exactly once.

Printed as one table, ratios first; every figure is also written to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.tools.broker import EmbeddedBroker
from agents.tools.kafka_broker import KafkaNode
from agents.tools.simulate_io import produce, write_jsonl
from agents.tools.simulator import SimulationConfig, Simulator
from agents.topics import INPUT_EVENT_TYPES
from bench import population, predictive, report
from bench import value as value_bench
from bench.deployment import Deployment
from bench.peers import run_peers
from bench.pipeline import (
    LatencyRun,
    consume_backlog,
    day_closes,
    latency,
    run_floor,
    stall_spots,
)
from bench.recovery import recovery
from tests.support import isolated_env

RESULTS = Path(__file__).parent / "results"
DAY = 86_400.0
SECTIONS = (
    "simulator",
    "throughput",
    "latency",
    "state",
    "recovery",
    "scaling",
    "retier",
    "kafka",
    "peers",
    "predictive",
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~3 min)")
    parser.add_argument(
        "--skip", action="append", default=[], choices=SECTIONS, help="leave a section out"
    )
    parser.add_argument("--customers", type=int, help="population of (b), (c), (f)")
    parser.add_argument("--stream-days", type=float, help="event days of the (a)/(b) stream")
    parser.add_argument("--templates", type=int, help="customers of the template history")
    parser.add_argument("--latency-rate", type=float, default=1000.0, help="events/s for (c)")
    parser.add_argument("--close-days", type=int, default=5, help="days (g) closes, one by one")
    parser.add_argument("--recovery-customers", type=int, help="population of (e)")
    parser.add_argument("--retier-customers", type=int, help="0 skips the re-tier bench")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy samples the worker of (b); the table lists where its time goes",
    )
    args = parser.parse_args()
    defaults = (
        {"customers": 5_000, "stream_days": 1.0, "templates": 40}
        | {"recovery_customers": 5_000, "retier_customers": 50_000}
        if args.quick
        else {"customers": 100_000, "stream_days": 1.0, "templates": 96}
        | {"recovery_customers": 50_000, "retier_customers": 1_000_000}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.retier_customers == 0:
        args.skip.append("retier")
    return args


def main() -> int:
    # SIGTERM (e.g. from `timeout`) must unwind like Ctrl-C, so the broker and the
    # subprocesses started below are stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    args = _arguments()
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "arguments": vars(args),
    }
    try:
        _run(args, figures)
    finally:
        figures["wall_seconds"] = time.perf_counter() - started
        figures["machine"]["load_average_at_end"] = os.getloadavg()
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(figures, indent=2, default=str))
    report.print_table(figures)
    print(f"\nwritten to {out}")
    return 0


def _run(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    skip = set(args.skip)
    # the stream, the latency day and (g)'s closing events all end two days before
    # today, so no event is ahead of the clock
    stream_start = (time.time() // DAY - 2 - args.stream_days - 1 - args.close_days - 2) * DAY
    stream = SimulationConfig(
        customers=args.customers,
        days=args.stream_days,
        seed=1,
        start=population.utc(stream_start),
    )
    RESULTS.mkdir(exist_ok=True)  # the profile is written there while (b) runs
    with tempfile.TemporaryDirectory(prefix="vipstream-bench-") as tmp:
        work = Path(tmp)
        if "simulator" not in skip:
            figures["simulator_to_file"] = _simulator(work)
        with EmbeddedBroker() as broker:
            # production group settings, except a quick join (a benchmark measures work,
            # not the rebalance timeout)
            env = isolated_env(
                broker.url,
                VIPSTREAM_KAFKA__COMMIT_INTERVAL_SECONDS="5.0",
                VIPSTREAM_KAFKA__PARTITIONS="8",
            )
            os.environ.update(env)
            base = Deployment.of(env, "template", work)
            templates = asyncio.run(
                population.make_templates(
                    base.settings(), args.templates, history_end=stream_start, work=work
                )
            )
            figures["templates"] = templates.describe()
            _say(
                f"templates: {args.templates} customers, a year each ({templates.events:,} "
                f"events) through the backfill pipeline in {templates.seconds:.0f}s"
            )
            if not skip.issuperset({"throughput", "latency", "scaling"}):
                _pipeline(_Run(args, figures, env, work, templates, stream, broker.pid))
            if "recovery" not in skip:
                figures["recovery"] = recovery(env, work, templates, args.recovery_customers)
                _say("recovery measured")
        if "kafka" not in skip and "throughput" not in skip:
            figures["kafka"] = _on_apache_kafka(args, work, templates, stream)
    _rss_slope(figures)
    if "state" not in skip:
        figures["state_size"] = value_bench.state_size(customers=300 if args.quick else 2000)
    if "retier" not in skip:
        figures["retier"] = value_bench.retier_million(args.retier_customers)
    if "predictive" not in skip:
        figures["predictive"] = predictive.holdout_capture()
        figures["predictive"]["churn"] = predictive.churn_tasks_by_rule()


def _on_apache_kafka(
    args: argparse.Namespace,
    work: Path,
    templates: population.Templates,
    stream: SimulationConfig,
) -> dict[str, Any]:
    """(a) and (b) again on one Apache Kafka node (the production engine), after the
    embedded broker has stopped: the same stream, population and worker settings, with
    the settings deploy/ runs on Apache Kafka (exact_log_end off: its log ends are exact)."""
    figures: dict[str, Any] = {}
    with KafkaNode(heap_mb=1024) as node:
        env = isolated_env(
            node.url,
            VIPSTREAM_KAFKA__COMMIT_INTERVAL_SECONDS="5.0",
            VIPSTREAM_KAFKA__PARTITIONS="8",
            VIPSTREAM_KAFKA__EXACT_LOG_END="false",
        )
        os.environ.update(env)
        throughput_only = argparse.Namespace(
            **{**vars(args), "skip": [*SECTIONS], "profile": False}
        )
        throughput_only.skip.remove("throughput")
        (work / "kafka").mkdir()
        _pipeline(_Run(throughput_only, figures, env, work / "kafka", templates, stream, node.pid))
        # the same worker with processing_guarantee = "exactly_once" (its own app id, so
        # its own state; the same input topics)
        once = Deployment.of(
            env, "exactly-once", work / "kafka", VIPSTREAM_PROCESSING_GUARANTEE="exactly_once"
        )
        figures["seed_exactly_once"] = _seed(once, templates, stream.customers)
        try:
            figures["exactly_once"] = consume_backlog(
                once, figures["stream"]["events"], 1, broker_pid=node.pid
            )
        finally:
            once.stop()
        _say(
            f"(b) exactly once on Apache Kafka: "
            f"{figures['exactly_once']['events_per_second']:,.0f} events/s"
        )
        if "peers" not in args.skip:
            settings = Deployment.of(env, "peers", work / "kafka").settings()
            figures["peers"] = run_peers(
                ",".join(settings.bootstrap_servers),
                [settings.topics.name(k) for k in INPUT_EVENT_TYPES],
                figures["stream"]["events"],
                settings.app_id,
            )
            _say("peers measured")
    return figures


def _rss_slope(figures: dict[str, Any]) -> None:
    """(d) RSS per additional customer: between the worker of (b) and the memory-store
    worker of (e), both just ready (every state recovered and decoded, ledgers built)."""
    one, rec = figures.get("worker"), figures.get("recovery")
    if not one or not rec or one["customers_held"] == rec["customers"]:
        return
    big = (one["customers_held"], one["rss_ready_bytes"])
    small = (rec["customers"], rec["changelog_to_memory"]["rss_bytes"])
    (n1, rss1), (n2, rss2) = sorted([big, small])
    slope = (rss2 - rss1) / (n2 - n1)
    figures["rss_per_customer"] = {
        "bytes": slope,
        "between": [n1, n2],
        "million_bytes": rss1 + slope * (1_000_000 - n1),
    }


def _simulator(work: Path) -> dict[str, Any]:
    """Events/s of the simulator writing a year of 1,400 customers to a file, the set-up
    of its customers included (wall clock, and per CPU second of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    count, _ = write_jsonl(
        Simulator(SimulationConfig(customers=1400, days=365, seed=1)), work / "history.jsonl"
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _say(f"simulator: {count:,} events to a file at {count / wall:,.0f} events/s")
    return {
        "events": count,
        "seconds": wall,
        "events_per_second": count / wall,
        "events_per_cpu_second": count / cpu,
    }


@dataclass(frozen=True)
class _Run:
    args: argparse.Namespace
    figures: dict[str, Any]
    env: dict[str, str]  # of the benchmark's broker and topics
    work: Path
    templates: population.Templates
    stream: SimulationConfig  # the (a)/(b)/(f) stream
    broker_pid: int | None


def _pipeline(run: _Run) -> None:
    """(a), (f), (b) and (c), in that order: the latency stream goes to the input topics
    after every deployment has consumed the throughput stream."""
    args, figures, env, work = run.args, run.figures, run.env, run.work
    templates, stream, skip = run.templates, run.stream, set(args.skip)
    settings = Deployment.of(env, "producer", work).settings()
    started = time.perf_counter()
    events = asyncio.run(produce(settings, Simulator(stream)))
    figures["stream"] = {
        "customers": stream.customers,
        "days": stream.days,
        "events": events,
        "produce_seconds": time.perf_counter() - started,
    }
    _say(f"stream: {events:,} events of {stream.customers:,} customers in the input topics")
    if "throughput" not in skip:
        figures["floor"] = run_floor(env, events, work)
        _say(f"(a) floor: {figures['floor']['events_per_second']:,.0f} events/s")
        # like for like with the peers' sums: vipstream's per-event path alone
        figures["aggregation"] = run_floor(env, events, work, "bench.aggregation_app")
        _say(f"(a') aggregation only: {figures['aggregation']['events_per_second']:,.0f} events/s")
    if "scaling" not in skip:
        two = Deployment.of(env, "two", work)
        figures["seed_two"] = _seed(two, templates, stream.customers)
        try:
            figures["two_workers"] = consume_backlog(two, events, 2, broker_pid=run.broker_pid)
        finally:
            two.stop()
        _say(f"(f) two workers: {figures['two_workers']['events_per_second']:,.0f} events/s")
    if "throughput" in skip and "latency" in skip:
        return
    # json logs, and every stall of 50 ms or more logged with where it was held: (c)
    # and (g) report the spots
    one = Deployment.of(
        env, "one", work, VIPSTREAM_LOG_FORMAT="json", VIPSTREAM_STALL_LOG_SECONDS="0.05"
    )
    figures["seed_one"] = _seed(one, templates, stream.customers)
    try:
        figures["worker"] = consume_backlog(
            one,
            events,
            1,
            broker_pid=run.broker_pid,
            profile=RESULTS / f"profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
            if args.profile
            else None,
        )
        _say(f"(b) one worker: {figures['worker']['events_per_second']:,.0f} events/s")
        if "floor" in figures:
            figures["worker_over_floor"] = (
                figures["worker"]["events_per_second"] / figures["floor"]["events_per_second"]
            )
        if "latency" not in skip:
            since = time.time()
            figures["latency"] = _latency(args, one, stream, figures["worker"])
            figures["latency"]["stall_spots"] = stall_spots(one.workers[0].log_path, since)
            last_event = stream.start.timestamp() + (stream.days + 1) * DAY
            since = time.time()
            figures["day_close"] = asyncio.run(
                day_closes(one, one.settings(), last_event=last_event, days=args.close_days)
            )
            figures["day_close"]["stall_spots"] = stall_spots(one.workers[0].log_path, since)
            close = figures["day_close"]
            _say(
                f"(g) day close -> last output: p50 {close['p50_seconds']} s, "
                f"max {close['max_seconds']} s"
            )
    finally:
        one.stop()


def _latency(
    args: argparse.Namespace,
    deployment: Deployment,
    stream: SimulationConfig,
    throughput: dict[str, Any],
) -> dict[str, Any]:
    """(c) On the caught-up worker of (b), the next event day of the same customers: a
    short warm-up whose first events let the worker close the day the day's tickets need
    their tier from (two days back), then, once that tier is decided, two measured
    slices: at half the rate the worker sustained in (b) (latency without a queue), and
    at the fixed rate (`--latency-rate`, 1,000 events/s)."""
    day_start = stream.start.timestamp() + stream.days * DAY
    next_day = SimulationConfig(
        customers=stream.customers, days=1.0, seed=2, start=population.utc(day_start)
    )
    day_events = sum(1 for _ in Simulator(next_day))
    easy_rate = max(1.0, round(throughput["events_per_second"] / 2))
    warm_up = LatencyRun(0.0, max(20, day_events // 100))
    easy = LatencyRun(easy_rate, min(day_events // 4, int(easy_rate * 20)))
    fixed = LatencyRun(
        args.latency_rate,
        min(day_events - warm_up.events - easy.events, int(args.latency_rate * 15)),
    )
    warmed, easy_result, fixed_result = asyncio.run(
        latency(
            deployment,
            deployment.settings(),
            Simulator(next_day),
            [warm_up, easy, fixed],
            tiered_through=day_start - DAY,  # the end of the day two days back
        )
    )
    _say(
        f"(c) latency p50/p99: {fixed_result['p50_seconds']}/{fixed_result['p99_seconds']} s "
        f"at {args.latency_rate:,.0f} events/s, {easy_result['p50_seconds']}/"
        f"{easy_result['p99_seconds']} s at {easy_rate:,.0f} events/s"
    )
    return {**fixed_result, "sustainable": easy_result, "warm_up": warmed}


def _seed(
    deployment: Deployment, templates: population.Templates, customers: int
) -> dict[str, Any]:
    seeded = asyncio.run(population.seed(deployment.settings(), templates, customers))
    _say(
        f"seeded {deployment.name}: {customers:,} customers, {seeded.bytes / 1e6:,.0f} MB of "
        f"changelog in {seeded.seconds:.0f}s"
    )
    return {
        "customers": customers,
        "records": seeded.records,
        "bytes": seeded.bytes,
        "seconds": seeded.seconds,
        "tiers": dict(seeded.tier_counts),
    }


def _say(line: str) -> None:
    print(line, flush=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
