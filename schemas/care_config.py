"""Configuration of proactive care: spikes, care tasks and ticket priorities (TOML
sections [spikes], [care] and [tickets])."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from schemas.config import Section

CareKind = Literal[
    "vip_welcome",
    "vip_retention",
    "basic_question_training",
    "churn_risk",
    "replenishment_reminder",
    "satisfaction_followup",
    "upsell",
    "service_cost_review",
]
CARE_KINDS: tuple[CareKind, ...] = CareKind.__args__  # type: ignore[attr-defined]
TierName = Literal["vip", "gold", "silver", "bronze", "new"]
TIER_NAMES: tuple[TierName, ...] = ("vip", "gold", "silver", "bronze", "new")

Days = Annotated[int, Field(ge=1, le=3650)]


class SpikeSettings(Section):
    """Basic-question spikes (streams/spikes.py documents the test)."""

    recent_days: Annotated[int, Field(ge=1, le=90)] = 7
    baseline_days: Annotated[int, Field(ge=7, le=365)] = 56
    #: A spike needs p < alpha under the customer's own baseline...
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    #: ...and at least this many basic questions in the recent window.
    min_count: Annotated[int, Field(ge=1, le=10_000)] = 5
    cooldown_days: Annotated[int, Field(ge=0, le=365)] = 14
    #: No test before the customer has this many baseline days: a new customer asking
    #: basic questions is onboarding, not a change of staff.
    min_baseline_days: Annotated[int, Field(ge=0, le=365)] = 14
    top_categories: Annotated[int, Field(ge=1, le=20)] = 3
    #: Distinct categories remembered per customer (state size bound).
    max_categories: Annotated[int, Field(ge=1, le=1000)] = 32


KIND_PRIORITY = {
    "vip_retention": 1,
    "vip_welcome": 2,
    "churn_risk": 2,
    "satisfaction_followup": 2,
    "basic_question_training": 3,
    "upsell": 3,
    "replenishment_reminder": 4,
    "service_cost_review": 4,
}
TIER_ADJUSTMENT = {"vip": -1, "gold": 0, "silver": 1, "bronze": 1, "new": 1}
COOLDOWN_DAYS = {
    "vip_welcome": 90,
    "vip_retention": 30,
    "basic_question_training": 30,
    "churn_risk": 30,
    "replenishment_reminder": 0,
    "satisfaction_followup": 7,
    "upsell": 90,
    "service_cost_review": 90,
}
EXPIRES_DAYS = {
    "vip_welcome": 14,
    "vip_retention": 14,
    "basic_question_training": 21,
    "churn_risk": 30,
    "replenishment_reminder": 14,
    "satisfaction_followup": 3,
    "upsell": 30,
    "service_cost_review": 30,
}
#: The dialer budget: at most this many tasks of a kind fall due a day, whole system (0:
#: no limit). Sized for an outbound team of about 12 agents making ~50 calls a day each,
#: most of them on the kinds that keep revenue (README "Care tasks": how to size it).
MAX_TASKS_PER_DAY = {
    "vip_welcome": 50,
    "vip_retention": 50,
    "basic_question_training": 25,
    "churn_risk": 200,
    "replenishment_reminder": 150,
    "satisfaction_followup": 75,
    "upsell": 50,
    "service_cost_review": 25,
}
TICKET_PRIORITY = {"vip": 1, "gold": 2, "silver": 3, "bronze": 4, "new": 3}
TICKET_SLA_MINUTES = {"vip": 30, "gold": 60, "silver": 240, "bronze": 480, "new": 240}


def _complete(
    value: object, defaults: dict[str, int], names: tuple[str, ...], low: int, high: int
) -> dict[str, int]:
    """A partial table overrides the defaults of the names it gives; others are refused."""
    if not isinstance(value, dict):
        raise ValueError("must be a table")
    merged = dict(defaults)
    for name, number in value.items():
        if name not in names:
            raise ValueError(f"unknown name {name!r}; expected one of {', '.join(names)}")
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"{name}: must be an integer")
        if not low <= number <= high:
            raise ValueError(f"{name}: must be between {low} and {high}")
        merged[name] = number
    return merged


class CareSettings(Section):
    """Care tasks for the outbound dialer (streams/care.py documents every rule)."""

    #: priority = clamp(kind_priority[kind] + tier_adjustment[tier], 1, 5); 1 is most urgent.
    kind_priority: dict[str, int] = Field(default_factory=lambda: dict(KIND_PRIORITY))
    tier_adjustment: dict[str, int] = Field(default_factory=lambda: dict(TIER_ADJUSTMENT))
    #: At most one task per customer and kind within this many days.
    cooldown_days: dict[str, int] = Field(default_factory=lambda: dict(COOLDOWN_DAYS))
    #: A task expires this many days after it falls due.
    expires_days: dict[str, int] = Field(default_factory=lambda: dict(EXPIRES_DAYS))
    #: The dialer budget: at most this many tasks of a kind a day (0: no limit); when
    #: more fall due, the most valuable go out, the rest are suppressed `capacity`.
    max_tasks_per_day: dict[str, int] = Field(default_factory=lambda: dict(MAX_TASKS_PER_DAY))
    #: Churn risk rule. "model": once the population model is fitted, a buyer whose
    #: P(alive) falls below `churn_p_alive` with at least `churn_min_value_at_risk` (its
    #: predicted CLV were it alive) at stake, once per last purchase; priority one step
    #: up at 10x that value, two at 100x. "stages": the fixed silences below.
    churn_rule: Literal["model", "stages"] = "model"
    churn_p_alive: Annotated[float, Field(gt=0, lt=1)] = 0.5
    churn_min_value_at_risk: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 100.0
    #: Churn risk, stages: a buyer without a purchase or subscription for this many days...
    churn_first_days: Days = 90
    #: ...and a second, more urgent stage (priority one step up).
    churn_second_days: Days = 180
    #: Replenishment: remind this many days before an item runs out.
    replenishment_lead_days: Annotated[int, Field(ge=0, le=365)] = 7
    #: sku -> days one unit lasts, for items that do not say.
    catalogue: dict[str, Annotated[float, Field(gt=0, le=3650)]] = Field(default_factory=dict)
    #: Distinct skus tracked per customer (state size bound; the latest supplies win).
    max_skus: Annotated[int, Field(ge=1, le=1000)] = 32
    #: Satisfaction follow-up for a contact rated this or lower (1-5 scale).
    satisfaction_max: Annotated[int, Field(ge=1, le=4)] = 2
    #: Upsell: revenue of the last `upsell_recent_days` at least `upsell_growth` x that of
    #: the period before, up by at least `upsell_min_increase`, for a judged customer.
    upsell_recent_days: Annotated[int, Field(ge=7, le=365)] = 90
    upsell_growth: Annotated[float, Field(ge=1.0, le=100)] = 2.0
    upsell_min_increase: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 500.0
    #: Service-cost review: windowed service cost above windowed revenue and at least this.
    service_cost_min: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 100.0

    @field_validator("kind_priority", mode="before")
    @classmethod
    def _kind_priority(cls, value: object) -> dict[str, int]:
        return _complete(value, KIND_PRIORITY, CARE_KINDS, 1, 5)

    @field_validator("tier_adjustment", mode="before")
    @classmethod
    def _tier_adjustment(cls, value: object) -> dict[str, int]:
        return _complete(value, TIER_ADJUSTMENT, TIER_NAMES, -4, 4)

    @field_validator("cooldown_days", mode="before")
    @classmethod
    def _cooldown(cls, value: object) -> dict[str, int]:
        return _complete(value, COOLDOWN_DAYS, CARE_KINDS, 0, 3650)

    @field_validator("max_tasks_per_day", mode="before")
    @classmethod
    def _budget(cls, value: object) -> dict[str, int]:
        return _complete(value, MAX_TASKS_PER_DAY, CARE_KINDS, 0, 1_000_000)

    @field_validator("expires_days", mode="before")
    @classmethod
    def _expires(cls, value: object) -> dict[str, int]:
        return _complete(value, EXPIRES_DAYS, CARE_KINDS, 1, 3650)

    @model_validator(mode="after")
    def _stages(self) -> CareSettings:
        if self.churn_second_days <= self.churn_first_days:
            raise ValueError("churn_second_days must be greater than churn_first_days")
        return self

    def priority(self, kind: str, tier: str) -> int:
        return max(1, min(5, self.kind_priority[kind] + self.tier_adjustment[tier]))


class TicketSettings(Section):
    """Ticket priorities for the service desk."""

    priority: dict[str, int] = Field(default_factory=lambda: dict(TICKET_PRIORITY))
    sla_minutes: dict[str, int] = Field(default_factory=lambda: dict(TICKET_SLA_MINUTES))
    #: A reopened ticket is this many steps more urgent (priority) ...
    reopened_boost: Annotated[int, Field(ge=0, le=4)] = 1
    #: ... and its SLA is multiplied by this.
    reopened_sla_factor: Annotated[float, Field(gt=0, le=1)] = 0.5

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> dict[str, int]:
        return _complete(value, TICKET_PRIORITY, TIER_NAMES, 1, 5)

    @field_validator("sla_minutes", mode="before")
    @classmethod
    def _sla(cls, value: object) -> dict[str, int]:
        return _complete(value, TICKET_SLA_MINUTES, TIER_NAMES, 1, 100_000)
