"""The simulated stream of a seed is frozen: these digests were taken from the simulator
before its speed work, so an optimisation that changes a single byte (a random draw
moved, a field formatted differently) fails here. Tests and benchmarks compare seeded
histories against oracles and earlier runs, so the stream itself is part of the contract.
A deliberate change to the stream updates these digests in the same commit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.tools.simulate_io import write_jsonl
from agents.tools.simulator import SimulationConfig, Simulator, _Tables

START = datetime(2025, 1, 1, tzinfo=UTC)

#: config, events, sha256 of the JSONL file, sha256 of the SimEvents (topic, key, time, value)
FROZEN = [
    (
        SimulationConfig(customers=50, days=60, seed=3, start=START),
        520,
        "16fef9997fa89699b9f78c1a0a8b460371bcbe8efd1f9a13580dcee4c81e5fa5",
        "8be870d250089471a529e71791912cfe322361f1dda07b77a98aa8eafa5fcb15",
    ),
    (
        SimulationConfig(customers=300, days=90, seed=21, start=START),
        5361,
        "95dac2195bc05223a499d1adcf39820c7e6bd24118a7ac95d0fcc2576919ec23",
        "33d36e7e68f9e11684b7a7d1adef9c30131bebcfd92f2f9801bbaac6f270a836",
    ),
    (
        SimulationConfig(
            customers=200,
            days=500.25,
            seed=99,
            start=datetime(2024, 2, 28, 17, 3, 4, 567000, tzinfo=UTC),
        ),
        20681,
        "b8b06de775311d876cc9f03748ac51c2d39518d24c93a17a8e58cc02e001e7a6",
        "b88ba74e632d29cc31594b99f04debdcabf08467747ac56602106960d399dd9d",
    ),
    (
        SimulationConfig(customers=100, days=30, seed=5, currency="USD", start=START),
        651,
        "ab21d6700a2ea5c8f195f81ac3d5034e4c5a223b17c0bfe0857cade0c83e8705",
        "2ee4c2b8cc49c5bba9cc78adcb593dad61e960bd5cfea676f051426cbec89dc0",
    ),
    (
        SimulationConfig(
            customers=200, days=120, seed=4, start=START, invalid_share=0.05, duplicate_share=0.03
        ),
        4946,
        "84671c564bfb6ef2ed0f917e55ee6d904ec1c9ba79cb7b35a454c2c2a5f6a0d3",
        "c848812cbe771dbb696002df0dc76ef363c5b95f6bc0c656f792f8559a7e7a3b",
    ),
]
IDS = [f"{c.customers}x{c.days:g}d-seed{c.seed}" for c, *_ in FROZEN]


def events_digest(config: SimulationConfig) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for event in Simulator(config):
        digest.update(f"{event.topic} {event.key.decode()} {event.occurred_at!r} ".encode())
        digest.update(event.value + b"\n")
        count += 1
    return count, digest.hexdigest()


@pytest.mark.parametrize(("config", "count", "file_sha", "events_sha"), FROZEN, ids=IDS)
def test_the_file_of_a_seed_is_frozen(
    tmp_path: Path, config: SimulationConfig, count: int, file_sha: str, events_sha: str
) -> None:
    written, _ = write_jsonl(Simulator(config), tmp_path / "out.jsonl")
    assert written == count
    assert hashlib.sha256((tmp_path / "out.jsonl").read_bytes()).hexdigest() == file_sha


@pytest.mark.parametrize(("config", "count", "file_sha", "events_sha"), FROZEN, ids=IDS)
def test_the_events_of_a_seed_are_frozen(
    config: SimulationConfig, count: int, file_sha: str, events_sha: str
) -> None:
    assert events_digest(config) == (count, events_sha)


def test_the_tables_of_fragments_are_frozen() -> None:
    """Every entry of the shared quantile and fragment tables, not only those a small
    stream happens to draw (faster table building must build the same tables)."""
    digest = hashlib.sha256()
    for name, values in sorted(vars(_Tables()).items()):
        digest.update(name.encode())
        digest.update(repr(values).encode())
    assert digest.hexdigest() == "a3f0d72fcdefb90dd8e6b0f014513f2aac91df368235048f522ec6f9173a14f5"
