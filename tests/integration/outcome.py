"""What a client sees after a run, and comparing two runs of the same history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from tests.integration.kafka import group_lag, read_outputs
from tests.support import Worker, settle

OUTPUTS = ("tier-changes", "basic-question-spikes", "care-tasks", "ticket-priorities")


@dataclass
class Outcome:
    """The population report, every customer's answer, every output event by id."""

    report: dict[str, Any]
    customers: dict[str, tuple[int, dict[str, Any]]]
    outputs: dict[str, dict[str, list[bytes]]]  # topic -> event id -> copies

    def assert_same(
        self, reference: Outcome, *, except_kinds: frozenset[str] = frozenset()
    ) -> None:
        """Identical answers, and the reference's output events: the same ids, and every
        copy identical but for `emitted_at` (a crash may repeat an output, never alter
        or lose one). `except_kinds`: care-task kinds left out of the comparison (see the
        one caller that needs it)."""
        assert self.report == reference.report, "the population differs from the reference"
        for customer, (_, body) in reference.customers.items():
            assert self.customers[customer][1] == body, customer
        for topic, all_expected in reference.outputs.items():
            expected = _without_kinds(all_expected, except_kinds)
            ids = _without_kinds(self.outputs[topic], except_kinds)
            lost, unexpected = expected.keys() - ids.keys(), ids.keys() - expected.keys()
            assert (lost, unexpected) == (set(), set()), (
                f"{topic}: {len(lost)} events lost, {len(unexpected)} unexpected; lost: "
                f"{[expected[i][0] for i in sorted(lost)[:3]]}, unexpected: "
                f"{[ids[i][0] for i in sorted(unexpected)[:3]]}"
            )
            for event_id, copies in ids.items():
                assert set(copies) == {expected[event_id][0]}, f"{topic} {event_id} differs"

    @property
    def repeated(self) -> int:
        """Output events that appear more than once (same id, same content)."""
        return sum(len(c) - 1 for ids in self.outputs.values() for c in ids.values())


def _without_kinds(events: dict[str, list[bytes]], kinds: frozenset[str]) -> dict[str, list[bytes]]:
    if not kinds:
        return events
    return {i: c for i, c in events.items() if orjson.loads(c[0]).get("kind") not in kinds}


def outcome(
    env: dict[str, str],
    worker: Worker,
    customers: list[str],
    topics: tuple[str, ...] = OUTPUTS,
) -> Outcome:
    """Once the worker's group has committed all its input and its tiers stopped moving."""
    report = settle([worker], lambda: not group_lag(env), lambda: group_lag(env))
    answers = {c: worker.get(f"/customers/{c}") for c in customers}
    copies: dict[str, dict[str, list[bytes]]] = {}
    for topic, events in read_outputs(env, topics).items():
        by_id: dict[str, list[bytes]] = defaultdict(list)
        for event in events:
            body = {k: v for k, v in event.items() if k != "emitted_at"}
            by_id[event["event_id"]].append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        copies[topic] = dict(by_id)
    return Outcome(report, answers, copies)
