"""(e) How long a restarted worker takes to serve again with a large population: from
process start to `/healthz` and `/tiers` answering 200 (the state table recovered, every
partition's ledger built from it, the population merged).

The baseline is a worker of a deployment with a token table (a hundred customers).
Then one deployment, its own (empty) input topics, its state table seeded with N
customers (no ledger checkpoint); four starts of one worker:

1. the memory store, from the whole changelog, every ledger built from every state (the
   seeded table has no checkpoint; this start writes one when it stops);
2. the memory store again: the changelog only, the ledgers from their checkpoints;
3. RocksDB on an empty data directory: a full rebuild into RocksDB (a new host);
4. RocksDB again on the same directory after a clean stop: only records written since
   are read (the checkpoints of the stop).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench import population
from bench.deployment import Deployment
from tests.support import wait_for

RECOVERED = "vipstream_state_recovered_records_total"
RECOVERED_IN_BULK = "vipstream_state_recovered_in_bulk_records_total"
BASELINE_CUSTOMERS = 100


def recovery(
    base_env: dict[str, str], work: Path, templates: population.Templates, customers: int
) -> dict[str, Any]:
    empty = Deployment.of(
        base_env,
        "recovery-empty",
        work,
        VIPSTREAM_TOPICS__PREFIX=f"{base_env['VIPSTREAM_TOPICS__PREFIX']}recovery-empty-",
        VIPSTREAM_LOG_FORMAT="json",
    )
    deployment = Deployment.of(
        base_env,
        "recovery",
        work,
        VIPSTREAM_TOPICS__PREFIX=f"{base_env['VIPSTREAM_TOPICS__PREFIX']}recovery-",
        VIPSTREAM_LOG_FORMAT="json",  # the harness reads when partitions were assigned
    )
    # the baseline: a worker with a token table (a hundred customers, so that it has a
    # closed day to serve /tiers from), its start is the fixed cost of any start
    asyncio.run(population.seed(empty.settings(), templates, BASELINE_CUSTOMERS))
    seeded = asyncio.run(population.seed(deployment.settings(), templates, customers))
    runs = {
        "empty_worker": _start(empty, "memory://", "memory"),
        # the seeded table has no ledger checkpoint: this start builds every ledger from
        # every state (what every start did before checkpoints), and leaves one
        "changelog_to_memory_scan": _start(deployment, "memory://", "memory"),
        "changelog_to_memory": _start(deployment, "memory://", "memory"),
        "rocksdb_empty_directory": _start(deployment, "rocksdb://", "rocksdb"),
        "rocksdb_restart": _start(deployment, "rocksdb://", "rocksdb"),
    }
    failover = _standby_failover(deployment, customers)
    base = runs["empty_worker"]["seconds"]
    return {
        "customers": customers,
        "records": seeded.records,
        "changelog_bytes": seeded.bytes,
        "seed_seconds": seeded.seconds,
        **runs,
        "standby_failover": failover,
        "over_empty_worker": {k: run["seconds"] / base for k, run in runs.items()},
        "rocksdb_restart_over_changelog": runs["rocksdb_restart"]["seconds"]
        / runs["changelog_to_memory"]["seconds"],
        "million": {k: million(run, customers) for k, run in runs.items()},
    }


def million(run: dict[str, Any], customers: int) -> float:
    """Seconds to serving extrapolated to 1M customers: the fixed start-up and join, plus
    the part that grows with the population, scaled linearly."""
    scale = 1_000_000 / customers
    return float(run["startup_and_join_seconds"] + run["recovery_and_ledgers_seconds"] * scale)


def _start(deployment: Deployment, store: str, datadir: str) -> dict[str, Any]:
    """One start: seconds to serving, split at the moment the group assigned the
    partitions. Before it, process start-up and the group join (fixed); after it, reading
    the changelog, building the ledgers from every state and merging the population
    (growing with the customers)."""
    deployment.env["VIPSTREAM_STORE"] = store
    started_wall, started = time.time(), time.perf_counter()
    (worker,) = deployment.start(1, datadir=datadir)
    try:
        ready = deployment.wait_ready(timeout=3600)
        recovered = deployment.total(RECOVERED)
        in_bulk = deployment.total(RECOVERED_IN_BULK)
        rss = deployment.total("process_resident_memory_bytes")
    finally:
        deployment.stop()  # SIGTERM: the worker commits and leaves; RocksDB is closed
    seconds = ready - started
    events = _log_events(worker.log_path)
    assigned = events.get("partitions_assigned", started_wall) - started_wall
    restored = events.get("restored")
    per_customer = seconds - assigned
    return {
        "store": store,
        "seconds": seconds,
        "startup_and_join_seconds": assigned,
        "recovery_and_ledgers_seconds": per_customer,
        "changelog_read_seconds": None if restored is None else restored - started_wall - assigned,
        "records_read": recovered,
        "records_read_in_bulk": in_bulk,
        "records_per_second": recovered / per_customer if per_customer > 0 else None,
        "rss_bytes": rss,
    }


def _standby_failover(deployment: Deployment, customers: int) -> dict[str, Any]:
    """Two workers on RocksDB with `kafka.standby_replicas = 1`, both ready and their
    standby copies current; one is killed with SIGKILL: the seconds until the survivor
    answers for a sample of customers of every partition (the dead worker's included),
    the group's session timeout among them."""
    env = deployment.env
    env["VIPSTREAM_STORE"] = "rocksdb://"
    env["VIPSTREAM_KAFKA__STANDBY_REPLICAS"] = "1"
    session = float(deployment.settings().kafka.session_timeout_seconds)
    sample = [population.customer_id(i) for i in range(0, customers, max(1, customers // 400))]
    try:
        survivor, victim = deployment.start(2)
        deployment.wait_ready(timeout=3600)
        standby_rss = deployment.total("process_resident_memory_bytes")

        def recovered() -> float:
            return float(deployment.total(RECOVERED))

        # the standby copies are current once the records read stop growing
        last = [-1.0]

        def steady() -> bool:
            now = recovered()
            same, last[0] = now == last[0], now
            return same and now > 0

        wait_for(steady, timeout=3600, what="standby copies current", interval=2.0)
        read_before = survivor.metric(RECOVERED)
        victim.kill()
        killed = time.perf_counter()

        def serving() -> bool:
            if survivor.get("/tiers")[0] != 200:
                return False
            return all(survivor.get(f"/customers/{c.decode()}")[0] == 200 for c in sample)

        wait_for(serving, timeout=3600, what="the survivor serving", interval=0.2)
        seconds = time.perf_counter() - killed
        read_after = survivor.metric(RECOVERED) - read_before
    finally:
        env.pop("VIPSTREAM_KAFKA__STANDBY_REPLICAS", None)
        deployment.stop()
    return {
        "seconds": seconds,
        "session_timeout_seconds": session,
        "after_session_timeout_seconds": max(0.0, seconds - session),
        "records_read_after_kill": read_after,
        "two_workers_rss_bytes": standby_rss,
        "sampled_customers": len(sample),
    }


def _log_events(path: Path) -> dict[str, float]:
    """Epoch seconds of the first `partitions_assigned` event and of Faust's "restore
    complete" line in a worker's JSON log."""
    found: dict[str, float] = {}
    for line in path.read_bytes().splitlines():
        if not line.startswith(b"{"):
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        at = datetime.fromisoformat(entry["ts"]).timestamp()
        if entry.get("event") == "partitions_assigned":
            found.setdefault("partitions_assigned", at)
        elif "Restore complete" in entry.get("message", ""):
            found.setdefault("restored", at)
    return found
