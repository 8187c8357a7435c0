"""The output schemas evolve by additions only (schemas/evolution.py, README "Schema
evolution"): every event vipstream writes today validates against the schemas released
with its schema version, the schemas of today accept the events that version wrote, and
the check names every change the policy forbids."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson
import pytest

from agents.engine.harness import Harness
from agents.settings import load_settings
from agents.tools.simulator import SimulationConfig, Simulator
from schemas.evolution import RELEASED_DIR, breaking_changes, released, released_examples
from schemas.export import all_schemas
from schemas.outputs import OUTPUT_MODELS, SCHEMA_VERSION
from streams.keys import partition_of

#: the schema version the repository keeps the released schemas of
RELEASE = 1


@pytest.fixture(scope="module")
def current_events() -> dict[str, list[dict[str, Any]]]:
    """Every output event of a simulated history (with invalid input, for dead letters)."""
    settings = load_settings({"app_id": "evolution", "kafka": {"partitions": 2}})
    config = SimulationConfig(
        customers=200,
        days=120,
        seed=8,
        start=datetime(2025, 3, 3, tzinfo=UTC),
        invalid_share=0.01,
    )
    events = list(Simulator(config))
    ends = Counter((settings.topics.name(e.topic), partition_of(e.key, 2)) for e in events)
    h = Harness(settings, ends=dict(ends))
    for event in events:
        h.apply(event.topic, event.key, event.value)
    asyncio.run(h.settle())
    found: dict[str, list[dict[str, Any]]] = {}
    for _, _, _, value in h.sent:
        body = orjson.loads(value)
        found.setdefault(body["event_type"], []).append(body)
    return found


def test_the_released_version_is_the_current_one() -> None:
    """A new major version needs new topic names and its own released schemas: bump
    RELEASE with them (README "Schema evolution")."""
    assert SCHEMA_VERSION == RELEASE
    assert (RELEASED_DIR / str(RELEASE)).is_dir()
    assert set(released(RELEASE)) == set(OUTPUT_MODELS)  # no output type dropped or added


def test_every_event_written_today_validates_against_the_released_schemas(
    current_events: dict[str, list[dict[str, Any]]],
) -> None:
    assert set(current_events) == set(OUTPUT_MODELS)  # the history produces every output
    for event_type, schema in released(RELEASE).items():
        validator = jsonschema.Draft202012Validator(schema)
        for event in current_events[event_type]:
            validator.validate(event)
            assert event["schema_version"] == RELEASE


def test_todays_schemas_and_models_accept_the_released_events() -> None:
    examples = released_examples(RELEASE)
    assert {e["event_type"] for e in examples} == set(OUTPUT_MODELS)
    schemas = all_schemas()
    for event in examples:
        jsonschema.Draft202012Validator(schemas[f"{event['event_type']}.schema.json"]).validate(
            event
        )
        OUTPUT_MODELS[event["event_type"]].model_validate(event, strict=False)


def test_todays_schemas_change_the_released_ones_by_additions_only() -> None:
    schemas = all_schemas()
    for event_type, old in released(RELEASE).items():
        assert breaking_changes(old, schemas[f"{event_type}.schema.json"]) == [], event_type


def _changed(schema: dict[str, Any], change: Any) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    change(changed)
    return changed


TIER_CHANGE = released(RELEASE)["tier_change"]


@pytest.mark.parametrize(
    ("change", "breaks"),
    [
        # an optional field added: what the policy allows
        (lambda s: s["properties"].update(note={"type": "string"}), []),
        (lambda s: s["properties"]["score"].update(description="reworded"), []),
        (lambda s: s["properties"].pop("ratio"), ["ratio: removed"]),
        (
            lambda s: s["properties"]["score"].update(type="string"),
            ["score: type or constraints changed"],
        ),
        (lambda s: s["required"].append("schema_version"), ["schema_version: now required"]),
        (lambda s: s.update(additionalProperties=False), [".: closed to additions"]),
        # a consumer validating with the released schema would refuse the new value
        (
            lambda s: s["properties"]["tier"]["enum"].append("platinum"),
            ["tier: type or constraints changed"],
        ),
    ],
    ids=[
        "optional field added",
        "description",
        "field removed",
        "type changed",
        "field made required",
        "closed",
        "a tier added",
    ],
)
def test_the_check_names_what_the_policy_forbids(change: Any, breaks: list[str]) -> None:
    assert breaking_changes(TIER_CHANGE, _changed(TIER_CHANGE, change)) == breaks
