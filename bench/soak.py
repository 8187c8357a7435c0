"""`make soak`: one worker under a steady simulated load for a while, watched over time.

Starts the embedded broker and one worker, then produces a simulated history at a fixed
rate (default 500 events/s for 10 minutes; the history is long enough that customers'
oldest days leave the 365-day window during the run). Every `--every` seconds it samples
the worker's /metrics: throughput, the input delay over the interval (how long a message
waited in its topic; p50/p99 from the histogram's bucket deltas), the event lag (which,
for a replayed history, mostly says how old the history is), resident memory and
customers held. At the end it checks
that memory did not grow after warm-up beyond what the new customers need:

    RSS_end <= RSS_warm + (customers_end - customers_warm) x bytes_per_customer x 1.5 + 64 MiB

with bytes_per_customer = (RSS_warm - RSS_idle) / customers_warm, measured in the same
run. Figures go to bench/results/soak-*.json; the exit code is 1 if the check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from prometheus_client.parser import text_string_to_metric_families

from agents.settings import load_settings
from agents.tools.broker import EmbeddedBroker
from agents.tools.simulate_io import produce
from agents.tools.simulator import SimulationConfig, Simulator
from tests.support import Worker, isolated_env

RESULTS = Path(__file__).parent / "results"
MIB = 1024 * 1024
INPUT_DELAY = "vipstream_input_delay_seconds"
EVENT_LAG = "vipstream_event_lag_seconds"
LOOP_STALL = "vipstream_event_loop_stall_seconds"
GC_FULL = "vipstream_gc_full_collection_seconds"
HISTOGRAMS = (INPUT_DELAY, EVENT_LAG, LOOP_STALL, GC_FULL)


@dataclass
class Sample:
    seconds: float
    consumed: float
    rss_bytes: float
    customers: float
    #: histogram name -> cumulative counts by upper bound
    buckets: dict[str, dict[float, float]]

    def quantile(self, before: Sample, histogram: str, q: float) -> float | None:
        """The q-quantile of a histogram's observations between `before` and this sample
        (the upper bound of the bucket it falls in)."""
        now, then = self.buckets.get(histogram, {}), before.buckets.get(histogram, {})
        deltas = sorted((b, n - then.get(b, 0.0)) for b, n in now.items())
        total = deltas[-1][1] if deltas else 0.0
        if total <= 0:
            return None
        for bound, count in deltas:
            if count >= q * total:
                return bound
        return None

    def _deltas(self, before: Sample, histogram: str) -> list[tuple[float, float]]:
        now, then = self.buckets.get(histogram, {}), before.buckets.get(histogram, {})
        return sorted((b, n - then.get(b, 0.0)) for b, n in now.items())

    def above(self, before: Sample, histogram: str, bound: float) -> float:
        """Observations between `before` and this sample greater than `bound` (one of
        the histogram's bucket bounds)."""
        deltas = self._deltas(before, histogram)
        if not deltas:
            return 0.0
        at_most = dict(deltas).get(bound, 0.0)
        return deltas[-1][1] - at_most

    def longest(self, before: Sample, histogram: str) -> float | None:
        """The upper bound of the highest bucket that got an observation between
        `before` and this sample (None: none)."""
        highest, previous = None, 0.0
        for bound, count in self._deltas(before, histogram):
            if count > previous:
                highest = bound
            previous = count
        return highest


def sample(worker: Worker, started: float) -> Sample:
    status, text = worker.get("/metrics")
    assert status == 200
    values: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {h: {} for h in HISTOGRAMS}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            histogram = s.name.removesuffix("_bucket")
            if s.name.endswith("_bucket") and histogram in buckets:
                buckets[histogram][float(s.labels["le"])] = s.value
            elif not s.labels or family.name == "vipstream_events_consumed":
                values[s.name] = values.get(s.name, 0.0) + s.value
    return Sample(
        seconds=time.monotonic() - started,
        consumed=values.get("vipstream_events_consumed_total", 0.0),
        rss_bytes=values.get("process_resident_memory_bytes", 0.0),
        customers=values.get("vipstream_state_customers", 0.0),
        buckets=buckets,
    )


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()

    # enough history for the whole run at the simulator's ~0.2 events per customer-day
    days = max(30.0, args.rate * args.minutes * 60 / (0.19 * args.customers) * 1.2)
    config = SimulationConfig(
        customers=args.customers,
        days=days,
        seed=11,
        start=datetime.now(UTC) - timedelta(days=days),
    )
    samples: list[Sample] = []
    with TemporaryDirectory(prefix="vipstream-soak-") as tmp, EmbeddedBroker() as broker:
        env = isolated_env(broker.url, VIPSTREAM_KAFKA__PARTITIONS="8")
        worker = Worker(env, Path(tmp) / "w", Path(tmp) / "w.log").start()
        try:
            worker.wait_healthy(120)
            started = time.monotonic()
            idle = sample(worker, started)
            print(f"idle worker: RSS {idle.rss_bytes / MIB:,.0f} MiB")
            stop = threading.Event()
            producer = threading.Thread(
                target=_produce, args=(env, config, args.rate, stop), daemon=True
            )
            producer.start()
            print(
                f"{'t (s)':>7} {'events/s':>9} {'delay p50':>10} {'delay p99':>10} "
                f"{'lag p50':>10} {'RSS MiB':>8} {'customers':>10}"
            )
            previous = idle
            deadline = started + args.minutes * 60
            while time.monotonic() < deadline:
                time.sleep(min(args.every, max(0.0, deadline - time.monotonic())))
                current = sample(worker, started)
                samples.append(current)
                rate = (current.consumed - previous.consumed) / (current.seconds - previous.seconds)
                delay50 = current.quantile(previous, INPUT_DELAY, 0.5)
                delay99 = current.quantile(previous, INPUT_DELAY, 0.99)
                lag50 = current.quantile(previous, EVENT_LAG, 0.5)
                print(
                    f"{current.seconds:7.0f} {rate:9,.0f} {_seconds(delay50):>10} "
                    f"{_seconds(delay99):>10} {_seconds(lag50):>10} "
                    f"{current.rss_bytes / MIB:8,.0f} {current.customers:10,.0f}",
                    flush=True,
                )
                previous = current
            stop.set()
        finally:
            worker.stop()
    return _verdict(idle, samples, args)


def _produce(
    env: dict[str, str], config: SimulationConfig, rate: float, stop: threading.Event
) -> None:
    import os

    os.environ.update(env)
    settings = load_settings()
    done = asyncio.Event()

    async def run() -> None:
        async def watch() -> None:
            await asyncio.to_thread(stop.wait)
            done.set()

        watcher = asyncio.create_task(watch())
        await produce(settings, Simulator(config), rate=rate, stop=done)
        watcher.cancel()

    asyncio.run(run())


def _verdict(idle: Sample, samples: list[Sample], args: argparse.Namespace) -> int:
    warm = [s for s in samples if s.seconds >= args.warmup_minutes * 60]
    if len(warm) < 2:
        print("soak too short to judge memory after warm-up", file=sys.stderr)
        return 1
    first, last = warm[0], warm[-1]
    per_customer = (first.rss_bytes - idle.rss_bytes) / max(first.customers, 1.0)
    allowed = first.rss_bytes + (last.customers - first.customers) * per_customer * 1.5 + 64 * MIB
    consumed = last.consumed - first.consumed
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "throughput_after_warmup": consumed / (last.seconds - first.seconds),
        "rss_idle_bytes": idle.rss_bytes,
        "rss_warm_bytes": first.rss_bytes,
        "rss_end_bytes": last.rss_bytes,
        "rss_allowed_bytes": allowed,
        "bytes_per_customer_at_warmup": per_customer,
        "customers_warm": first.customers,
        "customers_end": last.customers,
        "samples": [asdict(s) for s in samples],
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    ok = last.rss_bytes <= allowed
    print(
        f"\nafter warm-up: {result['throughput_after_warmup']:,.0f} events/s; RSS "
        f"{first.rss_bytes / MIB:,.0f} -> {last.rss_bytes / MIB:,.0f} MiB for "
        f"{first.customers:,.0f} -> {last.customers:,.0f} customers "
        f"({per_customer / 1024:,.1f} KiB per customer at warm-up); allowed "
        f"{allowed / MIB:,.0f} MiB: {'OK' if ok else 'GROWTH BEYOND THE NEW CUSTOMERS'}"
        f"\nwritten to {out}"
    )
    return 0 if ok else 1


def _seconds(value: float | None) -> str:
    """A quantile for the table: seconds, or days once it is a day or more; a quantile
    in the histogram's +Inf bucket (older than its largest bound) prints as "> top"."""
    if value is None:
        return "-"
    if value == float("inf"):
        return "> top"
    return f"{value / 86400:.0f}d" if value >= 86400 else f"{value:g}s"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
