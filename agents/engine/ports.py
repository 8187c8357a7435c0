"""What the engine needs from the world outside it, as small interfaces: where the input
partitions end and where the group committed, and how an output or a value summary is
sent. The worker implements them over Faust and aiokafka (agents/faust_port,
agents/kafka); the engine's harness and the backfill implement them in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class InputPositions(Protocol):
    """How far each input partition goes, and where the group's committed offset is."""

    def highwater(self, topic: str, partition: int) -> int | None:
        """The partition's log end as last fetched (None: not known yet)."""

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of the partition, as this worker knows it."""


#: (topic key, partition, message key, value): queues one output message (value None: a
#: tombstone, on a compacted output)
OutputSend = Callable[[str, int, bytes | None, bytes | None], None]

#: (message key, value): publishes one value-summary message to every worker
Publish = Callable[[bytes, bytes], object]
