"""Shared building blocks of the contracts: strict frozen models and field types."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: Any) -> Any:
    """Accept an RFC 3339 string with an offset (or an aware datetime); reject all else.

    Pydantic's lax mode would also take unix numbers and naive times; event time is the
    base of every rule, so an ambiguous timestamp is refused rather than guessed.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry a UTC offset")
        return value
    if not isinstance(value, str):
        raise ValueError("timestamp must be an RFC 3339 string with an offset")
    if not _RFC3339.match(value):
        raise ValueError("timestamp must be RFC 3339 with an offset, e.g. 2026-01-31T09:15:00Z")
    text = value
    if "." in text:
        # Python parses at most 6 fractional digits; RFC 3339 allows more.
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        frac = digits.group(0) if digits else ""
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:  # e.g. month 13
        raise ValueError(f"invalid timestamp: {exc}") from None


Rfc3339 = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

#: Identifiers (customer, event, ticket, agent, sku): non-empty, bounded, printable.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: Free text labels such as a category.
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A money amount in the configured currency, never negative (refunds are positive too).
Money = Annotated[float, Field(ge=0, le=1e9)]
#: Seconds of a single contact (a call cannot last more than a week).
ContactSeconds = Annotated[float, Field(ge=0, le=7 * 86400)]
#: Seconds of handling time recorded on one ticket event.
HandlingSeconds = Annotated[float, Field(ge=0, le=365 * 86400)]
#: Satisfaction score, 1 (very bad) to 5 (very good).
Satisfaction = Annotated[int, Field(ge=1, le=5)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Contract(BaseModel):
    """Base of every contract model: strict types, frozen, unknown fields refused."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        populate_by_name=False,
    )
