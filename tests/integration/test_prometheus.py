"""A real worker's /metrics under Prometheus's own tools: `promtool check metrics` finds
nothing to lint, consumer lag follows a burst of events and returns to zero, and a real
Prometheus server scrapes the worker, evaluates the alert rules without errors, and
answers every query of the Grafana dashboard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import CONSUMER_LAG
from agents.tools.broker import free_port
from agents.topics import INPUT_EVENT_TYPES
from tests import factories as f
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import produce, settings_for
from tests.support import (
    ROOT,
    TEST_ENV,
    Worker,
    cli,
    isolated_env,
    running,
    simulate_history,
    wait_for,
)

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
PARTITIONS = int(TEST_ENV["VIPSTREAM_KAFKA__PARTITIONS"])
BURST = 20_000
#: CONTRACT.md section 5, as sample names (counters with _total, the histogram's count)
CONTRACT_SAMPLES = {
    "vipstream_events_consumed_total",
    "vipstream_events_invalid_total",
    "vipstream_events_duplicate_total",
    "vipstream_tier_changes_total",
    "vipstream_customers",
    "vipstream_basic_question_spikes_total",
    "vipstream_care_tasks_total",
    "vipstream_care_tasks_suppressed_total",
    "vipstream_event_lag_seconds_count",
    "vipstream_watermark_timestamp_seconds",
}


@dataclass
class Fed:
    """A worker that has consumed a simulated history, some garbage and a duplicate."""

    worker: Worker
    env: dict[str, str]
    customers: set[str]

    def text(self) -> str:
        status, text = self.worker.get("/metrics")
        assert status == 200
        assert isinstance(text, str)
        return text

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (sample.labels, sample.value)
            for family in text_string_to_metric_families(self.text())
            for sample in family.samples
            if sample.name == name
        ]

    def lag(self) -> dict[tuple[str, str], float]:
        return {(s["topic"], s["partition"]): v for s, v in self.samples(CONSUMER_LAG)}


@pytest.fixture(scope="module")
def fed(
    broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Fed]:
    tmp = tmp_path_factory.mktemp("prometheus")
    env = isolated_env(broker.url)
    history = simulate_history(
        env, tmp / "history.jsonl", customers=200, days=90, seed=11, start="2026-01-05T00:00:00Z"
    )
    lines = history.read_bytes().splitlines()
    customers = {json.loads(line)["customer_id"] for line in lines}
    garbage: list[tuple[str, bytes | None, bytes | None]] = [
        ("calls", b"C1", b"not json"),
        ("orders", b"C1", f.raw(f.order(currency="USD"))),
        ("tickets", b"C1", f.raw(f.without(f.ticket(), "ticket_id"))),
    ]
    # the history is in time order: its last event is its customer's latest, so a copy
    # of it is a duplicate (an older one would be refused as late)
    duplicate = json.loads(lines[-1])
    topic = {t: key for key, t in INPUT_EVENT_TYPES.items()}[duplicate["event_type"]]
    garbage.append((topic, duplicate["customer_id"].encode(), lines[-1]))
    worker = Worker(env, tmp / "w1", tmp / "w1.log")
    failed_before = request.session.testsfailed
    with running(worker):
        cli(["replay", "--quiet", str(history)], env)
        produce(env, garbage)
        expected = len(lines) + len(garbage)
        fed = Fed(worker, env, customers)
        _wait(
            fed,
            lambda: (
                worker.metric("vipstream_events_consumed_total") >= expected
                and worker.metric("vipstream_events_duplicate_total") == 1
            ),
            "the history, the garbage and the duplicate consumed",
        )
        _wait(
            fed,
            lambda: (
                worker.metric("vipstream_tier_changes_total") > 0
                and worker.metric("vipstream_care_tasks_total") > 0
            ),
            "tier changes and care tasks, so that their labelled series exist",
        )
        yield fed
        if request.session.testsfailed > failed_before:
            print(f"\n--- log of the worker ---\n{worker.log()}")


def _wait(fed: Fed, condition: Any, what: str, timeout: float = 180) -> Any:
    try:
        return wait_for(condition, timeout=timeout, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- worker log ---\n{fed.worker.log()}") from None


def test_metrics_of_a_busy_worker_pass_promtool_lint(fed: Fed) -> None:
    text = fed.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    names = {sample.name for family in families.values() for sample in family.samples}
    assert names >= CONTRACT_SAMPLES
    labelled = {
        name: {key for s in family.samples for key in s.labels} for name, family in families.items()
    }
    assert labelled["vipstream_events_consumed"] == {"topic"}
    assert labelled["vipstream_events_invalid"] == {"topic", "reason"}
    assert labelled["vipstream_tier_changes"] == {"from_tier", "to_tier"}
    assert labelled["vipstream_care_tasks"] == {"kind"}
    assert labelled["vipstream_customers"] == {"tier"}
    assert labelled[CONSUMER_LAG] == {"topic", "partition"}
    values = {v for family in families.values() for s in family.samples for v in s.labels.values()}
    assert not values & fed.customers, "a customer id appears as a label value"

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs the Debian package prometheus"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lint = result.stdout + result.stderr
    assert result.returncode == 0, lint
    assert lint == "", lint


def test_consumer_lag_follows_a_burst_and_returns_to_zero(fed: Fed) -> None:
    topics = settings_for(fed.env).topics
    owned = {(topics.name(key), str(p)) for key in INPUT_EVENT_TYPES for p in range(PARTITIONS)}
    lag = _wait(fed, lambda: fed.lag() if set(fed.lag()) == owned else None, "every partition")
    assert set(lag.values()) == {0.0}, lag  # everything consumed
    consumed = fed.worker.metric("vipstream_events_consumed_total")

    customers = [f"B{i:04d}" for i in range(500)]
    burst: list[tuple[str, bytes | None, bytes | None]] = [
        ("calls", c.encode(), f.raw(f.call(customer_id=c, occurred_at="2026-04-05T12:00:00Z")))
        for i in range(BURST)
        for c in [customers[i % len(customers)]]
    ]
    producer = threading.Thread(target=produce, args=(fed.env, burst))
    seen: list[float] = []

    def drained() -> bool:
        total = sum(fed.lag().values())
        seen.append(total)
        done = fed.worker.metric("vipstream_events_consumed_total") >= consumed + BURST
        return not producer.is_alive() and done and total == 0

    producer.start()
    try:
        _wait(fed, drained, "the burst consumed and the lag back to zero")
    finally:
        producer.join(timeout=120)
    assert max(seen) > 0, "no scrape saw the backlog of the burst"
    # counted from the processed position, not from offset 0: at most the burst itself
    assert max(seen) <= BURST, max(seen)


class Prometheus:
    """A Prometheus server on loopback with its own storage, scraping one worker."""

    def __init__(self, tmp: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: `make test` installs the Debian package"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "vipstream", "static_configs": [{"targets": [target]}]}
            ],
        }
        self.config = tmp / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # a bad query: 400 with the reason
            return json.loads(error.read())

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{self.log()}"
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
            return bool(response.status == 200)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"prometheus ignored SIGTERM:\n{self.log()}") from None
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def prometheus(fed: Fed, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, f"127.0.0.1:{fed.worker.web_port}")
    try:
        wait_for(server.ready, timeout=60, what="prometheus ready")
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"prometheus exited {code} on SIGTERM:\n{server.log()}"


def test_prometheus_scrapes_the_worker(fed: Fed, prometheus: Prometheus) -> None:
    consumed = wait_for(
        lambda: prometheus.query("vipstream_events_consumed_total > 0"),
        timeout=60,
        what="a scrape with consumed events",
    )
    assert {series["metric"]["job"] for series in consumed} == {"vipstream"}
    assert prometheus.value('up{job="vipstream"}') == 1.0
    # the worker is idle now: Prometheus holds exactly what the worker counts
    total = fed.worker.metric("vipstream_events_consumed_total")
    wait_for(
        lambda: prometheus.value("sum(vipstream_events_consumed_total)") == total,
        timeout=30,
        what=f"Prometheus to see {total} consumed events",
    )
    assert prometheus.value(f"count({CONSUMER_LAG})") == len(INPUT_EVENT_TYPES) * PARTITIONS


def test_prometheus_evaluates_every_alert_rule_without_error(
    fed: Fed, prometheus: Prometheus
) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []

    rules = wait_for(evaluated, timeout=60, what="every rule evaluated once")
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert broken == {}
    wanted = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {rule.get("alert") or rule["record"] for g in wanted["groups"] for rule in g["rules"]}
    assert {r["name"] for r in rules} == names


def test_prometheus_answers_every_dashboard_query(fed: Fed, prometheus: Prometheus) -> None:
    wait_for(
        lambda: prometheus.query('up{job="vipstream"} == 1'), timeout=60, what="a first scrape"
    )
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "vipstream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for expr in exprs:
        prometheus.query(expr.replace("$__rate_interval", "1m"))  # fails on a bad query
    # the tier pyramid has the worker's figures
    customers = fed.worker.metric("vipstream_customers")
    assert customers >= len(fed.customers)
    wait_for(
        lambda: prometheus.value("sum(vipstream_customers)") == customers,
        timeout=30,
        what=f"Prometheus to see {customers} customers in the tiers",
    )
