"""streams.keys places keyed messages where Kafka's producers do (aiokafka's partitioner
is the reference: it follows the Java client's Utils.murmur2)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.keys import murmur2, partition_of


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.integers(1, 64))
def test_partition_is_the_default_partitioners(customer_id: str, partitions: int) -> None:
    key = customer_id.encode()
    expected = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
    assert partition_of(key, partitions) == expected
