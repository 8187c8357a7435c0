"""Fixtures for the deploy/ checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

import pytest

from agents.settings import Settings, load_settings


@pytest.fixture
def settings_from_env() -> Iterator[Callable[[Mapping[str, str]], Settings]]:
    """Load settings as a worker would with exactly these VIPSTREAM_* variables (the
    test process's own VIPSTREAM_* variables are hidden)."""
    saved = dict(os.environ)

    def load(env: Mapping[str, str]) -> Settings:
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if not k.startswith("VIPSTREAM_")})
        os.environ.update(env)
        return load_settings()

    try:
        yield load
    finally:
        os.environ.clear()
        os.environ.update(saved)
