"""Logging helpers: a throttle so that a flood of bad input does not flood the logs."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Allows one log line per key per `interval_seconds`; counts what it held back."""

    def __init__(
        self, interval_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """(log this one?, how many were held back since the last logged one)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._held.pop(key, 0)
