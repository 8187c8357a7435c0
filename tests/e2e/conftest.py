"""The CLI as a user runs it, on the embedded broker (the demo's broker)."""

from __future__ import annotations

import pytest

from agents.tools.broker import EmbeddedBroker
from tests.integration.conftest import embedded_broker, env  # noqa: F401


@pytest.fixture(scope="session")
def broker(embedded_broker: EmbeddedBroker) -> EmbeddedBroker:  # noqa: F811
    return embedded_broker
