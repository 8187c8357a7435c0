"""The ledger checkpoint: what a start reads instead of decoding every customer's state.

A partition's ledger (streams/ledger.py: the score index, due days, stale days, tier
counts, the purchase-model sample, ...) is a function of its customers' states. Building
it from the states means decoding every one of them: minutes at a million customers, at
every start and every rebalance. So the ledger is saved beside the states, in the same
table, and a start reads the save plus the few customers changed since:

- **checkpoint**: the ledger in JSON, compressed, cut into records of at most
  `kafka.max_message_bytes / 2` under `\\0ledger\\0<partition>\\0<slot>\\0<i>`. Two slots
  alternate (checkpoint number modulo 2), so writing one never damages the one the
  partition's progress names.
- **journal**: with every snapshot, before its customer states, a record listing the
  customers of the partition that the snapshot writes, and the derived figures it
  patches (a close or tiering that decided nothing: `streams.valuation.Derived`, kept
  instead of rewriting the whole state), numbered, in a ring of `JOURNAL_RING` keys
  `\\0journal\\0<partition>\\0<n mod ring>`. A start re-derives exactly the customers
  journaled since the checkpoint. The checkpoint holds the patches outstanding at its
  snapshot; the journal the ones since.
- the partition's **progress** record (written last in every snapshot) names the valid
  checkpoint (`Reference`): its number, slot, record count and the first journal
  number after it.

Order within a snapshot, on the partition's changelog partition: journal records, customer
states, checkpoint records, progress. A crash part-way through leaves the previous
progress, which names the previous checkpoint (the other slot, untouched) and a journal
that covers at least every state that did arrive. Locally (RocksDB) a snapshot's records
are written in one atomic batch per partition.

A partition's ledger is checkpointed when no close or tiering is part-way through it
(`PartitionLedger.busy`: their candidate sets are in flight), once enough of its
customers are journaled or enough time has passed (`CheckpointPolicy`), one partition per
snapshot. The ledger is copied at a snapshot (shallow copies of its dicts and sets) and
the copy encoded off the event loop (`Book.offload`, a thread in the worker); its records
and the progress naming it go with the first later snapshot after the encoding is done,
the journal counted from the snapshot after the copy's. A snapshot taken while the worker
stops or its partitions move waits for it. A journal that
would overrun its ring, or a checkpoint that cannot be read, falls back to building the
ledger from every state (logged), and the next snapshot writes a new checkpoint.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from agents.engine.store import Change
from streams.valuation import Derived

#: journal records per partition before the ring wraps (a checkpoint is due long before)
JOURNAL_RING = 4096
#: customers per journal record (a record stays far below any message size limit)
JOURNAL_KEYS = 8_000
_NUMBER = struct.Struct(">Q")
_T = TypeVar("_T")
_CHUNK_HEAD = struct.Struct(">QII")  # checkpoint number, index, count


def checkpoint_key(partition: int, slot: int, index: int) -> bytes:
    return b"\x00ledger\x00%d\x00%d\x00%d" % (partition, slot, index)


def journal_key(partition: int, number: int) -> bytes:
    return b"\x00journal\x00%d\x00%d" % (partition, number % JOURNAL_RING)


@dataclass(frozen=True, slots=True)
class Reference:
    """Where a partition's valid checkpoint is (kept in its progress record)."""

    number: int
    chunks: int
    journal_from: int  # the first journal number written after the checkpoint

    @property
    def slot(self) -> int:
        return self.number % 2

    def to_json(self) -> dict[str, int]:
        return {"number": self.number, "chunks": self.chunks, "journal_from": self.journal_from}

    @classmethod
    def from_json(cls, data: dict[str, int] | None) -> Reference | None:
        if not data:
            return None
        return cls(int(data["number"]), int(data["chunks"]), int(data["journal_from"]))


class CheckpointError(ValueError):
    """A checkpoint or journal record that cannot be used (the ledger is built from the
    states instead)."""


def encode_checkpoint(
    partition: int, number: int, ledger_json: dict[str, Any], max_bytes: int
) -> list[tuple[bytes, bytes]]:
    """(key, value) records of one checkpoint."""
    blob = zlib.compress(orjson.dumps(ledger_json), 1)
    size = max(1024, max_bytes // 2)
    pieces = [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]
    slot = number % 2
    return [
        (
            checkpoint_key(partition, slot, index),
            _CHUNK_HEAD.pack(number, index, len(pieces)) + piece,
        )
        for index, piece in enumerate(pieces)
    ]


def decode_checkpoint(
    partition: int, reference: Reference, read: Callable[[bytes], bytes | None]
) -> dict[str, Any]:
    """The ledger JSON of the referenced checkpoint; CheckpointError if any record is
    missing or belongs to another checkpoint."""
    pieces = []
    for index in range(reference.chunks):
        raw = read(checkpoint_key(partition, reference.slot, index))
        if raw is None or len(raw) < _CHUNK_HEAD.size:
            raise CheckpointError(f"checkpoint {reference.number} record {index} is missing")
        number, at, count = _CHUNK_HEAD.unpack_from(raw)
        if (number, at, count) != (reference.number, index, reference.chunks):
            raise CheckpointError(
                f"checkpoint record {index} belongs to checkpoint {number}, not {reference.number}"
            )
        pieces.append(raw[_CHUNK_HEAD.size :])
    try:
        data: dict[str, Any] = orjson.loads(zlib.decompress(b"".join(pieces)))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {reference.number} is damaged: {exc}") from exc
    return data


def encode_journal(
    number: int, keys: Iterable[bytes], patches: Iterable[tuple[bytes, Derived]] = ()
) -> bytes:
    body = {"written": [key.decode() for key in keys], "patched": patches_json(patches)}
    return _NUMBER.pack(number) + orjson.dumps(body)


@dataclass
class JournalRead:
    """What a partition's journal says since its checkpoint."""

    #: every customer written or patched since
    keys: set[bytes]
    #: the patches outstanding after the journal, from those of the checkpoint
    patches: dict[bytes, Derived]
    next_number: int


def read_journal(
    partition: int,
    start: int,
    read: Callable[[bytes], bytes | None],
    patches: dict[bytes, Derived] | None = None,
) -> JournalRead:
    """The journal from number `start` on, applied to the checkpoint's `patches`: a
    whole state written drops its customer's patch, a patch replaces it. The journal
    ends at the first number whose ring slot is empty or holds another lap's record."""
    found = JournalRead(set(), dict(patches or {}), start)
    number = start
    while number - start < JOURNAL_RING:
        raw = read(journal_key(partition, number))
        if raw is None or len(raw) < _NUMBER.size or _NUMBER.unpack_from(raw)[0] != number:
            break
        body = orjson.loads(raw[_NUMBER.size :])
        for text in body["written"]:
            key = text.encode()
            found.keys.add(key)
            found.patches.pop(key, None)
        for text, *derived in body["patched"]:
            key = text.encode()
            found.keys.add(key)
            found.patches[key] = as_derived(derived)
        number += 1
    found.next_number = number
    return found


def as_derived(values: list[Any]) -> Derived:
    closed, stale, score, judged, tiered, percentile, *rest = values
    published = rest[0] if rest else None  # absent in patches written before it existed
    return (closed, bool(stale), score, bool(judged), tiered, percentile, published)


def patches_json(patches: Iterable[tuple[bytes, Derived]]) -> list[list[Any]]:
    """(customer, derived figures) pairs as JSON rows: [customer id, *figures]."""
    return [[key.decode(), *derived] for key, derived in patches]


def patches_of_json(rows: list[list[Any]]) -> dict[bytes, Derived]:
    return {text.encode(): as_derived(derived) for text, *derived in rows}


@dataclass(frozen=True)
class PendingCheckpoint:
    """A checkpoint of the ledger as of one snapshot, encoded off the event loop."""

    number: int
    journal_from: int  # the first journal number after that snapshot
    records: Future[list[tuple[bytes, bytes]]]


def run_now(work: Callable[[], _T]) -> Future[_T]:
    """`work` run at once, as a finished future (the engine's harness and the backfill,
    where nothing waits on the event loop meanwhile)."""
    done: Future[_T] = Future()
    try:
        done.set_result(work())
    except Exception as exc:  # handed to whoever takes the result
        done.set_exception(exc)
    return done


@dataclass
class Journal:
    """A partition's journal and checkpoint bookkeeping on this worker."""

    next_number: int = 0
    #: the valid checkpoint (None: none, the next snapshot should write one)
    reference: Reference | None = None
    #: the number of the latest checkpoint written or named (the next takes the other slot)
    last_number: int = 0
    #: customers journaled since the checkpoint
    journaled: set[bytes] = field(default_factory=set)
    last_checkpoint: float = 0.0
    #: a checkpoint taken at a snapshot, being encoded, for the next snapshot
    pending: PendingCheckpoint | None = None

    def records(
        self,
        partition: int,
        keys: list[bytes],
        patches: list[tuple[bytes, Derived]] | None = None,
    ) -> list[Change]:
        """The journal records of a snapshot that writes these customers and patches
        these derived figures."""
        changes: list[Change] = []
        journaled = self.journaled
        patched = patches or []
        for start in range(0, max(len(keys), len(patched)), JOURNAL_KEYS):
            part = keys[start : start + JOURNAL_KEYS]
            some = patched[start : start + JOURNAL_KEYS]
            number = self.next_number
            self.next_number += 1
            changes.append(
                (journal_key(partition, number), partition, encode_journal(number, part, some))
            )
            journaled.update(part)
            journaled.update(key for key, _ in some)
        reference = self.reference
        if reference is not None and not self.keeps(reference.journal_from):
            self.reference = None  # the ring would overwrite what a start must read
        return changes

    def keeps(self, journal_from: int) -> bool:
        """Whether the ring still holds every journal record from `journal_from` on."""
        return self.next_number - journal_from < JOURNAL_RING


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When a partition's ledger is checkpointed: at once when it has none; else once
    `fraction` of its customers (at least `min_customers`) are journaled since the last
    one, or `interval_seconds` have passed with any journaled; never more often than
    every `min_gap_seconds` unless it has none; at once when the worker stops or its
    partitions move."""

    interval_seconds: float = 60.0
    fraction: float = 0.05
    min_customers: int = 2000
    min_gap_seconds: float = 2.0

    def due(self, journal: Journal, customers: int, now: float, *, urgent: bool = False) -> bool:
        """`urgent`: the worker is stopping or its partitions are moving: whoever starts
        them next should read as little as possible."""
        if journal.reference is None:
            return True
        journaled = len(journal.journaled)
        if not journaled:
            return False
        if urgent:
            return True
        elapsed = now - journal.last_checkpoint
        if elapsed >= self.interval_seconds:
            return True
        threshold = max(self.min_customers, int(self.fraction * customers))
        return journaled >= threshold and elapsed >= self.min_gap_seconds
