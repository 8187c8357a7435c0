"""The Quix Streams peer of `make bench` (bench/peers.py): the same per-customer stateful
aggregation as the Kafka Streams peer (bench/peers/kafka-streams), on RocksDB state.
Runs in its own virtualenv (bench/peers.py makes it): Quix's dependencies are not
vipstream's. Prints one JSON line when `expected` events were aggregated.

Usage: python quix_app.py BOOTSTRAP GROUP GUARANTEE COMMIT_SECONDS EXPECTED TOPIC...
(GUARANTEE: at-least-once or exactly-once).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

from quixstreams import Application, State


def main() -> None:
    bootstrap, group, guarantee, commit, expected_text, *topics = sys.argv[1:]
    expected = int(expected_text)
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee=guarantee,
        commit_interval=float(commit),
        state_dir=tempfile.mkdtemp(prefix="quix-peer-"),
        loglevel="WARNING",
    )
    seen = [0, 0.0, 0.0]  # events, first, last (perf_counter)

    def add(raw: bytes, state: State) -> None:
        seen[0] += 1
        if seen[0] == 1:
            seen[1] = time.perf_counter()
        total = state.get("total") or [0.0, 0.0, 0]
        try:
            event: Any = json.loads(raw)
            if event.get("event_type") == "order":
                total[0] += float(event.get("amount", 0))
            else:
                total[1] += float(event.get("cost", event.get("duration_seconds", 0) / 60))
        except (ValueError, TypeError, AttributeError):
            pass  # counted like the others: the bench's stream has a share of invalid lines
        total[2] += 1
        state.set("total", total)
        if seen[0] == expected:
            seen[2] = time.perf_counter()
            app.stop()

    frames = [
        app.dataframe(app.topic(t, key_deserializer="str", value_deserializer="bytes"))
        for t in topics
    ]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)
    sdf.update(add, stateful=True)
    started = time.perf_counter()
    app.run()
    print(
        json.dumps(
            {
                "events": seen[0],
                "seconds": seen[2] - seen[1],
                "seconds_from_start": seen[2] - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
