"""Exact units: time in integer microseconds since the epoch, money in integer micro-units.

Integers make every sum independent of the order events arrive in, so one worker and
several, a replay and live traffic, give bit-identical figures and identical outputs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND
MONEY_SCALE = 1_000_000  # money is stored in millionths of the currency unit
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MAX = 2**63 - 1


def to_micros(moment: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS_PER_SECOND + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime of epoch microseconds."""
    return _EPOCH + timedelta(microseconds=micros)


def rfc3339(micros: int) -> str:
    """RFC 3339 in UTC with a Z, milliseconds shown when not zero: 2026-01-31T09:15:00.250Z."""
    moment = from_micros(micros)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def day_of(micros: int) -> int:
    """The UTC day number (days since 1970-01-01) of epoch microseconds."""
    return micros // MICROS_PER_DAY


def money(amount: float) -> int:
    """An amount in micro-units, rounded half to even once, where it enters the system."""
    return round(amount * MONEY_SCALE)


def amount(units: int) -> float:
    """Micro-units back to the currency unit, for output."""
    return units / MONEY_SCALE


def saturating_add(total: int, delta: int) -> int:
    """Add within the signed 64-bit range the state encoding can hold.

    Reachable only with adversarial volumes (9.2 trillion currency units for one customer);
    saturating keeps the worker alive and the figure visibly pinned at the limit.
    """
    result = total + delta
    if result > _INT64_MAX:
        return _INT64_MAX
    if result < -_INT64_MAX:
        return -_INT64_MAX
    return result
