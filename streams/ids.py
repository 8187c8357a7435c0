"""Stable hashing and deterministic ids: the same input history gives the same ids."""

from __future__ import annotations

import hashlib


def id_hash(event_id: str) -> int:
    """A stable signed 64-bit hash of an event id (Python's hash() is salted per process).

    Collisions need ~4 billion ids within one customer's dedupe horizon to become likely.
    """
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def deterministic_id(kind: str, *parts: object) -> str:
    """An output id derived from what the output is about, e.g. ('dl', topic, partition, offset)."""
    text = "\x1f".join([kind, *(str(p) for p in parts)])
    return f"{kind}-{hashlib.blake2b(text.encode('utf-8'), digest_size=16).hexdigest()}"


def erasure_hash(customer_id: str) -> str:
    """What a partition remembers of an erased customer: a 128-bit hash of its id, to
    recognise its older input (a pseudonym, not the id; README "Erasure")."""
    digest = hashlib.blake2b(customer_id.encode("utf-8"), digest_size=16, person=b"vipstream-erase")
    return digest.hexdigest()
