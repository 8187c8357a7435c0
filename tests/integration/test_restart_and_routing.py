"""Duplicate memory survives a restart with the state; any worker answers for any customer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import factories as f
from tests.integration.conftest import WorkerFactory
from tests.integration.kafka import produce
from tests.oracle import figures_of_file
from tests.support import agreeing_answer, cli, running, simulate_history, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("how", ["sigterm", "kill -9"])
def test_duplicates_are_ignored_after_a_restart(
    make_worker: WorkerFactory, env: dict[str, str], how: str
) -> None:
    first = f.order(event_id="once", amount=10.0)
    worker = make_worker().start().wait_healthy()
    produce(env, [("orders", b"C1", f.raw(first))])
    wait_for(lambda: worker.get("/customers/C1")[0] == 200, timeout=30, what="C1 applied")
    # the state must be committed before the crash for a restart to remember it
    wait_for(
        lambda: worker.metric("vipstream_state_writes_total") >= 1,
        timeout=30,
        what="state written to the changelog",
    )
    wait_for(
        lambda: worker.metric("vipstream_commit_flush_seconds_count") >= 2,
        timeout=30,
        what="a commit after the write",
    )
    if how == "sigterm":
        assert worker.stop() == 0
    else:
        worker.kill(wait_out_session=True)

    with running(make_worker("w2")) as restarted:
        produce(
            env,
            [
                ("orders", b"C1", f.raw(first)),  # the same event again
                ("orders", b"C1", f.raw(f.order(event_id="new", amount=5.0))),
            ],
        )
        wait_for(
            lambda: restarted.get("/customers/C1")[1].get("lifetime_revenue") == 15.0,
            timeout=60,
            what="the new event applied after the restart",
        )
        assert restarted.metric("vipstream_events_duplicate_total") == 1


def test_any_worker_answers_for_any_customer(
    make_worker: WorkerFactory, env: dict[str, str], tmp_path: Path
) -> None:
    history = simulate_history(
        env, tmp_path / "history.jsonl", customers=60, days=60, seed=4, start="2026-02-01T00:00:00Z"
    )
    expected, distinct = figures_of_file(history)
    with running(make_worker("w1")) as one, running(make_worker("w2")) as two:
        wait_for(
            lambda: one.get("/healthz")[0] == 200 and two.get("/healthz")[0] == 200,
            timeout=60,
            what="both workers healthy after the rebalance",
        )
        cli(["replay", "--quiet", str(history)], env)
        wait_for(
            lambda: (
                one.metric("vipstream_events_applied_total")
                + two.metric("vipstream_events_applied_total")
                == distinct
            ),
            timeout=60,
            what="the history applied across both workers",
        )
        assert one.metric("vipstream_events_applied_total") > 0
        assert two.metric("vipstream_events_applied_total") > 0  # the work is shared
        for customer, figures in expected.items():
            answers = wait_for(
                lambda c=customer: agreeing_answer(one, two, c),
                timeout=30,
                what=f"both workers giving the same answer for {customer}",
                interval=0.5,
            )
            status, body = answers
            assert status == 200
            assert round(body["lifetime_revenue"] * 1e6) == figures.revenue
