"""The broker goes away and comes back: the worker reconnects by itself, loses nothing,
counts nothing twice, and says so on /healthz meanwhile.

Each test runs its own embedded broker: stopping the session's broker would disturb the
other tests.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from agents.tools.broker import free_port
from agents.tools.kafka_broker import KafkaNode
from tests.integration.kafka import produce, read_topic, settings_for
from tests.oracle import expected_figures
from tests.support import Worker, isolated_env, running, wait_for

pytestmark = pytest.mark.integration

PAUSE_SECONDS = 20.0
CUSTOMERS = 50


def order(n: int) -> tuple[bytes, bytes]:
    """Event n of a steady stream: an order of a customer, with a distinct amount."""
    customer = f"C{n % CUSTOMERS}"
    body = {
        "event_type": "order",
        "event_id": f"o{n}",
        "customer_id": customer,
        "occurred_at": f"2026-03-02T10:{n // 1000 % 60:02d}:{n % 60:02d}Z",
        "kind": "purchase",
        "amount": (n % 997) / 4,
        "currency": "EUR",
    }
    return customer.encode(), orjson.dumps(body)


class SteadyProducer(threading.Thread):
    """Sends event after event, each until the broker acknowledges it (again after an
    error: a copy is possible, the id makes it a duplicate), until stopped."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.settings = settings_for(env)
        self.sent: list[bytes] = []  # every value acknowledged, in order
        self.errors: list[str] = []
        self._stop_after: int | None = None
        self.failure: BaseException | None = None

    def stop_after(self, more: int) -> None:
        self._stop_after = len(self.sent) + more

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the test
            self.failure = exc

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=5,
            request_timeout_ms=60_000,  # longer than the pause: requests wait it out
        )
        await producer.start()
        topic = self.settings.topics.name("orders")
        try:
            for n in itertools.count():
                if self._stop_after is not None and len(self.sent) >= self._stop_after:
                    return
                key, value = order(n)
                while True:
                    try:
                        await producer.send_and_wait(topic, value, key=key)
                        break
                    except Exception as exc:  # the pause: send the same event again
                        self.errors.append(repr(exc))
                self.sent.append(value)
                if n % 20 == 19:
                    await asyncio.sleep(0.01)  # a steady ~1-2k events/s, not a flood
        finally:
            await producer.stop()


def test_a_paused_broker_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    with KafkaNode() as broker:
        # Requests time out during the pause (7 s, the least above the tests' 6 s session
        # timeout), so the worker must notice the dead connection and reconnect. With
        # the default 30 s, a 20 s stall is ridden out on the open connections.
        env = isolated_env(broker.url, VIPSTREAM_KAFKA__REQUEST_TIMEOUT_SECONDS="7")
        worker = Worker(env, tmp_path / "w1", tmp_path / "w1.log")
        with running(worker):
            stream = SteadyProducer(env)
            stream.start()
            wait_for(
                lambda: worker.metric("vipstream_events_applied_total") >= 2000,
                timeout=60,
                what="events flowing",
            )

            broker.pause()
            paused_at = time.monotonic()
            status, body = wait_for(
                lambda: _unhealthy(worker),
                timeout=15,
                what="/healthz to report the outage",
                interval=0.5,
            )
            noticed_after = time.monotonic() - paused_at
            assert (status, body["status"]) == (503, "broker_unreachable"), body

            def outage_reported_throughout() -> bool:
                assert worker.get("/healthz")[0] == 503, "healthy while the broker is stopped"
                return time.monotonic() - paused_at >= PAUSE_SECONDS

            wait_for(
                outage_reported_throughout,
                timeout=PAUSE_SECONDS + 10,
                what="the end of the pause",
                interval=1.0,
            )
            broker.resume()
            resumed_at = time.monotonic()
            worker.wait_healthy(timeout=60)
            recovered_after = time.monotonic() - resumed_at
            stream.stop_after(2000)  # and events keep flowing after it
            stream.join(timeout=60)
            assert not stream.is_alive()
            assert stream.failure is None, stream.failure
            expected, distinct = expected_figures(stream.sent)
            assert distinct == len(stream.sent)
            try:
                wait_for(
                    lambda: worker.metric("vipstream_events_applied_total") == distinct,
                    timeout=60,
                    what=f"all {distinct} events applied",
                )
            except AssertionError as exc:  # a hang: where the worker is stuck
                raise AssertionError(
                    f"{exc}\n\n{worker.dump_stacks()}\n\n{exc}\n{worker.account()}"
                ) from None
            on_topic = len(read_topic(env, "orders", idle=1.0))  # retried sends may copy
            wait_for(
                lambda: worker.metric("vipstream_events_consumed_total") >= on_topic,
                timeout=30,
                what="every message consumed",
            )
            consumed = worker.metric("vipstream_events_consumed_total")
            # whatever is consumed and not applied is a copy or a redelivery, never lost
            assert worker.metric("vipstream_events_duplicate_total") == consumed - distinct
            for customer, figures in expected.items():
                status, body = worker.get(f"/customers/{customer}")
                assert status == 200
                assert round(body["lifetime_revenue"] * 1e6) == figures.revenue, customer
                assert body["lifetime_purchases"] == len(
                    [v for v in stream.sent if orjson.loads(v)["customer_id"] == customer]
                )
            assert worker.metric("vipstream_events_invalid_total") == 0
            assert worker.metric("vipstream_processing_errors_total") == 0
            assert worker.get("/healthz") == (200, {"status": "ok", "detail": "consuming"})
            assert worker.process is not None
            assert worker.process.poll() is None
            log = worker.log_path.read_text(errors="replace")
            assert "Crashed reason" not in log
            print(
                f"\noutage reported after {noticed_after:.1f}s, healthy {recovered_after:.1f}s "
                f"after the resume; {distinct} events, "
                f"{on_topic - distinct} copies on the topic from {len(stream.errors)} failed "
                f"sends, {int(consumed - on_topic)} redelivered to the worker"
            )


def _unhealthy(worker: Worker) -> tuple[int, dict[str, str]] | None:
    status, body = worker.get("/healthz")
    return (status, body) if status != 200 else None


def test_a_worker_started_before_the_broker_waits_for_it(tmp_path: Path) -> None:
    port = free_port()
    env = isolated_env(f"kafka://127.0.0.1:{port}")
    worker = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        line = f"broker kafka://127.0.0.1:{port} not reachable yet (attempt 3"
        wait_for(lambda: line in worker.log(), timeout=30, what="the third retry logged")
        assert worker.process is not None
        assert worker.process.poll() is None, worker.log()
        assert "retrying" in worker.log()
        # probes see why it does not consume yet
        assert worker.get("/healthz") == (503, {"status": "broker_unreachable"})

        with KafkaNode(port=port):
            worker.wait_healthy(timeout=60)
            produce(env, [("orders", key, value) for key, value in map(order, range(100))])
            wait_for(
                lambda: worker.metric("vipstream_events_applied_total") == 100,
                timeout=60,
                what="the events applied",
            )
            expected, _ = expected_figures(order(n)[1] for n in range(100))
            status, body = worker.get("/customers/C7")
            assert status == 200
            assert round(body["lifetime_revenue"] * 1e6) == expected["C7"].revenue
    finally:
        worker.kill()
