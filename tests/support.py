"""Helpers for tests that run vipstream as a user does: subprocesses on a real broker."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents.metrics import sample_totals
from agents.settings import KafkaSettings
from agents.tools.broker import free_port
from agents.worker.process import spawn_worker

ROOT = Path(__file__).resolve().parents[1]
_ids = itertools.count(1)

#: Group timings for tests: a join takes about the rebalance timeout on the embedded broker.
TEST_ENV = {
    "VIPSTREAM_KAFKA__PARTITIONS": "4",
    "VIPSTREAM_KAFKA__REBALANCE_TIMEOUT_SECONDS": "2",
    "VIPSTREAM_KAFKA__SESSION_TIMEOUT_SECONDS": "6",
    "VIPSTREAM_KAFKA__HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VIPSTREAM_KAFKA__COMMIT_INTERVAL_SECONDS": "0.5",
    "VIPSTREAM_WEB__ADVERTISED_HOST": "127.0.0.1",
}


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll until `condition()` is truthy; its value. Fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:  # not up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_error!r})" if last_error else "")
    )


def isolated_env(broker_url: str, **extra: str) -> dict[str, str]:
    """An environment with no stray VIPSTREAM_* settings, a unique app id and topic prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIPSTREAM_")}
    run = f"t{os.getpid()}-{next(_ids)}"
    env.update(TEST_ENV)
    env.update(
        {
            "VIPSTREAM_BROKER": broker_url,
            "VIPSTREAM_APP_ID": run,
            "VIPSTREAM_TOPICS__PREFIX": f"{run}-",
        }
    )
    env.update(extra)
    return env


def cli(
    args: list[str], env: dict[str, str], *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # the exit code is checked below, with the output in the message
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"vipstream {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


#: every worker process a test started: those a failed test left running are killed when
#: the test process exits, so they do not outlive their broker and load the next run
_STARTED: list[subprocess.Popen[bytes]] = []


_PROGRESS_METRICS = (
    "vipstream_events_consumed_total",
    "vipstream_events_applied_total",
    "vipstream_events_duplicate_total",
    "vipstream_commit_flush_seconds_count",
    "vipstream_consumer_lag_messages",
    "vipstream_state_recovered_records_total",
    "vipstream_agent_crashes_total",
    "vipstream_commit_stalled_partitions",
)


@atexit.register
def _kill_leftover_workers() -> None:
    for process in _STARTED:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Worker:
    """A `vipstream worker` subprocess."""

    env: dict[str, str]
    datadir: Path
    log_path: Path
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _dumped_at: int = -1  # the log's size when the stacks were asked for (-1: never)
    host: str = "127.0.0.1"  # where its web port is reached
    prefix: tuple[str, ...] = ()  # a command that execs it (a network namespace)
    ca_file: Path | None = None  # HTTPS, verified against this CA (web.tls_* set)

    @property
    def url(self) -> str:
        scheme = "http" if self.ca_file is None else "https"
        return f"{scheme}://{self.host}:{self.web_port}"

    def start(self) -> Worker:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.process = spawn_worker(
            web_port=self.web_port,
            datadir=self.datadir,
            env=self.env,
            log_path=self.log_path,
            cwd=ROOT,
            prefix=self.prefix,
        )
        _STARTED.append(self.process)
        return self

    def wait_healthy(self, timeout: float = 60) -> Worker:
        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log()}")
            return self.get("/healthz")[0] == 200

        wait_for(healthy, timeout=timeout, what=f"worker on {self.url} to be healthy")
        return self

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            context = (
                None
                if self.ca_file is None
                else ssl.create_default_context(cafile=str(self.ca_file))
            )
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            body, status = error.read(), error.code
        kind = "json" if body[:1] in (b"{", b"[") else "text"
        return status, orjson.loads(body) if kind == "json" else body.decode()

    def metrics(self) -> dict[str, float]:
        """Every sample summed over its labels (e.g. events consumed on all topics)."""
        status, text = self.get("/metrics")
        if status == 503:  # still waiting for the broker: not serving yet, like a refusal
            raise ConnectionRefusedError(f"{self.url}/metrics: 503 {text!r}")
        assert status == 200
        return sample_totals(text)

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the worker commits and leaves the group."""
        process = self.process
        if process is None or process.poll() is not None:
            return process.returncode if process else 0
        os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = self.dump_stacks()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{stacks}") from None

    def dump_stacks(self, wait: float = 5.0) -> str:
        """Ask the worker for every thread's stack and every asyncio task's (SIGUSR1: the
        Faust worker prints them to its log); the log from there on, for a test failure
        that a hang caused."""
        process = self.process
        if process is None or process.poll() is not None:
            return self.log()
        start = self._dumped_at = self.log_path.stat().st_size
        os.kill(process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if self.log_path.stat().st_size > start and "TASKS" in self._log_from(start):
                time.sleep(0.5)  # let it finish writing
                break
        return f"stacks of {self.log_path} (pid {process.pid}):\n{self._log_from(start)[-80000:]}"

    def _log_from(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def account(self, lines: int = 30) -> str:
        """A short account of a worker that did not get where a test waited for it: alive or
        not, its progress counters, and the last lines of its log."""
        process = self.process
        state = "not started" if process is None else f"pid {process.pid}, "
        if process is not None:
            code = process.poll()
            state += "running" if code is None else f"exited {code}"
        try:
            figures = self.metrics()
            progress = ", ".join(
                f"{name.removeprefix('vipstream_')}={figures.get(name, 0):g}"
                for name in _PROGRESS_METRICS
            )
        except Exception as exc:  # an account, not a check
            progress = f"no metrics ({exc!r})"
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
                text = response.read().decode()
            found = (
                re.match(r'.*partition="(\d+)",topic="([^"]+)"} (\S+)', line)
                for line in text.splitlines()
                if line.startswith("vipstream_committed_offset{")
            )
            committed = " ".join(
                f"{m[2]}[{m[1]}]={float(m[3]):.0f}"
                for m in sorted(filter(None, found), key=lambda m: (m[2], int(m[1])))
            )
            progress += f"\ncommitted offsets (the worker's own record): {committed}"
        except Exception as exc:
            progress += f"\nno committed offsets ({exc!r})"
        with self.log_path.open("rb") as handle:  # up to a stack dump of our own asking
            text = handle.read(self._dumped_at).decode(errors="replace")
        tail = text.splitlines()
        return f"{self.log_path.name} ({state}): {progress}\nlast log lines:\n" + "\n".join(
            tail[-lines:]
        )

    def kill(self, *, wait_out_session: bool = False) -> None:
        """kill -9: no commit, no goodbye.

        `wait_out_session`: return only once the broker must have expired the dead
        member (its session timeout and a margin), as a supervisor restarting it would.
        On the embedded broker (Tansu 0.6) a member that joins while a dead one's session
        is still running can be handed a zero-length assignment, which ends aiokafka's
        group coordination: the worker then stops (agents/worker/app.py), and a test of the data
        would fail for a broker bug. On Apache Kafka the new member simply waits.
        """
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            if wait_out_session:
                timeout = self.env.get(
                    "VIPSTREAM_KAFKA__SESSION_TIMEOUT_SECONDS",
                    KafkaSettings.model_fields["session_timeout_seconds"].default,
                )
                # the broker checks expiry when a request arrives, and holds a rejoin 3 s
                time.sleep(float(timeout) + 5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    worker.start()
    try:
        yield worker.wait_healthy()
    finally:
        worker.kill()


def simulate_history(
    env: dict[str, str],
    path: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    start: str,
    extra: tuple[str, ...] = (),
) -> Path:
    """A seeded JSONL history written by `vipstream simulate`, as a user would."""
    cli(
        [
            "simulate",
            "--customers",
            str(customers),
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--start",
            start,
            *extra,
            "--output",
            str(path),
        ],
        env,
    )
    return path


def settle(
    workers: list[Worker],
    caught_up: int | Callable[[], bool],
    lag: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Wait until the input is consumed (`caught_up`: the number of messages the workers
    consume between them, or a condition) and the tiers stop moving; the /tiers report.
    `lag` describes what is still missing, for the failure of a run that never catches up."""
    if isinstance(caught_up, int):
        sent = caught_up

        def consumed_all() -> bool:
            return sum(w.metric("vipstream_events_consumed_total") for w in workers) >= sent

        caught_up = consumed_all
    try:
        wait_for(caught_up, timeout=180, what="every event consumed", interval=0.5)
    except AssertionError as exc:  # a hang: where every worker is stuck
        # the stacks first, the short account last: a CI report keeps a failure's end
        stacks = "\n\n".join(w.dump_stacks() for w in workers)
        accounts = [w.account() for w in workers]
        if lag is not None:
            with contextlib.suppress(Exception):
                accounts.append(f"not committed to the end (committed, end): {lag()}")
        account = "\n\n".join(accounts)
        raise AssertionError(f"{exc}\n\n{stacks}\n\n{exc}\n{account}") from None
    last: list[Any] = [None, 0]

    def stable() -> dict[str, Any] | None:
        status, body = workers[0].get("/tiers")
        if status != 200 or body["counts_as_of"] != body["as_of"]:
            return None
        if body["as_of"] != last[0]:
            last[0], last[1] = body["as_of"], 0
            return None
        last[1] += 1
        return body if last[1] >= 10 else None  # unchanged for 10 polls (~3 s)

    report: dict[str, Any] = wait_for(stable, timeout=180, what="the last day tiered", interval=0.3)
    return report


def agreeing_answer(one: Worker, two: Worker, customer: str) -> tuple[int, Any] | None:
    """Both workers' answer for a customer when they agree and it is found, else None.
    Routed to the same owner, the answers are the same; but the value engine may close a
    day between the two requests: a caller asks again."""
    first, second = one.get(f"/customers/{customer}"), two.get(f"/customers/{customer}")
    return first if first[0] == 200 and first == second else None


def without_checkpoints(records: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A state table's records without the value ledger's checkpoints and journal
    (agents/engine/checkpoint.py), which follow commit timing, not the input: what two
    runs of the same input must agree on. Progress records lose their checkpoint
    reference likewise, and the summaries of days before their last two; they are
    compared as data."""
    kept: dict[bytes, bytes] = {}
    for key, value in records.items():
        if key.startswith((b"\x00ledger\x00", b"\x00journal\x00")):
            continue
        if key.startswith(b"\x00progress\x00"):
            progress = orjson.loads(value)
            progress.pop("checkpoint", None)
            # summaries of days before the last two are kept only while another
            # partition may still have to merge them (agents/engine/closing.py): how long
            # follows commit timing
            closed = progress.get("closed_day")
            if closed is not None:
                progress["published"] = {
                    d: s for d, s in progress["published"].items() if int(d) >= closed - 1
                }
            # a restart reads the record back: its maps may list their keys in another order
            kept[key] = orjson.dumps(progress, option=orjson.OPT_SORT_KEYS)
            continue
        kept[key] = value
    return kept


def effective_table(local: Any, settings: Any) -> dict[bytes, bytes]:
    """What a worker that starts on these table records sees (`local`: an
    agents.engine.store.DictStore): every customer's state brought up to the derived
    figures its partition's journal and checkpoint patch it with, encoded, and the
    progress records as `without_checkpoints` leaves them. Two runs of the same input
    must agree on it, however their commits fell."""
    from agents.engine.harness import Harness
    from agents.engine.store import DictStore
    from streams.codec import encode_state

    copy = DictStore()
    copy.data, copy.partitions = dict(local.data), dict(local.partitions)
    harness = Harness(settings, local=copy)
    table = without_checkpoints(copy.data)
    for key in table:
        if not key.startswith(b"\x00"):
            state = harness.store.get(key, copy.partitions[key])
            assert state is not None
            table[key] = encode_state(state)
    return table
