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
    # re-recorded 2026-12-07 on a history of 1,000 customers (2,000 before, to keep CI
    # within its time), with the purchase model's fit made CPU-independent (an exactly
    # rounded sum, numpy's AVX-512 kernels off): the previous digest held fits that
    # differed in their last bits between CPUs with and without AVX-512
    "tier-changes": "2346 676d9d01d4d457750cea4455e03affaa83e400746ec83dc6cf850160a83a6dab",
    "customer-tiers": "47305 74643287c8b3662ff63451d0b54e38bfa5f0dc609c739efd2c1a8f3656918212",
    "basic-question-spikes": "49 3ae644e49e2aeb631c014f2d979bd26c221f892c66c7c2234532dc1e1f8f0fe5",
    "care-tasks": "3257 d1ff18147c6ad6d604f7da0f79e8ea2f1d624935c0b40eac7515f3768d7904cb",
    "ticket-priorities": "8532 aa6bfcc10c6c9cdfb4e89565babbb4882bb4d21c8b8b9d711a30eac865e2ed5a",
    "dead-letters": "26 1e5fc98b1b212a1b5bb150a9ae811ad7a502539ca8f2077d180caabe1e068377",
    "all": "5ab982dd1f349edde8b26f48556ba543ccbd9c108b578e1474bdd2e6adc6ff61",
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
        customers=1000,
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
