"""The engine with no broker: events in, outputs and customer states out.

`Harness` runs the worker's own event path and value engine over an in-memory store, for
input partitions whose ends are known (a history is its own input: every message up to
an end is applied, in order). The backfill plays histories with it
(agents/tools/backfill.py), and table tests of whole scenarios use `run`, in the spirit
of bytewax's `stateful_map` tests: a list of events in, a list of outputs out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from agents.engine.events import EventPath, InputMessage
from agents.engine.outputs import Outputs
from agents.engine.ports import OutputSend
from agents.engine.store import CustomerStore, DictStore
from agents.engine.value import ValueEngine
from agents.metrics import Metrics
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES, erasures_topic
from schemas.inputs import ErasureRequest
from streams.customer import CustomerState
from streams.keys import partition_of
from streams.units import MICROS_PER_SECOND, from_micros


class OfflinePositions:
    """Input partitions whose ends are known in advance, and the offsets committed before
    (none, unless the harness is a restart)."""

    def __init__(
        self, ends: dict[tuple[str, int], int], committed: dict[tuple[str, int], int] | None = None
    ) -> None:
        self.ends = ends
        self.committed_offsets = committed or {}

    def highwater(self, topic: str, partition: int) -> int:
        return self.ends.get((topic, partition), 0)

    def committed(self, topic: str, partition: int) -> int | None:
        return self.committed_offsets.get((topic, partition))


#: (topic key, partition, message key, value) of a produced output
Sent = tuple[str, int, bytes | None, bytes | None]


class Harness:
    """The worker's event path and value engine over an in-memory store.

    `ends`: (input topic name, partition) -> how many messages the input holds (the
    engine treats a partition as caught up once that many are applied). `partitions`:
    the partitions this harness owns (all by default; a backfill child owns a share).
    `send`: where outputs go (default: kept in `sent`). `publish`: where the value
    summaries go (a backfill child hands them to the others). `local`: the table's local
    store (default: a new, empty one; a harness started on another's store is a restart),
    and `offsets` the next offset of each input partition (a restart resumes at the
    committed ones). `monotonic`: the clock of the ledger checkpoints' timing."""

    def __init__(
        self,
        settings: Settings,
        *,
        ends: dict[tuple[str, int], int] | None = None,
        partitions: Iterable[int] | None = None,
        send: OutputSend | None = None,
        publish: Callable[[bytes, bytes], None] | None = None,
        clock: Callable[[], float] = time.time,
        local: DictStore | None = None,
        offsets: dict[tuple[str, int], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.local = DictStore() if local is None else local
        self.store = CustomerStore(lambda: self.local, capacity=settings.state_cache_customers)
        self.metrics = Metrics()
        self.sent: list[Sent] = []
        self.positions = OfflinePositions(ends if ends is not None else {}, offsets)
        owned = set(range(settings.kafka.partitions) if partitions is None else partitions)
        self.partitions = frozenset(owned)
        self._publish_to = publish
        self.published = 0  # messages the engine published
        outputs = Outputs(settings, self.metrics, send if send is not None else self._keep)
        self.engine = ValueEngine(
            settings,
            self.store,
            self.metrics,
            outputs=outputs,
            publish=self._publish,
            positions=lambda: self.positions,
            assignment=lambda: set(owned),
            clock=clock,
            monotonic=monotonic,
        )
        self.events = EventPath(
            settings, self.store, self.metrics, outputs, book=self.engine, clock=clock
        )
        self.engine.owned(owned)
        self._names = {k: settings.topics.name(k) for k in INPUT_EVENT_TYPES}
        self._offsets: Counter[tuple[str, int]] = Counter(offsets or {})
        self._clock = clock
        self.applied = 0  # messages handed to the event path

    def apply(
        self, topic_key: str, key: bytes, value: bytes, *, timestamp: float | None = None
    ) -> None:
        """One message, at the next offset of its partition (by the Kafka default
        partitioner on its key, as producers place keyed messages)."""
        topic = self._names[topic_key]
        partition = partition_of(key, self.settings.kafka.partitions)
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        seconds = self._clock() if timestamp is None else timestamp
        self.events.handle(InputMessage(topic, partition, offset, key, value, seconds))
        self.applied += 1

    def erase(self, customer_id: str, requested_at: float) -> None:
        """An erasure request, as `vipstream erase` writes it (requested_at: epoch s)."""
        key = customer_id.encode()
        topic = erasures_topic(self.settings)
        partition = partition_of(key, self.settings.kafka.partitions)
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        request = ErasureRequest(
            event_id=f"erase-{customer_id}-{requested_at}",
            customer_id=customer_id,
            requested_at=from_micros(int(requested_at * MICROS_PER_SECOND)),
        )
        value = request.model_dump_json().encode()
        self.events.handle(InputMessage(topic, partition, offset, key, value, requested_at))

    def _keep(self, topic_key: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.sent.append((topic_key, partition, key, value))

    def _publish(self, key: bytes, value: bytes) -> None:
        # A worker publishes to the summaries topic; the engine has already read its own
        # message. Alone, nobody else needs it.
        self.published += 1
        if self._publish_to is not None:
            self._publish_to(key, value)

    async def settle(self, *, one_day: bool = False) -> None:
        """Run the value engine until it can close, merge, tier and publish nothing more
        (with `one_day`, or until a step closed a day: see `agents.tools.backfill_exchange`).

        A step that only publishes (a partition's first summary, a watermark that moved)
        can let the next step close a day, as a live worker's engine steps again whenever
        a summary arrives; so the settle ends when a step neither moved a day nor
        published."""
        while True:
            before = self._position(), self.published
            closed = self._closed()
            await self.engine.step()
            if (self._position(), self.published) == before:
                break
            if one_day and self._closed() != closed:
                break

    def checkpoint(self) -> None:
        """Encode the changed states into the local store, so the cache can shrink."""
        self.store.confirm(self.store.snapshot(), {})

    @property
    def offsets(self) -> dict[tuple[str, int], int]:
        """(input topic, partition) -> the offset the next message gets."""
        return dict(self._offsets)

    def state(self, customer_id: str) -> CustomerState | None:
        return self.store.get(customer_id.encode())

    def outputs(self, topic_key: str) -> list[dict[str, Any]]:
        """The outputs sent to a topic so far, decoded, in order."""
        return [orjson.loads(v) for t, _, _, v in self.sent if t == topic_key and v is not None]

    def _closed(self) -> list[int | None]:
        return [g.progress.closed_day for g in self.engine.ledgers.values()]

    def _position(self) -> tuple[Any, ...]:
        ledgers = self.engine.ledgers
        return (
            *sorted((p, g.progress.closed_day, g.progress.tiered_day) for p, g in ledgers.items()),
            max(self.engine.days) if self.engine.days else None,
        )


async def run(
    settings: Settings, events: Iterable[tuple[str, bytes]]
) -> tuple[dict[str, list[dict[str, Any]]], Harness]:
    """Play (topic key, JSON value) events, keyed by their customer id, through the engine
    and settle it: (topic key -> the outputs sent there, in order; the harness, for its
    states). The input partitions end where the events do."""
    listed = []
    ends: Counter[tuple[str, int]] = Counter()
    for topic_key, value in events:
        key = str(orjson.loads(value)["customer_id"]).encode()
        listed.append((topic_key, key, value))
        partition = partition_of(key, settings.kafka.partitions)
        ends[(settings.topics.name(topic_key), partition)] += 1
    harness = Harness(settings, ends=dict(ends))
    for topic_key, key, value in listed:
        harness.apply(topic_key, key, value)
    await harness.settle()
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic_key, _, _, sent in harness.sent:
        if sent is not None:  # (a tombstone: an erased customer's customer-tiers record)
            by_topic.setdefault(topic_key, []).append(orjson.loads(sent))
    return by_topic, harness
