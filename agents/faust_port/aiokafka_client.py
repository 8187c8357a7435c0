"""aiokafka's clients beyond their public API, for vipstream's own Kafka clients
(agents/kafka/). No Faust import: the command-line tools use these without loading it.

- `AIOKafkaConsumer._client.force_metadata_update()`: a metadata refresh for a topic
  created a moment ago, which `partitions_for_topic` does not trigger (aiokafka has no
  public call that refreshes a consumer's metadata now).

tests/agents/test_faust_port.py fails when aiokafka moves it.
"""

from __future__ import annotations

from typing import Any


async def force_metadata_update(consumer: Any) -> None:
    """Refresh an aiokafka consumer's metadata now (a topic created a moment ago)."""
    await consumer._client.force_metadata_update()
