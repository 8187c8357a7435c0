"""The persistent table store: a worker restarted on its RocksDB data directory serves the
same figures as before, having read only what the changelog gained since, where a worker
with the in-memory store (or a new disk) rebuilds everything from the changelog, in bulk
(agents/faust_port/restore.py) or through Faust's recovery: the same answers either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import WorkerFactory
from tests.oracle import figures_of_file
from tests.support import Worker, cli, simulate_history, wait_for

pytestmark = pytest.mark.integration

ROCKSDB = {"VIPSTREAM_STORE": "rocksdb://"}


def snapshot(worker: Worker, customers: list[str]) -> dict[str, Any]:
    """Everything a client can see: every customer and the population report (once the
    worker has read the population summaries again: /tiers answers 503 until then)."""
    wait_for(lambda: worker.get("/tiers")[0] == 200, timeout=30, what="the population read")
    return {
        "customers": {c: worker.get(f"/customers/{c}") for c in customers},
        "tiers": worker.get("/tiers"),
    }


def settled(worker: Worker, events: int) -> None:
    """Every event applied, every day that can close tiered, and that state committed."""
    wait_for(
        lambda: worker.metric("vipstream_events_consumed_total") >= events,
        timeout=120,
        what=f"{events} events consumed",
    )

    def tiered_through_watermark() -> bool:
        m = worker.metrics()
        watermark = m.get("vipstream_watermark_timestamp_seconds", 0.0)
        merged = m.get("vipstream_distribution_day_timestamp_seconds", 0.0)
        return bool(watermark) and merged >= watermark // 86400 * 86400

    wait_for(tiered_through_watermark, timeout=120, what="the last closable day tiered")
    commits = worker.metric("vipstream_commit_flush_seconds_count")
    wait_for(
        lambda: worker.metric("vipstream_commit_flush_seconds_count") >= commits + 2,
        timeout=30,
        what="two more commits (the final state durable)",
    )


def test_a_restart_on_the_same_disk_reads_only_the_new_changelog(
    make_worker: WorkerFactory, env: dict[str, str], tmp_path: Path
) -> None:
    history = simulate_history(
        env, tmp_path / "history.jsonl", customers=300, days=90, seed=8, start="2026-03-01T00:00Z"
    )
    expected, distinct = figures_of_file(history)
    customers = sorted(expected)

    first = make_worker("disk", **ROCKSDB).start().wait_healthy()
    cli(["replay", "--quiet", str(history)], env)
    settled(first, distinct)
    before = snapshot(first, customers)
    written = first.metric("vipstream_state_writes_total")
    assert first.stop() == 0

    restarted = make_worker("disk", **ROCKSDB).start().wait_healthy()  # the same datadir
    after_restart = snapshot(restarted, customers)
    from_disk = restarted.metric("vipstream_state_recovered_records_total")
    assert restarted.stop() == 0

    rebuilt = make_worker("memory").start().wait_healthy()
    after_rebuild = snapshot(rebuilt, customers)
    from_changelog = rebuilt.metric("vipstream_state_recovered_records_total")
    in_bulk = rebuilt.metric("vipstream_state_recovered_in_bulk_records_total")
    replayed = rebuilt.metric("vipstream_events_applied_total")
    assert rebuilt.stop() == 0

    # Faust's own recovery, one record at a time (agents/faust_port/restore.py off)
    by_faust = make_worker("faust", VIPSTREAM_KAFKA__BULK_RESTORE="false").start().wait_healthy()
    after_faust = snapshot(by_faust, customers)

    assert before["tiers"][0] == 200
    assert sum(1 for status, _ in before["customers"].values() if status == 200) == len(expected)
    assert after_restart == before, "the restarted worker's answers differ"
    assert after_rebuild == before, "the rebuilt worker's answers differ"
    assert after_faust == before, "the worker that recovered through Faust answers otherwise"
    # the rebuild read the changelog in bulk, the last worker through Faust alone
    assert in_bulk == from_changelog
    assert by_faust.metric("vipstream_state_recovered_in_bulk_records_total") == 0
    assert by_faust.metric("vipstream_state_recovered_records_total") >= from_changelog
    # the rebuild read every changelog record; the restart only the few it had not stored
    assert from_changelog >= written
    assert from_disk <= 0.01 * from_changelog, (from_disk, from_changelog)
    assert replayed == 0  # nothing replayed twice
