"""A generated history replayed through the CLI into a worker on the real broker: every
customer's figures equal an independent computation, and nothing is counted twice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from streams.units import to_micros
from tests.integration.conftest import WorkerFactory
from tests.oracle import figures_of_file
from tests.support import cli, running, simulate_history, wait_for

pytestmark = pytest.mark.integration


def test_replayed_history_gives_exact_figures(
    make_worker: WorkerFactory, env: dict[str, str], tmp_path: Path
) -> None:
    history = simulate_history(
        env,
        tmp_path / "history.jsonl",
        customers=250,
        days=200,
        seed=21,
        start="2026-01-01T00:00:00Z",
        extra=("--invalid-share", "0.01", "--duplicate-share", "0.02"),
    )
    lines = history.read_bytes().splitlines()
    expected, distinct = figures_of_file(history)

    with running(make_worker()) as worker:
        replay = cli(["replay", "--quiet", str(history)], env, check=False)
        assert replay.returncode == 1, "invalid lines must give a non-zero exit"
        assert "history.jsonl:" in replay.stderr  # reported with their line numbers
        sent = int(replay.stderr.split("replayed ")[1].split(" ")[0].replace(",", ""))
        assert 0.97 * len(lines) < sent < len(lines)

        wait_for(
            lambda: worker.metric("vipstream_events_consumed_total") >= sent,
            timeout=120,
            what=f"{sent} events consumed",
        )
        totals = worker.metrics()
        assert totals["vipstream_events_applied_total"] == distinct
        assert totals.get("vipstream_events_duplicate_total", 0) > 0
        invalid = totals.get("vipstream_events_invalid_total", 0)
        assert (
            totals["vipstream_events_applied_total"]
            + invalid
            + totals["vipstream_events_duplicate_total"]
            == sent
        )

        wrong = []
        for customer, figures in expected.items():
            status, body = worker.get(f"/customers/{customer}")
            assert status == 200, (customer, body)
            got = (
                round(body["lifetime_revenue"] * 1e6),
                round(body["lifetime_service_cost"] * 1e6),
                body["lifetime_contacts"],
            )
            want = (figures.revenue, figures.service_cost, figures.contacts)
            if got != want:
                wrong.append((customer, got, want))
            assert figures.first_seen is not None
            assert body["first_seen_at"].startswith(
                figures.first_seen.astimezone().strftime("%Y-%m-%d")
            )
            if figures.last_order is not None:
                assert to_micros(figures.last_order) // 1000 == _millis(body["last_order_at"])
        assert not wrong, f"{len(wrong)} customers differ, e.g. {wrong[:3]}"
        assert worker.get("/customers/nobody")[0] == 404


def _millis(text: str) -> int:
    return to_micros(datetime.fromisoformat(text.replace("Z", "+00:00"))) // 1000
