"""The contract's topics: names, which event type each input carries, which are compacted
(creating them: agents/kafka/admin.py)."""

from __future__ import annotations

from dataclasses import dataclass

from agents.settings import Settings

#: input topic key -> the event_type it carries
INPUT_EVENT_TYPES: dict[str, str] = {
    "calls": "call",
    "orders": "order",
    "tickets": "ticket",
    "contact_preferences": "contact_preference",
}
OUTPUT_TOPICS = (
    "tier_changes",
    "customer_tiers",
    "basic_question_spikes",
    "care_tasks",
    "ticket_priorities",
    "dead_letters",
)
#: Compacted: only the latest value per customer matters.
COMPACTED = frozenset({"contact_preferences", "customer_tiers"})


#: the Faust table of customer states; its changelog is `{app_id}-customer_state-changelog`
STATE_TABLE = "customer_state"


@dataclass(frozen=True)
class TopicPlan:
    key: str
    name: str
    partitions: int
    compacted: bool
    #: further topic configs at creation
    configs: tuple[tuple[str, str], ...] = ()


def summaries_topic(settings: Settings) -> str:
    """Internal: every partition's latest value summary, read by every worker."""
    return f"{settings.app_id}-value-summaries"


def erasures_topic(settings: Settings) -> str:
    """Internal: `vipstream erase` requests, partitioned like the inputs (by customer)."""
    return f"{settings.app_id}-erasures"


def changelog_topic(settings: Settings) -> str:
    """Internal: the state table's changelog, named as Faust names it."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


def changelog_configs(settings: Settings) -> dict[str, str]:
    """The changelog's configs beyond compaction: a customer's state is one message, so
    the topic takes the largest the producer may send."""
    return {"max.message.bytes": str(settings.kafka.max_message_bytes)}


def topic_plan(settings: Settings) -> list[TopicPlan]:
    """Every contract topic with its full name and partition count, and the internal
    topics: the summaries (one partition, compacted: only the latest message per
    partition matters), the erasure requests (co-partitioned with the inputs; not
    compacted: a request is applied once, and retention then deletes the customer id
    it names) and the state table's changelog (co-partitioned, compacted; created here,
    before Faust starts, as Faust would: when Faust created it, the consumer could join
    its group before the broker listed the new topic, and Faust's assignor then left the
    table without partitions until the next rebalance)."""
    keys = [*INPUT_EVENT_TYPES, *OUTPUT_TOPICS]
    partitions = settings.kafka.partitions
    plan = [TopicPlan(k, settings.topics.name(k), partitions, k in COMPACTED) for k in keys]
    plan.append(TopicPlan("value_summaries", summaries_topic(settings), 1, True))
    plan.append(TopicPlan("erasures", erasures_topic(settings), partitions, False))
    configs = tuple(changelog_configs(settings).items())
    plan.append(TopicPlan("changelog", changelog_topic(settings), partitions, True, configs))
    return plan


def input_topic_names(settings: Settings) -> dict[str, str]:
    """full input topic name -> the event_type it carries"""
    return {settings.topics.name(k): t for k, t in INPUT_EVENT_TYPES.items()}
