from tests.integration.conftest import broker, env  # noqa: F401  (shared session broker)
