"""The vipstream command as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agents.tools.broker import free_port
from schemas.export import REPOSITORY_DIR
from tests import factories as f
from tests.integration.kafka import produce
from tests.support import ROOT, Worker, cli, isolated_env, wait_for

pytestmark = pytest.mark.e2e


def test_schemas_writes_one_file_per_event_type(tmp_path: Path) -> None:
    result = cli(["schemas", str(tmp_path)], dict(os.environ))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in REPOSITORY_DIR.glob("*.json"))
    assert len(result.stdout.splitlines()) == len(written)
    for name in written:
        assert (tmp_path / name).read_text() == (REPOSITORY_DIR / name).read_text()


def test_bad_configuration_stops_with_the_key_named(tmp_path: Path) -> None:
    env = {**os.environ, "VIPSTREAM_KAFKA__PARTITIONS": "0"}
    result = cli(["replay", str(tmp_path / "x.jsonl")], env, check=False)
    assert result.returncode == 2
    assert "kafka.partitions" in result.stderr
    assert "VIPSTREAM_KAFKA__PARTITIONS" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_with_bad_configuration_exits_at_once() -> None:
    env = {**os.environ, "VIPSTREAM_INGEST__CURRENCY": "euros"}
    result = cli(["worker"], env, check=False, timeout=30)
    assert result.returncode == 2
    assert "ingest.currency" in result.stderr


def test_replay_reports_invalid_lines_and_sends_the_rest(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                f.raw(f.call(customer_id="C1")),
                b"{broken",
                b"",
                f.raw(f.order(customer_id="C2")),
                b'{"event_type": "gift", "customer_id": "C3"}',
            ]
        )
        + b"\n"
    )
    result = cli(["replay", "--quiet", str(path)], env, check=False)
    assert result.returncode == 1
    assert f"{path}:2: invalid JSON" in result.stderr
    assert f"{path}:5: unknown event_type 'gift'" in result.stderr
    assert "replayed 2 events" in result.stderr
    tail = cli(["tail", "orders", "--idle-timeout", "2"], env)
    assert '"customer_id":"C2"' in tail.stdout


def test_replay_of_a_missing_file_fails_clearly(env: dict[str, str]) -> None:
    result = cli(["replay", "/nonexistent.jsonl"], env, check=False)
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_tail_prints_events_and_stops_when_asked(env: dict[str, str]) -> None:
    produce(env, [("calls", b"C7", f.raw(f.call(customer_id="C7"))) for _ in range(3)])
    result = cli(["tail", "calls", "--max-events", "2"], env, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all('"customer_id":"C7"' in line for line in lines)


def test_broker_command_runs_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "broker", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=20, what="the broker to listen")
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0
        assert not listening()
        assert process.stdout is not None
        assert b"stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_missing_broker_binary_is_a_clear_error() -> None:
    env = {**os.environ, "CALF_TANSU_BIN": "/nonexistent/tansu"}
    result = cli(["broker", "--port", str(free_port())], env, check=False, timeout=30)
    assert result.returncode == 1
    assert "/nonexistent/tansu" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_started_before_the_broker_waits_for_it(tmp_path: Path) -> None:
    env = isolated_env(f"kafka://127.0.0.1:{free_port()}")  # nothing listens there
    worker = Worker(env, tmp_path / "data", tmp_path / "worker.log").start()
    try:
        wait_for(lambda: "not reachable yet" in worker.log(), timeout=30, what="a retry line")
        assert worker.process is not None
        assert worker.process.poll() is None, "the worker gave up instead of waiting"
    finally:
        worker.stop()


def test_exactly_once_on_the_embedded_broker_stops_with_the_setting_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The embedded broker has no transactions: the worker says so at start-up, naming
    the setting and how to change it, and exits, rather than failing on its first commit."""
    worker = Worker(
        {**env, "VIPSTREAM_PROCESSING_GUARANTEE": "exactly_once"},
        tmp_path / "data",
        tmp_path / "worker.log",
    ).start()
    assert worker.process is not None
    assert worker.process.wait(60) == 1
    log = worker.log()
    assert "processing_guarantee=exactly_once needs a broker with transactions" in log
    assert "VIPSTREAM_PROCESSING_GUARANTEE=at_least_once" in log
    assert "Traceback" not in log
