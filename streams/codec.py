"""Customer state <-> bytes for the table and its changelog (format: schemas/state.py)."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson

from schemas.care_config import CareSettings, SpikeSettings
from schemas.config import IngestSettings
from schemas.state import STATE_VERSION
from streams import care
from streams.care import CareMemory
from streams.customer import CustomerState, StreamMemory
from streams.window import FIELDS, DayBuckets

_LITTLE = sys.byteorder == "little"


#: the longest identifier (event, customer, ticket, sku) and category the contract allows
_LONGEST_ID = 256
_LONGEST_LABEL = 128


def max_state_bytes(ingest: IngestSettings, spikes: SpikeSettings, rules: CareSettings) -> int:
    """An upper bound of one customer's encoded state, from the caps on everything in it
    that grows with events, filled with the longest identifiers the contract allows. The
    state is one changelog message, so this must fit the producer's limit
    (`kafka.max_message_bytes`); tests/unit/test_state_bounds.py fills every cap."""
    ids = 4 * ingest.dedupe_max_ids_per_customer * 16 * 4 // 3  # 64-bit pairs, base64
    tickets = care.MAX_PENDING_TICKETS * (_LONGEST_ID + 30)  # [at, ticket id, status]
    ratings = care.MAX_PENDING_RATINGS * (_LONGEST_ID + _LONGEST_LABEL + 60)
    categories = (spikes.recent_days + spikes.baseline_days) * (spikes.max_categories + 1)
    basic = categories * (_LONGEST_LABEL + 10) + (spikes.max_categories + 1) * (_LONGEST_LABEL + 15)
    skus = 3 * rules.max_skus * (_LONGEST_ID + 30)  # waiting for the close, and the stock
    days = 366 * 60  # a bucket of integers per day of the longest look-back
    return ids + tickets + ratings + basic + skus + days + 10_000


class StateDecodeError(ValueError):
    """A stored state that this version cannot read."""


def encode_state(state: CustomerState) -> bytes:
    """Serialise a customer's state (compact JSON; the id memory packed as binary)."""
    return orjson.dumps(
        {
            "v": STATE_VERSION,
            "customer_id": state.customer_id,
            "first_seen_at": state.first_seen_at,
            "last_event_at": state.last_event_at,
            "last_order_at": state.last_order_at,
            "revenue": state.revenue,
            "service_cost": state.service_cost,
            "purchases": state.purchases,
            "purchase_amount": state.purchase_amount,
            "refund_amount": state.refund_amount,
            "contacts": state.contacts,
            "basic_questions": state.basic_questions,
            "do_not_call": state.do_not_call,
            "preference_at": state.preference_at,
            "streams": {
                name: [m.last_at, m.floor, _pack_seen(m.seen)] for name, m in state.streams.items()
            },
            "days": [_trim([day, *bucket]) for day, bucket in sorted(state.days.items())],
            "stale": state.stale,
            "closed_day": state.closed_day,
            "score": state.score,
            "judged": state.judged,
            "tier": state.tier,
            "tier_since": state.tier_since,
            "tiered_day": state.tiered_day,
            "percentile": state.percentile,
            "care": None if state.care.is_empty() else _encode_care(state.care),
        }
    )


def _encode_care(care: CareMemory) -> dict[str, Any]:
    return {
        "last_task": care.last_task,
        "churn": [care.churn_anchor, care.churn_stage],
        "stock": care.stock,
        "orders": care.orders,
        "ratings": care.ratings,
        "basic_days": {str(d): c for d, c in care.basic_days.items()},
        "solved": care.solved,
        "last_spike": care.last_spike,
        "tier_log": care.tier_log,
        "tickets": care.tickets,
    }


def _decode_care(obj: dict[str, Any] | None) -> CareMemory:
    if obj is None:
        return CareMemory()
    anchor, stage = obj["churn"]
    return CareMemory(
        last_task=dict(obj["last_task"]),
        churn_anchor=anchor,
        churn_stage=stage,
        stock={k: list(v) for k, v in obj["stock"].items()},
        orders={k: [list(o) for o in v] for k, v in obj["orders"].items()},
        ratings=[list(r) for r in obj["ratings"]],
        basic_days={int(d): dict(c) for d, c in obj["basic_days"].items()},
        solved=dict(obj["solved"]),
        last_spike=obj["last_spike"],
        tier_log=[list(e) for e in obj["tier_log"]],
        tickets=[list(t) for t in obj["tickets"]],
    )


def decode_state(data: bytes) -> CustomerState:
    """Read a stored state; raise StateDecodeError for a format this version does not know."""
    try:
        obj: dict[str, Any] = orjson.loads(data)
        version = obj.get("v")
        if version != STATE_VERSION:
            raise StateDecodeError(f"unknown state version {version!r}")
        return CustomerState(
            customer_id=obj["customer_id"],
            first_seen_at=obj["first_seen_at"],
            last_event_at=obj["last_event_at"],
            last_order_at=obj["last_order_at"],
            revenue=obj["revenue"],
            service_cost=obj["service_cost"],
            purchases=obj["purchases"],
            purchase_amount=obj["purchase_amount"],
            refund_amount=obj["refund_amount"],
            contacts=obj["contacts"],
            basic_questions=obj["basic_questions"],
            do_not_call=obj["do_not_call"],
            preference_at=obj["preference_at"],
            streams={
                name: StreamMemory(last_at, floor, _unpack_seen(seen))
                for name, (last_at, floor, seen) in obj["streams"].items()
            },
            days=DayBuckets({row[0]: _pad(row[1:]) for row in obj["days"]}),
            stale=obj["stale"],
            closed_day=obj["closed_day"],
            score=obj["score"],
            judged=obj["judged"],
            tier=obj["tier"],
            tier_since=obj["tier_since"],
            tiered_day=obj["tiered_day"],
            percentile=obj["percentile"],
            care=_decode_care(obj.get("care")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"corrupt customer state: {exc!r}") from exc


def _trim(row: list[int]) -> list[int]:
    end = len(row)
    while end > 1 and row[end - 1] == 0:
        end -= 1
    return row[:end]


def _pad(fields: list[int]) -> list[int]:
    if len(fields) > FIELDS:
        raise StateDecodeError(f"a day bucket has {len(fields)} fields, at most {FIELDS}")
    return fields + [0] * (FIELDS - len(fields))


def _pack_seen(seen: dict[int, int]) -> str:
    flat = array("q")
    for key, at in seen.items():
        flat.append(key)
        flat.append(at)
    if not _LITTLE:
        flat.byteswap()
    return base64.b64encode(flat.tobytes()).decode("ascii")


def _unpack_seen(text: str) -> dict[int, int]:
    flat = array("q")
    flat.frombytes(base64.b64decode(text, validate=True))
    if not _LITTLE:
        flat.byteswap()
    return dict(zip(flat[0::2], flat[1::2], strict=True))
