"""The events suite's broker: the integration fixtures (a real embedded broker on a free port,
one per session; tests isolate themselves with a topic prefix)."""

from tests.integration.conftest import broker, kafka

__all__ = ["broker", "kafka"]
