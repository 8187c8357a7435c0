"""Apache Kafka from its published jars: a KRaft node (broker and controller in one
process), or a cluster of them on one host, started and stopped by this process.

`vipstream broker --engine kafka` runs one in the foreground; the test suite runs one
node per session and a three-node cluster for the failure tests. The jars are resolved
by Maven from `apache_kafka/pom.xml` (the Kafka version is its one property) into a
cache outside the checkout (`$VIPSTREAM_CACHE`, else `~/.cache/vipstream`), once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from threading import Thread
from types import TracebackType
from typing import IO

from agents.tools.broker import BrokerError, LocalBroker, free_port

log = logging.getLogger(__name__)

POM = Path(__file__).with_name("apache_kafka") / "pom.xml"

#: What the node is configured with beyond its listeners and storage (see README
#: "Apache Kafka in the tests"): quick group joins, records timestamped far ahead of the
#: clock accepted (the poison tests send them; vipstream dead-letters them itself).
DEV_CONFIG: Mapping[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    "log.message.timestamp.after.max.ms": str(2**63 - 1),
    "auto.create.topics.enable": "false",
    "log.cleaner.backoff.ms": "1000",
}
_READY = re.compile(r"Kafka Server started|KafkaRaftServer.*started")


def kafka_version() -> str:
    """The pinned Kafka version (the pom's `kafka.version`)."""
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if found is None:
        raise BrokerError(f"{POM} names no kafka.version")
    return found.group(1)


def cache_dir() -> Path:
    base = os.environ.get("VIPSTREAM_CACHE") or Path.home() / ".cache" / "vipstream"
    return Path(base) / f"kafka-{kafka_version()}"


def _require(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise BrokerError(
            f"Apache Kafka needs `{command}` on the PATH: install Debian's {package} "
            "(make test installs it when run as root)"
        )
    return found


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return _require("java", "default-jdk-headless")


def resolve_jars() -> Path:
    """The directory of Kafka's jars and a logging backend, resolved once (by Maven,
    from Maven Central or the local repository) and kept in the cache."""
    target = cache_dir()
    lib = target / "lib"
    if (target / "resolved").exists():
        return lib
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving the same
        if (target / "resolved").exists():
            return lib
        mvn = _require("mvn", "maven")
        java()
        staging = Path(tempfile.mkdtemp(prefix="lib-", dir=target))
        log.info("resolving Apache Kafka %s with Maven into %s", kafka_version(), target)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(
                f"Maven could not resolve Apache Kafka {kafka_version()} ({POM}):\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        if lib.exists():
            shutil.rmtree(lib)
        staging.rename(lib)
        (target / "resolved").write_text(kafka_version())
    return lib


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding. Never one
    that starts with "-", which the storage tool's command line takes for an option
    (one start in 64 failed so; Kafka's own Uuid.randomUuid() skips them likewise)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


class KafkaNode(LocalBroker):
    """One KRaft node (broker + controller) on host:port, with its data in `data_dir`
    (a temporary directory, removed on stop, when none is given). Restartable on the
    same data: `stop()` then `start()`. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        node_id: int = 1,
        controller_port: int | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
        data_dir: Path | None = None,
        config: Mapping[str, str] | None = None,
        heap_mb: int = 512,
        scram_users: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.node_id = node_id
        self.controller_port = controller_port if controller_port is not None else free_port(host)
        self.voters = voters or f"{node_id}@{host}:{self.controller_port}"
        self.cluster_id = cluster_id or random_cluster_id()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="vipstream-kafka-"))
        self.config = {**DEV_CONFIG, **(config or {})}
        self.heap_mb = heap_mb
        #: SCRAM-SHA-256 and -512 credentials (user -> password) stored when formatting
        self.scram_users = dict(scram_users or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._output: deque[str] = deque(maxlen=400)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def properties(self) -> dict[str, str]:
        listeners = (
            f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        )
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            **self.config,
        }

    def start(self, timeout: float = 90.0) -> KafkaNode:
        lib = resolve_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = self.data_dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        logging_config = self.data_dir / "log4j2.properties"
        logging_config.write_text(_LOG4J2)
        classpath = f"{lib}/*"
        base = [
            java(),
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(self.heap_mb, 256)}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={logging_config}",
            "-cp",
            classpath,
        ]
        if not (self.data_dir / "log" / "meta.properties").exists():
            formatted = subprocess.run(
                [
                    *base,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.cluster_id,
                    "-c",
                    str(server),
                    *(
                        argument
                        for user, password in self.scram_users.items()
                        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                        for argument in (
                            "--add-scram",
                            f"{mechanism}=[name={user},password={password}]",
                        )
                    ),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise BrokerError(
                    f"formatting Kafka storage in {self.data_dir} failed:\n"
                    + (formatted.stdout + formatted.stderr)[-3000:]
                )
        try:
            self._process = subprocess.Popen(
                [*base, "kafka.Kafka", str(server)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise BrokerError(f"cannot run java: {exc}") from exc
        assert self._process.stdout is not None
        self._ready = False
        Thread(target=self._drain, args=(self._process.stdout,), daemon=True).start()
        self._wait_ready(timeout)
        log.info("Apache Kafka node %d ready on %s (pid %s)", self.node_id, self.url, self.pid)
        return self

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._output.append(line)
            if _READY.search(line):
                self._ready = True

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"Apache Kafka exited with code {self._process.returncode}:\n" + self.output()
                )
            if self._ready and _listening(self.host, self.port):
                return
            time.sleep(0.1)
        self.kill()
        raise BrokerError(
            f"Apache Kafka did not start on {self.bootstrap} in {timeout}s:\n{self.output()}"
        )

    def output(self) -> str:
        return "\n".join(self._output)

    def stop(self, timeout: float = 60.0) -> None:
        """A controlled shutdown (SIGTERM); SIGKILL if it takes longer than `timeout`."""
        self.signal(signal.SIGTERM)
        self.wait(timeout)

    def signal(self, number: int) -> None:
        """Send a signal to the node's process group."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, number)

    def wait(self, timeout: float) -> None:
        """Wait for the process to end (SIGKILL after `timeout`), and forget it."""
        process = self._process
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._process = None

    def kill(self) -> None:
        """kill -9: no controlled shutdown (a crash)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def pause(self) -> None:
        """SIGSTOP the node (tests of broker outages)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)

    def remove_data(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.remove_data()


class KafkaCluster:
    """`size` KRaft nodes on one host, each broker and controller, one quorum; topics
    replicated `size` times by default with `min.insync.replicas` of size - 1."""

    def __init__(
        self,
        size: int = 3,
        host: str = "127.0.0.1",
        *,
        data_dir: Path | None = None,
        config: Mapping[str, str] | None = None,
        heap_mb: int = 512,
        scram_users: Mapping[str, str] | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="vipstream-kafka-cluster-"))
        controller_ports = [free_port(host) for _ in range(size)]
        voters = ",".join(f"{i + 1}@{host}:{p}" for i, p in enumerate(controller_ports))
        cluster_id = random_cluster_id()
        replicated = {
            "default.replication.factor": str(size),
            "min.insync.replicas": str(max(1, size - 1)),
            "offsets.topic.replication.factor": str(size),
            "transaction.state.log.replication.factor": str(size),
            "transaction.state.log.min.isr": str(max(1, size - 1)),
            **(config or {}),
        }
        self.nodes = [
            KafkaNode(
                host,
                node_id=i + 1,
                controller_port=controller_ports[i],
                voters=voters,
                cluster_id=cluster_id,
                data_dir=self.data_dir / f"node-{i + 1}",
                config=replicated,
                heap_mb=heap_mb,
            )
            for i in range(size)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def url(self) -> str:
        return ";".join(n.url for n in self.nodes)

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Start every node at once (a quorum needs a majority before any is ready)."""
        resolve_jars()
        errors: list[BaseException] = []

        def run(node: KafkaNode) -> None:
            try:
                node.start(timeout)
            except BaseException as exc:
                errors.append(exc)

        starters = [Thread(target=run, args=(n,)) for n in self.nodes]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Every node at once: stopped one by one, the last ones wait for a quorum that
        is gone until their controlled shutdown times out."""
        for node in self.nodes:
            if node.running:
                node.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait(max(0.0, deadline - time.monotonic()))

    def __iter__(self) -> Iterator[KafkaNode]:
        return iter(self.nodes)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


#: Kafka's own lines go to the node's stdout at WARN (INFO for the ready line), which
#: the launcher keeps the last few hundred of for error messages.
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
"""


def run_foreground(host: str, port: int, *, data_dir: Path | None = None) -> int:
    """`vipstream broker --engine kafka`: run until SIGINT/SIGTERM, then stop cleanly."""
    stop = {"requested": False}

    def request_stop(signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    node = KafkaNode(host, port, data_dir=data_dir)
    print(f"vipstream: starting Apache Kafka {kafka_version()} (KRaft) ...", flush=True)
    node.start()
    print(
        f"vipstream: Apache Kafka listening on {node.url}, data in {node.data_dir} "
        "(Ctrl-C to stop)",
        flush=True,
    )
    code = 0
    while not stop["requested"]:
        if not node.running:
            print(f"vipstream: Apache Kafka exited unexpectedly:\n{node.output()}")
            code = 1
            break
        time.sleep(0.5)
    node.stop()
    node.remove_data()
    if code == 0:
        print("vipstream: Apache Kafka stopped", flush=True)
    return code
