"""agents/kafka/admin.py: a topic created a moment ago may be unknown to the broker asked
(three KRaft nodes under load: "0 partitions"); it is asked again until it is known,
and what the broker says after the wait stands."""

from __future__ import annotations

from typing import Any

from agents.kafka.admin import _described


class Admin:
    """Knows each topic after `late[topic]` descriptions."""

    def __init__(self, late: dict[str, int]) -> None:
        self.late = dict(late)
        self.asked: list[list[str]] = []

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.asked.append(list(topics))
        found = []
        for topic in topics:
            known = self.late.get(topic, 0) <= 0
            self.late[topic] = self.late.get(topic, 0) - 1
            found.append({"topic": topic, "partitions": [{"partition": 0}] if known else []})
        return found


async def test_a_topic_unknown_at_first_is_asked_for_again() -> None:
    admin = Admin({"calls": 0, "tier-changes": 2})
    described = await _described(admin, ["calls", "tier-changes"], wait_seconds=5.0)  # type: ignore[arg-type]
    assert [len(d["partitions"]) for d in described] == [1, 1]
    assert admin.asked == [["calls", "tier-changes"], ["tier-changes"], ["tier-changes"]]


async def test_after_the_wait_what_the_broker_says_stands() -> None:
    admin = Admin({"orders": 10**6})
    (described,) = await _described(admin, ["orders"], wait_seconds=0.5)  # type: ignore[arg-type]
    assert described["partitions"] == []  # the caller reports the mismatch
