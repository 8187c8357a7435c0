"""Counts of emitted outputs per partition (Progress.emitted): persisted, backward
compatible, and summed across partitions into whole-system figures for the dashboard."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest

from streams.ledger import (
    SPIKE,
    TIER_CHANGE,
    Progress,
    care_task_counts,
    care_task_key,
    sum_counts,
)


def test_emitted_counts_round_trip_through_json() -> None:
    progress = Progress(5, 5, {"calls": 1}, {"calls": 123}, {5: {"x": 1}}, {"vip": 2})
    progress.count_emitted(TIER_CHANGE)
    progress.count_emitted(TIER_CHANGE)
    progress.count_emitted(care_task_key("upsell"))
    restored = Progress.from_json(orjson.loads(orjson.dumps(progress.to_json())))
    assert restored == progress
    assert restored.emitted == {"tier_change": 2, "care_task:upsell": 1}


def test_a_progress_record_written_before_the_counts_existed_still_reads() -> None:
    old = {
        "closed_day": 7,
        "tiered_day": 6,
        "first": {"calls": 1},
        "latest": {"calls": 9},
        "published": {"7": {"x": 1}},
        "tier_counts": {"new": 3},
    }
    progress = Progress.from_json(old)
    assert (progress.closed_day, progress.tiered_day, progress.emitted) == (7, 6, {})
    progress.count_emitted(SPIKE)  # counting resumes from zero
    assert progress.emitted == {"basic_question_spike": 1}


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], {}),  # no partition has published yet
        ([None, {}], {}),  # a message without counts (an older worker) adds nothing
        ([{"tier_change": 3}], {"tier_change": 3}),
        (
            # disjoint and shared keys across three partitions
            [
                {"tier_change": 3, "care_task:upsell": 1},
                {"tier_change": 4, "basic_question_spike": 2},
                {"care_task:upsell": 5, "care_task:churn_risk": 1},
            ],
            {
                "tier_change": 7,
                "care_task:upsell": 6,
                "basic_question_spike": 2,
                "care_task:churn_risk": 1,
            },
        ),
    ],
)
def test_partition_counts_sum_exactly(
    parts: list[Mapping[str, int] | None], expected: dict[str, int]
) -> None:
    assert sum_counts(parts) == expected


def test_summing_does_not_change_the_parts() -> None:
    part = {"tier_change": 1}
    sum_counts([part, part])
    assert part == {"tier_change": 1}


def test_care_tasks_by_kind_are_read_back_from_their_keys() -> None:
    emitted = {
        TIER_CHANGE: 9,
        SPIKE: 2,
        care_task_key("vip_welcome"): 3,
        care_task_key("basic_question_training"): 2,
    }
    assert care_task_counts(emitted) == {"vip_welcome": 3, "basic_question_training": 2}
    assert care_task_counts({}) == {}
