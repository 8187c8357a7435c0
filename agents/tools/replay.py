"""`vipstream replay FILE...`: JSONL events to the input topics, routed by event_type.

Lines are sent byte for byte (the workers validate them); a line that cannot even be
routed (not JSON, no known event_type, no customer_id) is reported with its line number
and not sent. Valid lines are always sent; the exit code says whether any line was bad.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from agents.kafka.admin import ensure_topics
from agents.kafka.clients import BatchSender, make_producer
from agents.settings import Settings
from agents.topics import INPUT_EVENT_TYPES

_TOPIC_KEY_OF = {event_type: key for key, event_type in INPUT_EVENT_TYPES.items()}
_MAX_REPORTED = 50


@dataclass
class ReplayReport:
    sent: int = 0
    blank: int = 0
    invalid: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, why)
    seconds: float = 0.0


def route_line(line: bytes) -> tuple[str, bytes] | str:
    """(topic key, message key) for a JSONL line, or why it cannot be routed."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return "not a JSON object"
    event_type = obj.get("event_type")
    topic_key = _TOPIC_KEY_OF.get(event_type) if isinstance(event_type, str) else None
    if topic_key is None:
        return f"unknown event_type {event_type!r}"
    customer = obj.get("customer_id")
    if not isinstance(customer, str) or not customer:
        return "missing customer_id"
    return topic_key, customer.encode()


class Progress:
    """One self-overwriting line on a terminal; a line every few seconds otherwise."""

    def __init__(
        self, total_bytes: int, stream: TextIO = sys.stderr, *, done_word: str = "sent"
    ) -> None:
        self._total = max(total_bytes, 1)
        self._done_word = done_word
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._last = 0.0

    def set_total(self, total: int) -> None:
        """What `update`'s first argument reaches at the end, once it is known."""
        self._total = max(total, 1)

    def update(self, done_bytes: int, sent: int, invalid: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self._tty else 5.0):
            return
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        share = min(done_bytes / self._total, 1.0)
        width = 30
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        text = (
            f"[{bar}] {share:6.1%}  {sent:,} {self._done_word}  {invalid:,} invalid  "
            f"{sent / elapsed:,.0f} events/s"
        )
        end = "\n" if final or not self._tty else ""
        self._stream.write(("\r" if self._tty else "") + text + end)
        self._stream.flush()


async def replay_files(
    settings: Settings, files: Iterable[Path], *, progress: bool = True
) -> ReplayReport:
    paths = list(files)
    await ensure_topics(settings, wait_seconds=30.0)
    topics = {key: settings.topics.name(key) for key in INPUT_EVENT_TYPES}
    report = ReplayReport()
    bar = Progress(sum(p.stat().st_size for p in paths)) if progress else None
    started = time.monotonic()
    producer = make_producer(settings)
    await producer.start()
    try:
        sender = BatchSender(producer)
        done_bytes = 0
        for path in paths:
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    done_bytes += len(raw)
                    line = raw.strip()
                    if not line:
                        report.blank += 1
                        continue
                    routed = route_line(line)
                    if isinstance(routed, str):
                        report.invalid.append((str(path), number, routed))
                        continue
                    topic_key, key = routed
                    await sender.send(topics[topic_key], key, line)
                    if bar is not None:
                        bar.update(done_bytes, sender.sent, len(report.invalid))
        await sender.wait()
        await producer.flush()
        report.sent = sender.sent
        if bar is not None:
            bar.update(done_bytes, sender.sent, len(report.invalid), final=True)
    finally:
        await producer.stop()
    report.seconds = time.monotonic() - started
    return report


def print_invalid(report: ReplayReport, stream: TextIO = sys.stderr) -> None:
    for path, number, why in report.invalid[:_MAX_REPORTED]:
        print(f"{path}:{number}: {why}", file=stream)
    hidden = len(report.invalid) - _MAX_REPORTED
    if hidden > 0:
        print(f"... and {hidden} more invalid lines", file=stream)
