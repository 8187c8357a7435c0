"""The worker's logic as plain objects: the per-event path, the day close and re-tiering,
the commit barrier, the input frontier, the customer-state cache. Imports neither faust,
mode nor aiokafka."""
