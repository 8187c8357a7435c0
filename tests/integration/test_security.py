"""TLS and SASL between vipstream and Apache Kafka: a node with a SASL_SSL listener
(SCRAM users, a certificate authority and a broker certificate made by the test), every
client of the worker and the CLI on it, and start-up failures that name the setting and
never the secret."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from agents.tools.broker import free_port
from agents.tools.kafka_broker import KafkaNode
from tests.integration.outcome import outcome
from tests.oracle import check_figures, figures_of_file
from tests.support import Worker, cli, isolated_env, simulate_history, wait_for

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
USER, PASSWORD = "vipstream-worker", "pw-3f9a1c77e2b5-not-for-logs"
WINDOW_DAYS = 60


@dataclass
class SecureKafka:
    node: KafkaNode
    sasl_port: int
    ca_file: Path

    @property
    def plaintext_url(self) -> str:  # for the tests' own readers only
        return self.node.url

    @property
    def sasl_url(self) -> str:
        return f"kafka://{HOST}:{self.sasl_port}"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    with secure_node(tmp_path_factory.mktemp("tls")) as kafka:
        yield kafka


@contextlib.contextmanager
def secure_node(work: Path, extra: dict[str, str] | None = None) -> Iterator[SecureKafka]:
    """A Kafka node with a plaintext listener (the tests' own clients) and a SASL_SSL one
    (SCRAM user USER, a broker certificate of a CA made here)."""
    ca = trustme.CA()
    ca_file = work / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    keystore = work / "broker.pem"  # the broker's key (PKCS#8, as Kafka reads PEM) and chain
    issued = ca.issue_cert(HOST, "localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore.write_bytes(pkcs8 + b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    port, sasl_port, controller = free_port(), free_port(), free_port()
    config = {
        "listeners": (
            f"PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{sasl_port},"
            f"CONTROLLER://{HOST}:{controller}"
        ),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{sasl_port}",
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        **(extra or {}),
    }
    node = KafkaNode(
        HOST, port, controller_port=controller, config=config, scram_users={USER: PASSWORD}
    )
    with node:
        yield SecureKafka(node, sasl_port, ca_file)


def secure_env(kafka: SecureKafka, tmp_path: Path, **extra: str) -> dict[str, str]:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    return isolated_env(
        kafka.sasl_url,
        VIPSTREAM_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        VIPSTREAM_KAFKA__SASL_MECHANISM="SCRAM-SHA-512",
        VIPSTREAM_KAFKA__SASL_USERNAME=USER,
        VIPSTREAM_KAFKA__SASL_PASSWORD_FILE=str(secret),
        VIPSTREAM_KAFKA__SSL_CAFILE=str(kafka.ca_file),
        VIPSTREAM_VALUE__WINDOW_DAYS=str(WINDOW_DAYS),
        **extra,
    )


def plaintext_view(env: dict[str, str], kafka: SecureKafka) -> dict[str, str]:
    """The same app and topics, through the plaintext listener (the tests' readers)."""
    view = {k: v for k, v in env.items() if not k.startswith("VIPSTREAM_KAFKA__S")}
    return {**view, "VIPSTREAM_BROKER": kafka.plaintext_url}


def test_a_worker_and_the_cli_work_over_sasl_ssl(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    env = secure_env(secure_kafka, tmp_path)
    path = simulate_history(
        env, tmp_path / "h.jsonl", customers=150, days=90, seed=31, start="2026-01-05T00:00:00Z"
    )
    expected, _ = figures_of_file(path)
    cli(["replay", "--quiet", str(path)], env)  # the CLI's producer, over SASL_SSL
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    try:
        worker.wait_healthy(timeout=90)
        got = outcome(plaintext_view(env, secure_kafka), worker, sorted(expected))
        tail = cli(["tail", "tier-changes", "--idle-timeout", "3"], env)  # the CLI's consumer
    finally:
        worker.stop()
    check_figures(expected, got.customers, WINDOW_DAYS)
    assert sum(len(ids) for ids in got.outputs.values()) > 100
    assert tail.stdout.count("\n") == len(got.outputs["tier-changes"])
    assert PASSWORD not in worker.log_path.read_text()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"VIPSTREAM_KAFKA__SASL_PASSWORD_FILE": "wrong"}, "kafka.sasl_username"),
        ({"VIPSTREAM_KAFKA__SSL_CAFILE": "untrusted"}, "kafka.ssl_cafile"),
    ],
    ids=["wrong password", "untrusted certificate"],
)
def test_wrong_credentials_stop_the_worker_at_start_up(
    secure_kafka: SecureKafka, tmp_path: Path, change: dict[str, str], named: str
) -> None:
    """Not retried forever like an unreachable broker: the worker exits at once with a
    message naming the setting, and the secret appears nowhere in what it wrote."""
    env = secure_env(secure_kafka, tmp_path)
    if "VIPSTREAM_KAFKA__SASL_PASSWORD_FILE" in change:
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not-the-password\n")
        env["VIPSTREAM_KAFKA__SASL_PASSWORD_FILE"] = str(wrong)
    else:
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        env["VIPSTREAM_KAFKA__SSL_CAFILE"] = str(other)
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log").start()
    assert worker.process is not None
    assert worker.process.wait(90) == 1
    log = worker.log_path.read_text()
    assert named in log, log[-3000:]
    assert "Traceback" not in log
    assert PASSWORD not in log
    assert "not-the-password" not in log


def test_no_secret_in_anything_a_worker_writes(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """The SASL password (given as an environment variable, the form most likely to leak
    into a settings dump), the bearer tokens and the web TLS key appear nowhere in what a
    worker and the CLI write: the worker's debug log (JSON lines, every library's
    loggers), every HTTP answer, `vipstream config`, `vipstream acls`, the CLI's output,
    the output topics, the worker's data directory."""
    token = "tok-b71c02e99d4f-not-for-logs"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{token}\n")
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)
    cert_file, key_file, web_ca = tmp_path / "web.pem", tmp_path / "web-key.pem", tmp_path / "c"
    issued.private_key_pem.write_to_path(str(key_file))
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(web_ca))
    key_lines = [line for line in key_file.read_text().splitlines() if "-----" not in line]
    env = secure_env(secure_kafka, tmp_path)
    del env["VIPSTREAM_KAFKA__SASL_PASSWORD_FILE"]
    env |= {
        "VIPSTREAM_KAFKA__SASL_PASSWORD": PASSWORD,
        "VIPSTREAM_WEB__AUTH_TOKEN_FILE": str(tokens),
        "VIPSTREAM_WEB__METRICS_AUTH": "true",
        "VIPSTREAM_WEB__TLS_CERTFILE": str(cert_file),
        "VIPSTREAM_WEB__TLS_KEYFILE": str(key_file),
        "VIPSTREAM_WEB__TLS_CAFILE": str(web_ca),
        "VIPSTREAM_LOG_LEVEL": "debug",
        "VIPSTREAM_LOG_FORMAT": "json",
        "VIPSTREAM_STORE": "rocksdb://",  # files in the data directory
    }
    path = simulate_history(
        env, tmp_path / "h.jsonl", customers=40, days=75, seed=12, start="2026-01-05T00:00:00Z"
    )
    expected, _ = figures_of_file(path)
    written = [cli(["replay", "--quiet", str(path)], env)]
    worker = Worker(env, tmp_path / "w", tmp_path / "w.log", ca_file=web_ca).start()
    auth = {"Authorization": f"Bearer {token}"}
    answers: list[str] = []
    try:
        worker.wait_healthy(timeout=90)
        wait_for(lambda: worker.get("/tiers", auth)[0] == 200, timeout=90, what="a closed day")
        for page in ("/healthz", "/metrics", "/tiers", "/dashboard", "/openapi.json"):
            answers.append(str(worker.get(page, auth)))
        answers += [str(worker.get(f"/customers/{c}", auth)) for c in sorted(expected)]
        answers.append(str(worker.get("/customers/" + "x" * 300, auth)))
        for args in (
            ["config"],
            ["acls"],
            ["tail", "tier-changes", "--idle-timeout", "3"],
            ["tail", "care-tasks", "--idle-timeout", "3"],
        ):
            written.append(cli(args, env))
    finally:
        worker.stop()
    texts = {
        "worker log": worker.log_path.read_text(),
        "HTTP answers": "\n".join(answers),
        **{" ".join(r.args[3:5]): r.stdout + r.stderr for r in written},
    }
    assert '"sasl_password": "**********"' in texts["config"]
    assert '"event":"worker_settings"' in texts["worker log"]
    assert len(texts["worker log"].splitlines()) > 200  # the debug log was written
    stored = [p for p in (tmp_path / "w").rglob("*") if p.is_file()]
    assert stored  # the state store
    for name, text in texts.items():
        for secret in (PASSWORD, token, *key_lines):
            assert secret not in text, f"a secret in {name}"
    for file in stored:
        data = file.read_bytes()
        for secret in (PASSWORD, token, *key_lines):
            assert secret.encode() not in data, f"a secret in {file}"
