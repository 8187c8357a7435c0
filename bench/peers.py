"""Peers of `make bench`, on the same events in the same Apache Kafka node as the
pipeline's run there (issue 24): Kafka Streams (bench/peers/kafka-streams, built with
Maven) and Quix Streams (bench/peers/quix_app.py, in its own virtualenv), each keeping a
per-customer running total on RocksDB, at least once and exactly once. Each reads the
input topics from their start with its own group and reports events/s from its first
event to the last one aggregated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

from agents.tools.kafka_broker import java

PEERS = Path(__file__).parent / "peers"
STREAMS_APP = PEERS / "kafka-streams"
QUIX_APP = PEERS / "quix_app.py"
#: the Quix virtualenv: outside the checkout, like the Kafka jars
QUIX_ENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vipstream-quix"
QUIX_REQUIREMENT = "quixstreams>=3.20,<4"
#: how long one peer may take to read the stream (it is measured, not waited for)
TIMEOUT_SECONDS = 900.0


class PeerError(RuntimeError):
    """A peer could not be built or did not finish."""


def kafka_streams_classpath() -> str:
    """Build the Kafka Streams app (once; Maven caches its dependencies) and return the
    classpath to run it with."""
    dependencies = STREAMS_APP / "target" / "dependency"
    classes = STREAMS_APP / "target" / "classes"
    if not (classes / "io" / "vipstream" / "bench" / "Aggregate.class").exists():
        mvn = shutil.which("mvn")
        if mvn is None:
            raise PeerError("the Kafka Streams peer needs Maven (mvn) on the PATH")
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(STREAMS_APP / "pom.xml"),
                "compile",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PeerError(f"building the Kafka Streams peer failed:\n{result.stdout[-3000:]}")
    return f"{classes}{os.pathsep}{dependencies}/*"


def quix_python() -> Path:
    """The Quix virtualenv's python, made and filled once."""
    python = QUIX_ENV / "bin" / "python"
    marker = QUIX_ENV / "installed"
    if not marker.exists() or marker.read_text() != QUIX_REQUIREMENT:
        venv.create(QUIX_ENV, with_pip=True, clear=True)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", QUIX_REQUIREMENT],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PeerError(f"installing {QUIX_REQUIREMENT} failed:\n{result.stderr[-3000:]}")
        marker.write_text(QUIX_REQUIREMENT)
    return python


def _run(command: list[str], events: int, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    wall = time.perf_counter() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise PeerError(
            f"{name} exited {result.returncode} without a result:\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    found = json.loads(lines[-1])
    if found["events"] < events:
        raise PeerError(f"{name} aggregated {found['events']} of {events} events")
    return {
        "events": found["events"],
        "seconds": found["seconds"],
        "events_per_second": found["events"] / found["seconds"],
        "seconds_from_start": found["seconds_from_start"],
        "process_seconds": wall,
    }


def run_peers(bootstrap: str, topics: list[str], events: int, run_id: str) -> dict[str, Any]:
    """Every peer on the input `topics` (holding `events` events); figures by peer name.
    A peer that cannot be built or run is reported with its error, the others still run."""
    found: dict[str, Any] = {}
    try:
        classpath = kafka_streams_classpath()
        for guarantee in ("at_least_once", "exactly_once_v2"):
            command = [
                java(),
                "-Xmx1g",
                "-cp",
                classpath,
                "io.vipstream.bench.Aggregate",
                bootstrap,
                f"{run_id}-kstreams-{guarantee}".replace("_", "-"),
                guarantee,
                "5000",
                str(events),
                *topics,
            ]
            found[f"kafka_streams_{guarantee}"] = _run(command, events, "Kafka Streams")
    except (PeerError, subprocess.TimeoutExpired) as exc:
        found["kafka_streams_error"] = str(exc)[-2000:]
    try:
        python = quix_python()
        for guarantee in ("at-least-once", "exactly-once"):
            command = [
                str(python),
                str(QUIX_APP),
                bootstrap,
                f"{run_id}-quix-{guarantee}",
                guarantee,
                "5.0",
                str(events),
                *topics,
            ]
            found[f"quix_{guarantee.replace('-', '_')}"] = _run(command, events, "Quix Streams")
    except (PeerError, subprocess.TimeoutExpired) as exc:
        found["quix_error"] = str(exc)[-2000:]
    print(f"peers: {json.dumps(found)[:400]}", file=sys.stderr)
    return found
