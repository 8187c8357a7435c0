"""Memory of one worker holding a million customers with the rocksdb store, in-process.

Pushing a million customers through a broker takes long, so this builds what a worker
holds directly, with the real code: customer states made by streams/ from a simulated
year (a pool of realistic histories, each cloned under new customer ids), encoded by
the real codec into RocksDB databases opened with the worker's options (one per
partition), the value engine's ledgers (score index, due days, buyers, tier counts) for
every customer, and a decoded-state cache of `state_cache_customers` entries. It
reports the process RSS, and, measured with tracemalloc on a sample, the bytes per
customer of a ledger entry and of a cached decoded state.

    python -m bench.memory [--customers 1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

from agents.settings import load_settings
from agents.tools.simulator import SimulationConfig, Simulator
from bench.value import _events
from schemas.config import CostSettings, IngestSettings
from schemas.value_config import ClvSettings, TieringSettings, ValueSettings
from streams import care
from streams.care import CareRules
from streams.codec import decode_state, encode_state
from streams.customer import CustomerState, apply_event
from streams.ledger import PartitionLedger
from streams.units import day_of
from streams.valuation import ValueRules, buyer_flags, care_of_day, due_day, evaluate


def rss_mb() -> float:
    """Resident set size of this process (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def customer_pool(customers: int, days: float = 365) -> list[CustomerState]:
    """States after a simulated year, closed and cared for as of its last day, as the
    value engine leaves them (care memory pruned, waiting tickets released)."""
    ingest, costs = IngestSettings(), CostSettings()
    rules = ValueRules(ValueSettings(), ClvSettings(), TieringSettings(), CareRules())
    states: dict[str, CustomerState] = {}
    latest = 0
    for event in _events(Simulator(SimulationConfig(customers=customers, days=days, seed=5))):
        state, _ = apply_event(states.get(event.customer_id), event, ingest=ingest, costs=costs)
        states[event.customer_id] = state
        latest = max(latest, state.last_event_at)
    day = day_of(latest)
    for state in states.values():
        evaluate(state, day, lifetime_years=3.0, rules=rules)
        care_of_day(state, day, tier_change=None, revalued=True, rules=rules)
        care.ready_tickets(
            state.customer_id,
            state.care,
            current_tier=state.tier,
            tiered_day=day,
            rules=rules.care,
            lag=2,
        )
        state.tiered_day = day
    return list(states.values())


def bytes_per_item(build: Callable[[int], Any], sample: int) -> float:
    """Bytes tracemalloc sees allocated (and kept) per item by `build(sample)`."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build(sample)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / sample


def million(customers: int = 1_000_000, pool_size: int = 2000) -> dict[str, Any]:
    settings = load_settings({"store": "rocksdb://"})
    cache_size = settings.state_cache_customers
    rules = ValueRules(settings.value, settings.clv, settings.tiering, CareRules())
    figures: dict[str, Any] = {"customers": customers, "cache_customers": cache_size}
    figures["rss_start_mb"] = rss_mb()
    pool = customer_pool(pool_size)
    day = max(s.closed_day or 0 for s in pool)
    facts = [
        (s.tier, s.score if s.judged else None, due_day(s, day, rules), buyer_flags(s, day, rules))
        for s in pool
    ]
    sizes = [len(encode_state(s)) for s in pool]
    figures["pool"] = {"customers": len(pool), "mean_state_bytes": statistics.mean(sizes)}
    figures["rss_pool_mb"] = rss_mb()

    def ledger_entries(n: int, offset: int = 0) -> PartitionLedger:
        ledger = PartitionLedger(0, settings.tiering.sketch_relative_accuracy)
        for i in range(offset, offset + n):
            key = f"C{i:07d}".encode()
            tier, score, due, (buyer, silent) = facts[i % len(pool)]
            ledger.count_tier(None, tier)
            ledger.index(key, score)
            ledger.set_due(key, due)
            ledger.set_buyer(key, buyer, silent)
        return ledger

    def decoded_states(n: int) -> list[CustomerState]:
        out = []
        for i in range(n):
            state = pool[i % len(pool)]
            out.append(decode_state(encode_state(state)))
        return out

    sample = 50_000
    figures["ledger_bytes_per_customer"] = bytes_per_item(ledger_entries, sample)
    figures["cached_state_bytes_per_customer"] = bytes_per_item(decoded_states, sample // 5)

    figures.update(_fill_stores(settings, pool, facts, customers))
    return figures


def _fill_stores(
    settings: Any, pool: list[CustomerState], facts: list[Any], customers: int
) -> dict[str, Any]:
    """Every customer encoded into RocksDB and indexed in its partition's ledger; the
    most recent `state_cache_customers` of them also decoded, as the cache holds them."""
    figures: dict[str, Any] = {}
    partitions = settings.kafka.partitions
    cache_size = settings.state_cache_customers
    rocks = {k: v for k, v in settings.rocksdb.table_options().items() if k != "driver"}
    options = RocksDBOptions(**rocks, use_rocksdict=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vipstream-memory-") as tmp:
        dbs = [options.open(Path(tmp) / f"p{p}.db") for p in range(partitions)]
        alpha = settings.tiering.sketch_relative_accuracy
        ledgers = [PartitionLedger(p, alpha) for p in range(partitions)]
        cache: dict[bytes, CustomerState] = {}
        for i in range(customers):
            j = i % len(pool)
            state = pool[j]
            original = state.customer_id
            state.customer_id = f"C{i:07d}"
            value = encode_state(state)
            state.customer_id = original
            key = f"C{i:07d}".encode()
            partition = i % partitions
            dbs[partition][key] = value
            tier, score, due, (buyer, silent) = facts[j]
            ledger = ledgers[partition]
            ledger.count_tier(None, tier)
            ledger.index(key, score)
            ledger.set_due(key, due)
            ledger.set_buyer(key, buyer, silent)
            if i >= customers - cache_size:  # the most recently used stay decoded
                cache[key] = decode_state(value)
        figures["build_seconds"] = time.perf_counter() - started
        gc.collect()
        figures["rss_million_mb"] = rss_mb()
        # read every customer once more through the stores, as a rebuild would
        started = time.perf_counter()
        for i in range(customers):
            key = f"C{i:07d}".encode()
            raw = dbs[i % partitions][key]
            if key not in cache:
                decode_state(raw)
        figures["read_all_seconds"] = time.perf_counter() - started
        figures["rss_after_reads_mb"] = rss_mb()
        figures["judged"] = sum(len(ledger.scores) for ledger in ledgers)
        figures["cached"] = len(cache)
        for db in dbs:
            db.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = million(args.customers)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
