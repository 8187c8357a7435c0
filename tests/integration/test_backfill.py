"""`vipstream backfill`: a history computed in one process, or in two that exchange their
population summaries (`--processes 2`), and written to the state table's changelog gives
a new deployment exactly what pushing the same history through the live pipeline gives:
the same answers for every customer, the same population, and (with --emit-outputs) the
same output events, and the same dead letters."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import RunningBroker
from tests.integration.outcome import OUTPUTS, Outcome, outcome
from tests.oracle import figures_of_file
from tests.support import Worker, cli, isolated_env, simulate_history

pytestmark = pytest.mark.integration

TOPICS = (*OUTPUTS, "dead-letters")


def test_backfill_gives_what_the_live_pipeline_gives(broker: RunningBroker, tmp_path: Path) -> None:
    live_env = isolated_env(broker.url)
    history = simulate_history(
        live_env,
        tmp_path / "history.jsonl",
        customers=300,
        days=120,
        seed=17,
        start="2026-01-05T00:00:00Z",
        extra=("--invalid-share", "0.01", "--duplicate-share", "0.02"),
    )
    customers = sorted(figures_of_file(history)[0])

    cli(["replay", "--quiet", str(history)], live_env, check=False)  # exits 1: bad lines
    live_worker = Worker(live_env, tmp_path / "live", tmp_path / "live.log").start()
    try:
        live_worker.wait_healthy()
        live = outcome(live_env, live_worker, customers, TOPICS)
    finally:
        live_worker.stop()

    assert sum(len(ids) for ids in live.outputs.values()) > 500
    assert dead_letters(live), "the history's bad lines should be dead-lettered"
    summaries: list[str] = []
    for processes in ("1", "2"):
        seeded, summary = backfilled(
            broker, tmp_path / f"p{processes}", history, customers, processes
        )
        summaries.append(summary)
        # dead letters name their source topic (and their ids hash it), which differs
        assert dead_letters(seeded) == dead_letters(live), processes
        del seeded.outputs["dead-letters"]
        seeded.assert_same(without_dead_letters(live))
    # what both report: lines, events, duplicates, customers, days closed, outputs counted
    assert summaries[0] == summaries[1]


def backfilled(
    broker: RunningBroker, work: Path, history: Path, customers: list[str], processes: str
) -> tuple[Outcome, str]:
    """A new deployment seeded by `backfill --processes N`, once its worker is ready; and
    the backfill's report, without its timing."""
    env = isolated_env(broker.url, VIPSTREAM_STORE="rocksdb://")
    run = cli(
        ["backfill", "--quiet", "--emit-outputs", "--processes", processes, str(history)],
        env,
        check=False,
    )
    assert run.returncode == 1, run.stderr  # the unroutable lines are reported
    assert "history.jsonl:" in run.stderr
    assert "state records written to the changelog" in run.stderr
    assert f"with {processes} process" in run.stderr
    again = cli(["backfill", "--quiet", str(history)], env, check=False)
    assert again.returncode == 1
    assert "already holds" in again.stderr  # a backfill seeds a new deployment only

    worker = Worker(env, work, work.with_suffix(".log")).start()
    try:
        worker.wait_healthy()
        seeded = outcome(env, worker, customers, TOPICS)
        assert worker.metric("vipstream_events_consumed_total") == 0  # nothing to replay
        assert worker.metric("vipstream_state_recovered_records_total") > len(customers)
    finally:
        worker.stop()
    summary = re.sub(r" in [0-9.]+s with \d+ process(es)? \([0-9,]+ lines/s\)", "", run.stderr)
    # a client retrying a produce while a new topic's leader is elected is not a result
    summary = re.sub(r"(?m)^WARNING aiokafka\.\S+: .*\n", "", summary)
    return seeded, summary.replace(env["VIPSTREAM_TOPICS__PREFIX"], "")


def without_dead_letters(run: Outcome) -> Outcome:
    outputs = {t: ids for t, ids in run.outputs.items() if t != "dead-letters"}
    return Outcome(run.report, run.customers, outputs)


def dead_letters(run: Outcome) -> list[tuple[str, int, int, str]]:
    """(reason, partition, offset, payload) of every dead letter."""
    letters = [orjson.loads(c[0]) for c in run.outputs["dead-letters"].values()]
    return sorted((d["reason"], d["partition"], d["offset"], d["payload"]) for d in letters)
