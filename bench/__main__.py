"""`make bench`: throughput of the vipstream worker against the Faust floor, in one run.

Starts the embedded broker, writes a simulated history to the input topics once, then
lets (a) a bare Faust agent that only decodes the events and (b) a vipstream worker
consume the same topics from the beginning, one after the other, on the same machine.
Reports events/s of each and the ratio; writes the figures to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.broker import EmbeddedBroker, free_port
from agents.settings import load_settings
from agents.simulate_io import produce, write_jsonl
from agents.simulator import SimulationConfig, Simulator
from bench import value as value_bench
from tests.support import Worker, isolated_env, wait_for

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    # SIGTERM (e.g. from `timeout`) must unwind like Ctrl-C, so the broker and the
    # subprocesses started below are stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--customers", type=int, default=1400)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument(
        "--retier-customers", type=int, default=1_000_000, help="0 skips the re-tier bench"
    )
    args = parser.parse_args()

    figures: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        }
    }
    config = SimulationConfig(customers=args.customers, days=args.days, seed=1)
    with tempfile.TemporaryDirectory(prefix="vipstream-bench-") as tmp:
        work = Path(tmp)
        count, seconds = write_jsonl(Simulator(config), work / "history.jsonl")
        figures["simulator_to_file"] = {"events": count, "events_per_second": count / seconds}
        print(f"simulator: {count:,} events to a file at {count / seconds:,.0f} events/s")

        with EmbeddedBroker() as broker:
            # production group settings, except a quick join (a benchmark measures work,
            # not the rebalance timeout)
            defaults = {
                "VIPSTREAM_KAFKA__COMMIT_INTERVAL_SECONDS": "5.0",
                "VIPSTREAM_KAFKA__PARTITIONS": "8",
            }
            env = isolated_env(broker.url, **defaults)
            os.environ.update(env)
            settings = load_settings()
            started = time.perf_counter()
            produced = asyncio.run(produce(settings, Simulator(config)))
            print(f"produced {produced:,} events in {time.perf_counter() - started:.1f}s")

            floor = _run_floor(env, produced, work)
            figures["floor"] = floor
            print(
                f"floor (bare Faust agent, JSON decode only): {floor['events_per_second']:,.0f}"
                " events/s"
            )
            pipeline = _run_worker(env, produced, work)
            figures["worker"] = pipeline
            print(
                f"vipstream worker (validate, dedupe, cost/revenue state, coalesced "
                f"changelog): {pipeline['events_per_second']:,.0f} events/s"
            )

    ratio = figures["worker"]["events_per_second"] / figures["floor"]["events_per_second"]
    figures["worker_over_floor"] = ratio
    if args.retier_customers:
        figures["state_size"] = value_bench.state_size()
        figures["retier"] = value_bench.retier_million(args.retier_customers)
    _print_table(figures)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(figures, indent=2))
    print(f"\nwritten to {out}")
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_floor(env: dict[str, str], events: int, work: Path) -> dict[str, Any]:
    floor_env = {**env, "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(work / "floor")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floor_app", str(events)],
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
                }
        raise RuntimeError("the floor app exited without a result")
    finally:
        process.terminate()
        process.wait(30)


def _run_worker(env: dict[str, str], events: int, work: Path) -> dict[str, Any]:
    worker = Worker(env, work / "worker", work / "worker.log").start()
    try:
        worker.wait_healthy(120)
        first = wait_for(
            lambda: worker.metric("vipstream_events_consumed_total") > 0 and time.perf_counter(),
            timeout=120,
            what="the first event",
            interval=0.02,
        )
        first_cpu = _cpu_seconds(worker)
        # polled at 5 Hz: each scrape costs the worker a few ms, which the floor never pays
        last = wait_for(
            lambda: (
                worker.metric("vipstream_events_consumed_total") >= events and time.perf_counter()
            ),
            timeout=900,
            what="every event",
            interval=0.2,
        )
        last_cpu = _cpu_seconds(worker)
        # the value engine closes days behind the consumer: when is the last closable
        # day (the watermark's) merged and tiered?
        tiered = wait_for(
            lambda: _tiered_through_watermark(worker.metrics()) and time.perf_counter(),
            timeout=900,
            what="the last closable day to be tiered",
            interval=0.2,
        )
        tiered_cpu = _cpu_seconds(worker)
        metrics = worker.metrics()
        seconds = last - first
        return {
            "events": events,
            "seconds": seconds,
            "events_per_second": events / seconds,
            "applied": metrics.get("vipstream_events_applied_total", 0),
            "changelog_writes": metrics.get("vipstream_state_writes_total", 0),
            "commits": metrics.get("vipstream_commit_flush_seconds_count", 0),
            "tiered_seconds": tiered - first,
            "events_per_second_tiered": events / (tiered - first),
            "cpu_seconds": last_cpu - first_cpu,
            "tiered_cpu_seconds": tiered_cpu - first_cpu,
        }
    finally:
        worker.stop()


def _cpu_seconds(worker: Worker) -> float:
    """CPU time (user + system) the worker process has used so far, from /proc."""
    assert worker.process is not None
    fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tiered_through_watermark(metrics: dict[str, float]) -> bool:
    watermark = metrics.get("vipstream_watermark_timestamp_seconds", 0.0)
    merged = metrics.get("vipstream_distribution_day_timestamp_seconds", 0.0)
    return bool(watermark) and merged >= watermark // 86400 * 86400


def _print_table(figures: dict[str, Any]) -> None:
    floor = figures["floor"]["events_per_second"]
    worker = figures["worker"]
    rows = [
        ("floor: bare Faust agent, JSON decode", floor, 1.0),
        ("vipstream worker: consumed", worker["events_per_second"], figures["worker_over_floor"]),
        (
            "vipstream worker: consumed and tiered",
            worker["events_per_second_tiered"],
            worker["events_per_second_tiered"] / floor,
        ),
    ]
    print(f"\n{'':40} {'events/s':>12} {'x floor':>8}")
    for name, rate, ratio in rows:
        print(f"{name:40} {rate:12,.0f} {ratio:8.2f}")
    # CPU time per event is steadier than wall time on a machine shared with other work
    floor_cpu = figures["floor"]["cpu_seconds"] / figures["floor"]["events"]
    print(f"\n{'per event, CPU time':40} {'µs':>12} {'x floor':>8}")
    print(f"{'floor':40} {floor_cpu * 1e6:12,.0f} {1.0:8.2f}")
    for name, key in (
        ("worker: consumed", "cpu_seconds"),
        ("worker: tiered", "tiered_cpu_seconds"),
    ):
        cpu = worker[key] / worker["events"]
        print(f"{name:40} {cpu * 1e6:12,.0f} {floor_cpu / cpu:8.2f}")
    worker = figures["worker"]
    print(
        f"\nchangelog writes: {worker['changelog_writes']:,.0f} for {worker['applied']:,.0f} "
        f"applied events ({worker['changelog_writes'] / max(worker['applied'], 1):.3f} per "
        "event)"
    )
    if "state_size" in figures:
        size = figures["state_size"]
        print(
            f"state per customer ({size['window_days']}-day window, {size['customers']:,} "
            f"customers): mean {size['mean_bytes']:,.0f} B, p99 {size['p99_bytes']:,} B, "
            f"max {size['max_bytes']:,} B"
        )
    if "retier" in figures:
        r = figures["retier"]
        print(
            f"re-tier after a distribution shift, {r['customers']:,} customers: "
            f"{r['candidates']:,} re-checked, {r['tier_changes']:,} changed, "
            f"{r['engine_seconds']:.2f}s vs {r['full_pass_seconds']:.2f}s for a full pass "
            f"({r['engine_over_full_pass']:.2f}x); index build {r['index_build_seconds']:.1f}s"
        )


if __name__ == "__main__":
    sys.exit(main())
