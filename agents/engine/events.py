"""The per-event path: one input message in, state updated, outputs queued, counted.

Synchronous on purpose: nothing here awaits, so a message is applied and its outputs are
queued as one step that the commit barrier can never split. What an applied event means
for the day close goes to the `DayBook` (agents/engine/book.py, via the value engine);
the day close never calls back into this path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agents.engine.outputs import Outputs
from agents.engine.store import CustomerStore
from agents.logs import Throttle
from agents.metrics import Metrics
from agents.settings import Settings
from agents.topics import erasures_topic, input_topic_names
from schemas.inputs import OPENING_STATUSES, ErasureRequest, InputEvent, TicketEvent
from streams import outputs
from streams.care import CareRules
from streams.customer import CustomerState, Outcome, apply_event, refuse_before
from streams.decode import Rejected, decode_input
from streams.units import MICROS_PER_SECOND, from_micros, rfc3339, to_micros

log = logging.getLogger(__name__)

#: A dead letter keeps an input key it cannot read as a customer id up to this size: a
#: huge key would make the dead letter itself too large to produce.
_MAX_KEPT_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class InputMessage:
    """The parts of a Kafka message the runtime uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # Kafka message timestamp, seconds


class DayBook(Protocol):
    """What the day close needs to know of each message (agents/engine/value.py)."""

    def note_offset(self, topic: str, partition: int, offset: int) -> None: ...
    def note_applied(
        self,
        topic: str,
        partition: int,
        key: bytes,
        occurred_at: int,
        state: CustomerState,
        *,
        created: bool = False,
    ) -> None: ...
    def bucket_floor_day(self, partition: int) -> int | None: ...
    def erase(self, partition: int, key: bytes, requested_at: int) -> None: ...
    def erased_at(self, partition: int, customer_id: str) -> int | None: ...
    def ticket_arrived(
        self, partition: int, key: bytes, state: CustomerState, occurred_at: int
    ) -> None: ...


class _TopicCounters:
    __slots__ = ("applied", "consumed", "duplicate")

    def __init__(self, metrics: Metrics, topic: str) -> None:
        self.consumed = metrics.events_consumed.labels(topic=topic)
        self.applied = metrics.events_applied.labels(topic=topic)
        self.duplicate = metrics.events_duplicate.labels(topic=topic)


class EventPath:
    """Applies input messages to the customer store and queues the resulting outputs."""

    def __init__(
        self,
        settings: Settings,
        store: CustomerStore,
        metrics: Metrics,
        outputs: Outputs,
        *,
        book: DayBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.outputs = outputs
        self._clock = clock
        self._input_types = input_topic_names(settings)
        self._erasures = erasures_topic(settings)
        self._preferences = settings.topics.name("contact_preferences")
        self._counters = {t: _TopicCounters(metrics, t) for t in self._input_types}
        self._lateness = settings.ingest.allowed_lateness_seconds * MICROS_PER_SECOND
        self.max_event_at: int | None = None
        self.book = book
        self.care_rules = CareRules(settings.spikes, settings.care, settings.tickets)
        self._log_throttle = Throttle(10.0)

    # -- the hot path ------------------------------------------------------------------
    def handle(self, message: InputMessage) -> None:
        """Apply one input message. Never raises for anything the message contains.

        An exception escaping the agent would crash it: Faust restarts the agent, but the
        message is lost, neither applied nor dead-lettered. So a bug anywhere on this path
        becomes a `processing_error` dead letter (the state may hold part of the event;
        sending it again is a duplicate then).
        """
        try:
            self._handle(message)
        except Exception as exc:
            log.exception("processing error at %s[%d]@%d", *_place(message))
            self.metrics.processing_errors.inc()
            try:
                self._dead_letter(message, Rejected("processing_error", repr(exc)[:1000]), None)
            except Exception:  # counted and logged above; the agent must go on
                log.exception("could not dead-letter %s[%d]@%d", *_place(message))

    def _handle(self, message: InputMessage) -> None:
        started = time.perf_counter()
        counters = self._counters.get(message.topic)
        if counters is None:
            self._not_an_input(message)
            return
        counters.consumed.inc()
        value = self.book
        if value is not None:
            value.note_offset(message.topic, message.partition, message.offset)
        if message.value is None and message.key and message.topic == self._preferences:
            # a tombstone on the compacted preferences (an erasure writes one): no event
            # to apply, and an opt-out stays until a preference event says otherwise
            return
        now = self._clock()
        self.metrics.input_delay.observe(max(0.0, now - message.timestamp))
        decoded = decode_input(
            message.value,
            message.key,
            expected_event_type=self._input_types[message.topic],
            topic=message.topic,
            rules=self.settings.ingest,
            now_micros=int(now * MICROS_PER_SECOND),
        )
        if isinstance(decoded, Rejected):
            self._dead_letter(message, decoded, now)
            return
        key = decoded.customer_id.encode()
        if value is not None and self._before_erasure(value, message, decoded):
            return
        try:
            state = self.store.get(key, message.partition)
            created = state is None
            floor = None if value is None else value.bucket_floor_day(message.partition)
            state, outcome = apply_event(
                state,
                decoded,
                ingest=self.settings.ingest,
                costs=self.settings.cost,
                bucket_floor_day=floor,
                care=self.care_rules,
            )
        except Exception as exc:  # a bug, not bad input: keep the worker and the event
            log.exception(
                "processing error at %s[%d]@%d", message.topic, message.partition, message.offset
            )
            self.metrics.processing_errors.inc()
            self._dead_letter(
                message, Rejected("processing_error", repr(exc)[:1000], decoded.customer_id), now
            )
            return
        if outcome is Outcome.APPLIED:
            self.store.put(key, message.partition, state)
            counters.applied.inc()
            at = to_micros(decoded.occurred_at)
            if value is not None:
                value.note_applied(
                    message.topic, message.partition, key, at, state, created=created
                )
                if isinstance(decoded, TicketEvent) and decoded.status in OPENING_STATUSES:
                    value.ticket_arrived(message.partition, key, state, at)
            self.metrics.event_lag.observe(max(0.0, now - at / MICROS_PER_SECOND))
            if self.max_event_at is None or at > self.max_event_at:
                self.max_event_at = at
                self.metrics.watermark.set((at - self._lateness) / MICROS_PER_SECOND)
        elif outcome is Outcome.DUPLICATE:
            counters.duplicate.inc()
        else:
            self._dead_letter(message, self._late(decoded, state), now)
        self.metrics.processing.observe(time.perf_counter() - started)

    # -- erasure -----------------------------------------------------------------------
    def _not_an_input(self, message: InputMessage) -> None:
        if message.topic == self._erasures:
            self._erase(message)
        else:  # cannot happen: the agent only subscribes to these topics
            log.error("message from unexpected topic %s ignored", message.topic)

    def _before_erasure(self, book: DayBook, message: InputMessage, event: InputEvent) -> bool:
        """Older input of an erased customer (a replay): not applied, and no dead letter,
        which would copy its personal data to another topic; counted."""
        erased = book.erased_at(message.partition, event.customer_id)
        if erased is None or to_micros(event.occurred_at) > erased:
            return False
        self.metrics.events_erased.labels(topic=message.topic).inc()
        return True

    def _erase(self, message: InputMessage) -> None:
        """An erasure request (`vipstream erase`): the customer's state and its
        customer-tiers record get tombstones; its older input is dropped from now on."""
        value = self.book
        if value is not None:
            value.note_offset(message.topic, message.partition, message.offset)
        now = self._clock()
        try:
            request = ErasureRequest.model_validate_json(message.value or b"")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self._dead_letter(message, Rejected("schema_violation", str(exc)[:1000]), now)
            return
        key = request.customer_id.encode()
        if message.key != key:
            detail = "the message key is not the customer_id of the erasure request"
            self._dead_letter(message, Rejected("key_mismatch", detail, request.customer_id), now)
            return
        if value is not None:
            value.erase(message.partition, key, to_micros(request.requested_at))
        else:
            self.store.delete(key, message.partition)
        self.outputs.tombstone("customer_tiers", message.partition, key)
        self.metrics.customers_erased.inc()
        log.info(  # not the customer id: the log would keep what was erased
            "a customer of partition %d erased",
            message.partition,
            extra={"event": "customer_erased", "partition": message.partition},
        )

    # -- outputs -----------------------------------------------------------------------
    def _dead_letter(self, message: InputMessage, rejected: Rejected, now: float | None) -> None:
        """`now` None: a last resort after an unexpected error, using nothing from the
        message but its place and bytes."""
        last_resort = now is None
        now = self._clock() if now is None else now
        now_micros = int(now * MICROS_PER_SECOND)
        letter = outputs.dead_letter(
            rejected,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            payload=message.value or b"",
            payload_max_bytes=self.settings.ingest.dead_letter_payload_max_bytes,
            as_of=now_micros if last_resort else _message_time(message.timestamp, now),
            emitted_at=now_micros,
        )
        self.metrics.events_invalid.labels(topic=message.topic, reason=rejected.reason).inc()
        key: bytes | None = message.key  # an unusable key is kept, unless it is large
        if rejected.customer_id:
            key = rejected.customer_id.encode()
        elif last_resort or (key is not None and len(key) > _MAX_KEPT_KEY_BYTES):
            key = None
        self.outputs.emit("dead_letters", message.partition, key, letter)
        allowed, held = self._log_throttle.allow(rejected.reason)
        if allowed:
            log.info(
                "dead letter %s from %s[%d]@%d: %s%s",
                rejected.reason,
                message.topic,
                message.partition,
                message.offset,
                rejected.detail[:200],
                f" ({held} more {rejected.reason} held back)" if held else "",
                extra={
                    "event": "dead_letter",
                    "reason": rejected.reason,
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                    "held_back": held,
                },
            )

    def _late(self, event: InputEvent, state: CustomerState) -> Rejected:
        memory = state.streams[event.event_type]
        cutoff = rfc3339(refuse_before(memory, self.settings.ingest))
        return Rejected(
            "late_event",
            f"occurred_at {rfc3339(to_micros(event.occurred_at))} is before {cutoff}: this "
            "customer's "
            f"latest {event.event_type} event less allowed_lateness_seconds="
            f"{self.settings.ingest.allowed_lateness_seconds}",
            state.customer_id,
        )


def _message_time(timestamp: float, now: float) -> int:
    """A Kafka message timestamp in epoch µs, or the clock when it is not a time the
    calendar holds: a producer may set any 64-bit number of milliseconds."""
    try:
        micros = int(timestamp * MICROS_PER_SECOND)
        from_micros(micros)
    except (OverflowError, ValueError):
        return int(now * MICROS_PER_SECOND)
    return micros


def _place(message: InputMessage) -> tuple[str, int, int]:
    return message.topic, message.partition, message.offset
