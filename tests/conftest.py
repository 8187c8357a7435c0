"""Session-wide test settings."""

from __future__ import annotations

import signal

import pytest


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # A CI timeout sends SIGTERM: unwind like Ctrl-C so fixtures stop the embedded broker
    # and the worker subprocesses (each in its own session) instead of orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
