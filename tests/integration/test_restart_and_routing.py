"""Duplicate memory survives a restart with the state; any worker answers for any customer."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trustme

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


def test_data_endpoints_need_a_bearer_token_and_routing_carries_it_over_https(
    make_worker: WorkerFactory, env: dict[str, str], tmp_path: Path
) -> None:
    """With web.auth_token_file and web.tls_*: every endpoint is served over HTTPS;
    /customers, /tiers and /dashboard answer 401 without a token or with a wrong one, 200
    with any listed token, on either worker (a request forwarded to the customer's owner
    goes over HTTPS, verified against web.tls_cafile, and keeps its token); /healthz and
    /metrics stay open."""
    tokens = tmp_path / "tokens"
    tokens.write_text("first-token-7c1d0e\nsecond-token-92ab4f\n")
    ca = trustme.CA()
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "web.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued = ca.issue_cert("127.0.0.1", "localhost")
    issued.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    secured = {
        "VIPSTREAM_WEB__AUTH_TOKEN_FILE": str(tokens),
        "VIPSTREAM_WEB__TLS_CERTFILE": str(cert_file),
        "VIPSTREAM_WEB__TLS_KEYFILE": str(key_file),
        "VIPSTREAM_WEB__TLS_CAFILE": str(ca_file),
    }
    history = simulate_history(
        env, tmp_path / "history.jsonl", customers=30, days=45, seed=6, start="2026-02-01T00:00:00Z"
    )
    expected, distinct = figures_of_file(history)
    good = {"Authorization": "Bearer second-token-92ab4f"}
    workers = [make_worker(name, **secured) for name in ("w1", "w2")]
    for worker in workers:
        worker.ca_file = ca_file
    with running(workers[0]) as one, running(workers[1]) as two:
        wait_for(
            lambda: one.get("/healthz")[0] == 200 and two.get("/healthz")[0] == 200,
            timeout=60,
            what="both workers healthy (no token needed)",
        )
        # HTTPS only: plain HTTP gets no answer
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{one.web_port}/healthz", timeout=5)
        cli(["replay", "--quiet", str(history)], env)
        wait_for(
            lambda: (
                one.metric("vipstream_events_applied_total")
                + two.metric("vipstream_events_applied_total")
                == distinct
            ),
            timeout=60,
            what="the history applied across both workers (/metrics open)",
        )
        customer = sorted(expected)[0]
        for path in ("/tiers", f"/customers/{customer}", "/dashboard"):
            assert one.get(path)[0] == 401, path
            assert one.get(path, {"Authorization": "Bearer first-token-7c1d0"})[0] == 401
            assert one.get(path, {"Authorization": "Basic Zmlyc3QtdG9rZW4="})[0] == 401
        for name in expected:
            for worker in (one, two):
                wait_for(
                    lambda w=worker, c=name: w.get(f"/customers/{c}", good)[0] == 200,
                    timeout=30,
                    what=f"{name} answered with the token",
                    interval=0.5,
                )
    assert "first-token-7c1d0e" not in one.log_path.read_text()


def test_a_worker_stopped_right_after_changes_exits_cleanly(
    make_worker: WorkerFactory, env: dict[str, str]
) -> None:
    """SIGTERM with changes not yet committed: the stop's commits (which checkpoint
    every changed ledger, encoded in the checkpoint thread) go through, the worker exits
    0 with no error logged, and a restart starts from those checkpoints."""
    worker = make_worker().start().wait_healthy()
    customers = [f"S{i}".encode() for i in range(12)]
    produce(
        env,
        [
            ("orders", key, f.raw(f.order(customer_id=key.decode(), amount=3.0)))
            for key in customers
        ],
    )
    wait_for(
        lambda: all(worker.get(f"/customers/{k.decode()}")[0] == 200 for k in customers),
        timeout=30,
        what="the orders applied",
    )
    assert worker.stop() == 0
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:6000]
    with running(make_worker("again")) as restarted:
        restarted.wait_healthy()
        for key in customers:
            status, body = restarted.get(f"/customers/{key.decode()}")
            assert status == 200
            assert body["lifetime_revenue"] == 3.0
