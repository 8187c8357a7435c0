"""Customer state <-> bytes for the table and its changelog (format: schemas/state.py).

Version 3, written: a fixed binary header, the id memory, the pending purchase days,
the day buckets as int64
arrays, and the care memory as compact JSON, compressed as one LZ4 block. The buckets
are stored column by column, so a field that is zero on most days is a run LZ4 folds
away. Measured on the states of a simulated year (CPU time per state on the 2-core
bench machine): zlib level 1 took 113 us to compress a body, LZ4 10 us, for a mean of
1.1 KB against 1.5 KB; storing byte planes instead of int64s saved LZ4 another 20% for
as much time again as the whole encoding. Both directions are a handful of C calls.

Version 1 (JSON) is still read, so a store or changelog written by an older worker
upgrades in place: each state is rewritten as version 3 at its next change. So is
version 2, which lacks the purchase history (estimated, see schemas/state.py).
"""

from __future__ import annotations

import base64
import itertools
import struct
import sys
from array import array
from itertools import chain
from typing import Any

import lz4.block
import orjson

from schemas.care_config import CareSettings, SpikeSettings
from schemas.config import IngestSettings
from schemas.state import (
    STATE_FLAG,
    STATE_HEADER,
    STATE_HEADER_V2,
    STATE_HEADER_V3,
    STATE_STREAM,
    STATE_STREAMS,
    STATE_TIERS,
    STATE_VERSION,
)
from streams import care
from streams.care import CareMemory
from streams.customer import CustomerState, StreamMemory
from streams.history import MAX_PENDING_DAYS, PurchaseHistory
from streams.units import day_of
from streams.window import FIELDS, DayBuckets

_LITTLE = sys.byteorder == "little"
_VERSION_BYTE = bytes([STATE_VERSION])
_OLDER_BYTES = (bytes([3]), bytes([2]))
_STREAM_CODE = {name: code for code, name in enumerate(STATE_STREAMS)}
_TIER_CODE = {name: code for code, name in enumerate(STATE_TIERS)}
_KNOWN_FLAGS = sum(STATE_FLAG.values())
_SIZE = struct.Struct("<I")
_MAX_BODY_BYTES = 1 << 26  # far above any state: a corrupt size must not allocate GiBs


#: the longest identifier (event, customer, ticket, sku) and category the contract allows
_LONGEST_ID = 256
_LONGEST_LABEL = 128


def max_state_bytes(ingest: IngestSettings, spikes: SpikeSettings, rules: CareSettings) -> int:
    """An upper bound of one customer's encoded state, from the caps on everything in it
    that grows with events, filled with the longest identifiers the contract allows. The
    state is one changelog message, so this must fit the producer's limit
    (`kafka.max_message_bytes`); tests/unit/test_state_bounds.py fills every cap."""
    ids = 4 * (ingest.dedupe_max_ids_per_customer * 16 + STATE_STREAM.size)  # int64 pairs
    tickets = care.MAX_PENDING_TICKETS * (_LONGEST_ID + 30)  # [at, ticket id, status]
    ratings = care.MAX_PENDING_RATINGS * (_LONGEST_ID + _LONGEST_LABEL + 60)
    categories = (spikes.recent_days + spikes.baseline_days) * (spikes.max_categories + 1)
    basic = categories * (_LONGEST_LABEL + 10) + (spikes.max_categories + 1) * (_LONGEST_LABEL + 15)
    skus = 3 * rules.max_skus * (_LONGEST_ID + 30)  # waiting for the close, and the stock
    timeline = care.TIMELINE_ENTRIES * (6 * care.TIMELINE_TEXT + 30)  # JSON escapes
    days = 366 * 8 * (FIELDS + 1)  # the day and its int64 bucket, per day of the look-back
    pending = MAX_PENDING_DAYS * 8  # purchase days after the last evaluated day
    body = ids + tickets + ratings + basic + skus + days + pending + timeline + 10_000
    return 1 + _SIZE.size + body + body // 255 + 16  # LZ4's worst case: incompressible


class StateDecodeError(ValueError):
    """A stored state that this version cannot read."""


def encode_state(state: CustomerState) -> bytes:
    """Serialise a customer's state (version 3: binary, compressed)."""
    care = b"" if state.care.is_empty() else orjson.dumps(_encode_care(state.care))
    name = state.customer_id.encode("utf-8")
    days, rows = state.days.days_array, state.days.rows_array
    history = state.history
    optional = (
        ("last_order_at", state.last_order_at),
        ("preference_at", state.preference_at),
        ("closed_day", state.closed_day),
        ("tier_since", state.tier_since),
        ("tiered_day", state.tiered_day),
    )
    flags_history = STATE_FLAG["first_purchase_day"] if history.first_day is not None else 0
    if history.settled_last is not None:
        flags_history |= STATE_FLAG["settled_last_day"]
    if state.published is not None:
        flags_history |= STATE_FLAG["published"]
    flags = (
        STATE_FLAG["do_not_call"] * state.do_not_call
        | STATE_FLAG["stale"] * state.stale
        | STATE_FLAG["judged"] * state.judged
        | STATE_FLAG["score"] * (state.score is not None)
        | STATE_FLAG["percentile"] * (state.percentile is not None)
        | flags_history
    )
    for field, value in optional:
        if value is not None:
            flags |= STATE_FLAG[field]
    parts = [
        STATE_HEADER.pack(
            flags,
            _TIER_CODE[state.tier],
            state.first_seen_at,
            state.last_event_at,
            *(value or 0 for _, value in optional),
            state.revenue,
            state.service_cost,
            state.purchases,
            state.purchase_amount,
            state.refund_amount,
            state.contacts,
            state.basic_questions,
            0.0 if state.score is None else state.score,
            0.0 if state.percentile is None else state.percentile,
            len(name),
            len(state.streams),
            len(days),
            len(care),
            history.first_day or 0,
            history.days,
            history.first_amount,
            history.settled_last or 0,
            len(history.pending),
            state.published or 0,
        ),
        name,
    ]
    for stream, memory in state.streams.items():
        seen = array("q", chain.from_iterable(memory.seen.items()))
        parts.append(
            STATE_STREAM.pack(_STREAM_CODE[stream], memory.last_at, memory.floor, len(memory.seen))
        )
        parts.append(_bytes(seen))
    parts.append(_bytes(array("q", history.pending)))
    parts.append(_bytes(days))
    parts.extend(_bytes(rows[f::FIELDS]) for f in range(FIELDS))
    parts.append(care)
    return pack_body(b"".join(parts))


def pack_body(body: bytes) -> bytes:
    """A current-version state from its uncompressed body (the inverse of `unpack_body`
    for a state of this version)."""
    compressed: bytes = lz4.block.compress(body, store_size=False)
    return _VERSION_BYTE + _SIZE.pack(len(body)) + compressed


def unpack_body(data: bytes) -> bytes:
    """The uncompressed body of a version-2, -3 or -4 state (StateDecodeError otherwise)."""
    if data[:1] != _VERSION_BYTE and data[:1] not in _OLDER_BYTES:
        raise StateDecodeError(f"unknown state version {data[:1]!r}")
    try:
        (size,) = _SIZE.unpack_from(data, 1)
        if size > _MAX_BODY_BYTES:
            raise StateDecodeError(f"implausible state size {size}")
        body: bytes = lz4.block.decompress(
            memoryview(data)[1 + _SIZE.size :], uncompressed_size=size
        )
    except (lz4.block.LZ4BlockError, struct.error, ValueError, OverflowError) as exc:
        raise StateDecodeError(f"corrupt customer state: {exc!r}") from exc
    if len(body) != size:
        raise StateDecodeError("state shorter than its recorded size")
    return body


def decode_state(data: bytes) -> CustomerState:
    """Read a stored state; raise StateDecodeError for a format this version does not know."""
    if data[:1] == b"{":
        return _decode_v1(data)
    body = unpack_body(data)
    try:
        return _decode_binary(body, version=data[0])
    except StateDecodeError:
        raise
    except (
        lz4.block.LZ4BlockError,
        struct.error,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        OverflowError,
    ) as exc:
        raise StateDecodeError(f"corrupt customer state: {exc!r}") from exc


def _decode_binary(body: bytes, *, version: int) -> CustomerState:
    header = {STATE_VERSION: STATE_HEADER, 3: STATE_HEADER_V3}.get(version, STATE_HEADER_V2)
    fields = list(header.unpack_from(body))
    published = fields.pop() if version == STATE_VERSION else 0
    if version >= 3:
        (
            *fields,
            first_purchase_day,
            purchase_days,
            first_day_amount,
            settled_last,
            pending_count,
        ) = fields
    (
        flags,
        tier,
        first_seen_at,
        last_event_at,
        last_order_at,
        preference_at,
        closed_day,
        tier_since,
        tiered_day,
        revenue,
        service_cost,
        purchases,
        purchase_amount,
        refund_amount,
        contacts,
        basic_questions,
        score,
        percentile,
        name_length,
        stream_count,
        day_count,
        care_length,
    ) = fields
    if flags & ~_KNOWN_FLAGS:
        raise StateDecodeError(f"unknown state flags {flags:#x}")
    at = header.size
    customer_id = bytes(body[at : at + name_length]).decode("utf-8")
    if len(customer_id.encode("utf-8")) != name_length or not customer_id:
        raise StateDecodeError("truncated customer id")
    at += name_length
    streams: dict[str, StreamMemory] = {}
    for _ in range(stream_count):
        code, last_at, floor, count = STATE_STREAM.unpack_from(body, at)
        at += STATE_STREAM.size
        seen, at = _array(body, at, 2 * count)
        name = STATE_STREAMS[code]
        if name in streams:
            raise StateDecodeError(f"stream {name} stored twice")
        streams[name] = StreamMemory(last_at, floor, dict(zip(seen[0::2], seen[1::2], strict=True)))
    if version >= 3:
        pending, at = _array(body, at, pending_count)
        if any(b <= a for a, b in itertools.pairwise(pending)):
            raise StateDecodeError("pending purchase days out of order")
        history = PurchaseHistory(
            first_day=first_purchase_day if flags & STATE_FLAG["first_purchase_day"] else None,
            days=purchase_days,
            first_amount=first_day_amount,
            settled_last=settled_last if flags & STATE_FLAG["settled_last_day"] else None,
            pending=list(pending),
        )
    else:
        history = estimated_history(first_seen_at, purchases, purchase_amount, last_order_at)
    table, at = _array(body, at, (FIELDS + 1) * day_count)  # days, then one column per field
    n = day_count
    days = table[:n]
    rows = array("q", bytes(8 * FIELDS * n))
    for f in range(FIELDS):
        rows[f::FIELDS] = table[(f + 1) * n : (f + 2) * n]
    care_json = body[at : at + care_length]
    if at + care_length != len(body):
        raise StateDecodeError(f"state has {len(body) - at - care_length} bytes too many or few")
    care = _decode_care(orjson.loads(care_json) if care_length else None)

    def present(field: str, value: int) -> int | None:
        return value if flags & STATE_FLAG[field] else None

    return CustomerState(
        customer_id=customer_id,
        first_seen_at=first_seen_at,
        last_event_at=last_event_at,
        last_order_at=present("last_order_at", last_order_at),
        revenue=revenue,
        service_cost=service_cost,
        purchases=purchases,
        purchase_amount=purchase_amount,
        refund_amount=refund_amount,
        contacts=contacts,
        basic_questions=basic_questions,
        do_not_call=bool(flags & STATE_FLAG["do_not_call"]),
        preference_at=present("preference_at", preference_at),
        streams=streams,
        days=DayBuckets.from_arrays(days, rows),
        stale=bool(flags & STATE_FLAG["stale"]),
        closed_day=present("closed_day", closed_day),
        score=score if flags & STATE_FLAG["score"] else None,
        judged=bool(flags & STATE_FLAG["judged"]),
        tier=STATE_TIERS[tier],
        tier_since=present("tier_since", tier_since),
        tiered_day=present("tiered_day", tiered_day),
        percentile=percentile if flags & STATE_FLAG["percentile"] else None,
        care=care,
        history=history,
        published=present("published", published),
    )


def estimated_history(
    first_seen_at: int, purchases: int, purchase_amount: int, last_order_at: int | None
) -> PurchaseHistory:
    """The purchase history of a state written before version 3, from its lifetime
    figures: first seen as the first purchase day, orders as purchase days, the mean
    order as the first day's spend, the last order as settled."""
    if purchases <= 0:
        return PurchaseHistory()
    return PurchaseHistory(
        first_day=day_of(first_seen_at),
        days=purchases,
        first_amount=purchase_amount // purchases,
        settled_last=day_of(last_order_at if last_order_at is not None else first_seen_at),
    )


def _bytes(values: array[int]) -> bytes:
    if not _LITTLE:
        values = array("q", values)
        values.byteswap()
    return values.tobytes()


def _array(body: bytes, at: int, count: int) -> tuple[array[int], int]:
    end = at + 8 * count
    if end > len(body):
        raise StateDecodeError("truncated state")
    values = array("q")
    values.frombytes(body[at:end])
    if not _LITTLE:
        values.byteswap()
    return values, end


# -- the care memory: compact JSON inside the binary record --------------------------------
def care_fingerprint(care: CareMemory) -> bytes:
    """The care memory as encoded: equal bytes, equal memory (to tell whether a step
    changed it)."""
    return orjson.dumps(_encode_care(care))


def _encode_care(care: CareMemory) -> dict[str, Any]:
    return {
        "last_task": care.last_task,
        "churn": [care.churn_anchor, care.churn_stage],
        # by sku: the same memory encodes the same, whatever order the skus came in
        "stock": dict(sorted(care.stock.items())),
        "orders": dict(sorted(care.orders.items())),
        "ratings": care.ratings,
        "basic_days": {str(d): c for d, c in care.basic_days.items()},
        "solved": care.solved,
        "last_spike": care.last_spike,
        "tier_log": care.tier_log,
        "tickets": care.tickets,
        "timeline": care.timeline,
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
        timeline=[list(e) for e in obj.get("timeline") or []],  # absent before it existed
    )


# -- version 1: JSON (schemas/state.py CustomerStateRecord), read only ---------------------
def _decode_v1(data: bytes) -> CustomerState:
    try:
        obj: dict[str, Any] = orjson.loads(data)
        version = obj.get("v")
        if version != 1:
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
                name: StreamMemory(last_at, floor, _unpack_seen_v1(seen))
                for name, (last_at, floor, seen) in obj["streams"].items()
            },
            days=DayBuckets({row[0]: _pad_v1(row[1:]) for row in obj["days"]}),
            stale=obj["stale"],
            closed_day=obj["closed_day"],
            score=obj["score"],
            judged=obj["judged"],
            tier=obj["tier"],
            tier_since=obj["tier_since"],
            tiered_day=obj["tiered_day"],
            percentile=obj["percentile"],
            care=_decode_care(obj.get("care")),
            history=estimated_history(
                obj["first_seen_at"],
                obj["purchases"],
                obj["purchase_amount"],
                obj["last_order_at"],
            ),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"corrupt customer state: {exc!r}") from exc


def _pad_v1(fields: list[int]) -> list[int]:
    if len(fields) > FIELDS:
        raise StateDecodeError(f"a day bucket has {len(fields)} fields, at most {FIELDS}")
    return fields + [0] * (FIELDS - len(fields))


def _unpack_seen_v1(text: str) -> dict[int, int]:
    flat = array("q")
    flat.frombytes(base64.b64decode(text, validate=True))
    if not _LITTLE:
        flat.byteswap()
    return dict(zip(flat[0::2], flat[1::2], strict=True))
