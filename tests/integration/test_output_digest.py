"""A fixed simulated history, replayed through a worker, gives exactly the outputs it gave
when this digest was recorded: every output event on every output topic, byte for byte
once the wall-clock fields are left out.

This is the guard of refactorings that must not change behaviour (issue 18). A change
that is meant to change outputs updates the digest in the same commit and says why in
its message: run this test, check that the per-topic counts it prints moved as
intended, and paste the new digest below.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from agents.tools.replay import route_line
from tests.integration.conftest import RunningBroker
from tests.integration.kafka import read_outputs
from tests.support import Worker, cli, isolated_env, settle, simulate_history

pytestmark = pytest.mark.integration

#: per topic (events, sha256 of the sorted normalised events), and of all together
RECORDED = {
    "tier-changes": "4426 f5a9f0efc368482322f9280033302d26eec7d07847ebe20f2e2c89df7beae4b8",
    # added 2026-12-06 (issue 25); every other topic's digest unchanged by it
    "customer-tiers": "95208 2710575e37adaf8e0f1a62a23893331829f7e004673611ae685503105640a7db",
    "basic-question-spikes": "99 c865e83a9263d736ea5279da78241aa965817eb4b69f1dfdadf2cec2560f78c8",
    # churn_risk by the population model since 2026-12-06 (the fixed stages before)
    "care-tasks": "6577 487db1694cbf10830c96a46cc880f7b728390ba10fdd1bfd5d8c6d6fbec3ca39",
    "ticket-priorities": "16765 4ad87ef5a35c2aedb80a242f970317d1750eb192737e732aa0dc629dbb87270a",
    "dead-letters": "59 8ee60fdcd824c758d41063102913a80fe6a789021ebd78ff88f06b983557295a",
    "all": "f2294741dbbc803e3f77505cd0fc730540c0caff0e68013e35c1781c8a4ef6fc",
}
TOPICS = (
    "tier-changes",
    "customer-tiers",
    "basic-question-spikes",
    "care-tasks",
    "ticket-priorities",
    "dead-letters",
)
#: wall-clock fields: when an output was made, and a dead letter's (its input's
#: Kafka timestamp, the producer's clock); a dead letter's id is a hash of its source
#: topic's name, which holds the test run's unique prefix (left out of source_topic)
CLOCK_FIELDS = {"emitted_at"}
DEAD_LETTER_CLOCK_FIELDS = {"emitted_at", "as_of", "event_id"}


def digest_of(outputs: dict[str, list[dict[str, object]]]) -> dict[str, str]:
    found = {}
    whole = hashlib.sha256()
    for topic in TOPICS:
        clock = DEAD_LETTER_CLOCK_FIELDS if topic == "dead-letters" else CLOCK_FIELDS
        lines = sorted(
            orjson.dumps(
                {k: v for k, v in e.items() if k not in clock}, option=orjson.OPT_SORT_KEYS
            )
            for e in outputs[topic]
        )
        topic_digest = hashlib.sha256(b"\n".join(lines)).hexdigest()
        found[topic] = f"{len(lines)} {topic_digest}"
        whole.update(f"{topic} {found[topic]}\n".encode())
    found["all"] = whole.hexdigest()
    return found


def test_a_fixed_history_gives_the_recorded_outputs(broker: RunningBroker, tmp_path: Path) -> None:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__PARTITIONS="8")
    history = simulate_history(
        env,
        tmp_path / "history.jsonl",
        customers=2000,
        days=365,
        seed=20261206,
        start="2025-01-06T00:00:00Z",
        extra=("--invalid-share", "0.002", "--duplicate-share", "0.01"),
    )
    lines = history.read_bytes().splitlines()
    sent = sum(1 for line in lines if line.strip() and not isinstance(route_line(line), str))
    worker = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        worker.wait_healthy()
        cli(["replay", "--quiet", str(history)], env, timeout=600, check=False)
        settle([worker], sent)
    finally:
        worker.stop()
    outputs = read_outputs(env, TOPICS)
    prefix = env["VIPSTREAM_TOPICS__PREFIX"]  # unique per test run
    for letter in outputs["dead-letters"]:
        letter["source_topic"] = str(letter["source_topic"]).removeprefix(prefix)
    found = digest_of(outputs)
    assert found["all"] == RECORDED["all"], (
        "the outputs of the fixed history changed; if that is intended, record "
        f"RECORDED = {found!r}\n(was {RECORDED!r})"
    )
