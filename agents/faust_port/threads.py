"""Another thread's stack: `sys._current_frames()`, the standard library's documented
(underscore-named) way to see it, for the event-loop stall watchdog."""

from __future__ import annotations

import sys
from types import FrameType


def stack_of(thread_id: int) -> FrameType | None:
    """The innermost frame the thread is running now (None: no such thread)."""
    return sys._current_frames().get(thread_id)
