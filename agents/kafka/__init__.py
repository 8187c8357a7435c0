"""vipstream's own Kafka clients (aiokafka's public API): the batching producer, the hole
re-reader, exact log ends, topic administration, the tools' producers and consumers."""
