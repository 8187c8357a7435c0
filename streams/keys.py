"""Which partition a keyed message lands in: Kafka's default partitioner.

Producers (Kafka's Java client, librdkafka's `murmur2_random`, aiokafka) place a keyed
message in `(murmur2(key) & 0x7fffffff) % partitions`, with Kafka's 32-bit MurmurHash2
(seed 0x9747b28c). The backfill and the engine's harness place a history's messages as
a producer would; tests/unit/test_keys.py checks this against aiokafka's partitioner.
"""

from __future__ import annotations

import functools
import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's MurmurHash2 of `data` (unsigned 32 bits)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for (word,) in struct.iter_unpack("<I", data[:whole]):
        k = (word * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        for i in range(len(tail) - 1, -1, -1):
            h ^= tail[i] << (8 * i)
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=1 << 20)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed message (cached: a
    history repeats its customers' keys)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
