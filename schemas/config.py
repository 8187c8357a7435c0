"""Configuration sections that the pure logic in streams/ takes as parameters.

They are part of the contract with operators (every key is a TOML key and a
`VIPSTREAM_<SECTION>__<KEY>` environment variable), so they live here; agents/settings.py
composes them into the validated settings object. Units are in the names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.inputs import CHANNELS, Channel

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


_DEFAULT_CHANNEL_RATES: dict[Channel, float] = {
    "phone": 0.03,
    "chat": 0.005,
    "email": 0.0,
    "video": 0.05,
    "web": 0.0,
}


class Section(BaseModel):
    """A configuration section: frozen, unknown keys refused (a typo fails at start-up)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CostSettings(Section):
    """How a contact is priced when it carries no explicit `cost` (CONTRACT.md section 1).

    call:   duration_minutes × channel_rate_per_minute[channel]
            + (duration + wrap_up)/3600 × labour_rate_per_hour + overhead_per_contact
    ticket: handling_seconds/3600 × labour_rate_per_hour
            + overhead_per_contact (once per opened or reopened ticket)
    """

    channel_rate_per_minute: dict[Channel, NonNegative] = Field(
        default_factory=lambda: dict(_DEFAULT_CHANNEL_RATES)
    )
    labour_rate_per_hour: NonNegative = 35.0
    overhead_per_contact: NonNegative = 0.5

    @field_validator("channel_rate_per_minute")
    @classmethod
    def _every_channel_priced(cls, rates: dict[Channel, float]) -> dict[Channel, float]:
        missing = [c for c in CHANNELS if c not in rates]
        if missing:
            raise ValueError(f"missing a rate for channel(s) {', '.join(missing)}")
        return rates


class IngestSettings(Section):
    """What the workers accept as a usable input event."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    #: An event older than its customer's latest event on the same input topic less this
    #: is refused as `late_event` (within a topic; topics may be read at different
    #: paces). The watermark is the latest event time seen less this too.
    allowed_lateness_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 86400
    #: `event_time`: the watermark moves only with events (replaying history reproduces
    #: live results). `wall_clock`: it also follows the clock, so days close and timers
    #: fire when traffic is sparse.
    watermark_mode: Literal["event_time", "wall_clock"] = "event_time"
    #: Events dated further than this ahead of the wall clock are refused: one event from
    #: 2099 would otherwise move the watermark decades ahead and fire every timer.
    max_future_skew_seconds: Annotated[int, Field(ge=0, le=365 * 86400)] = 86400
    #: Events dated before this are refused as `timestamp_out_of_range`.
    min_event_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    #: Messages above this size are refused unparsed as `payload_too_large`.
    max_event_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    #: Dead letters carry at most this many bytes of the original payload. At most 512 KiB:
    #: in base64 that is 683 KiB, so the largest dead letter stays below the producer's
    #: 1,000,000-byte request limit (a dead letter it refuses crashes the worker).
    dead_letter_payload_max_bytes: Annotated[int, Field(ge=0, le=512 * 1024)] = 64 * 1024
    #: Categories counted as basic questions when an event has no `is_basic`.
    basic_categories: frozenset[str] = frozenset(
        {"password_reset", "login", "how_to", "getting_started", "billing_question", "faq"}
    )
    #: Bound on remembered event ids per customer and input topic. Beyond it the oldest id
    #: is forgotten and events at or before its time are refused as late, so a duplicate
    #: is never applied twice.
    dedupe_max_ids_per_customer: Annotated[int, Field(ge=16, le=200_000)] = 4096

    @field_validator("min_event_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2000-01-01T00:00:00Z")
        return value
