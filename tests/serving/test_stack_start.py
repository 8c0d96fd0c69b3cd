"""The stack's two servers start side by side: when one fails, the one that started is stopped and nothing is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.adapters import services
from ctloop.adapters.services import ServiceError
from ctloop.app import stack
from ctloop.config import Settings


class HalfLauncher(stack.Processes):
    """The real feature server; a microservice that fails to start (as when its port is taken)."""

    def __init__(self) -> None:
        """Nothing started yet."""
        self.feature: stack.Process | None = None

    def feature_server(self, settings: Settings, port: int, workers: int, log_dir: Path) -> stack.Process:
        """``feast serve``, kept to check it is stopped."""
        self.feature = super().feature_server(settings, port, workers, log_dir)
        return self.feature

    def microservice(
        self, settings: Settings, model_dir: Path, feature_url: str, ports: tuple[int, int], log_dir: Path
    ) -> stack.Process:
        """Fails at once."""
        raise ServiceError(f"port {ports[0]} (Seldon microservice) is taken: stop what runs there or change [serving]")


def test_a_failed_start_stops_the_server_that_started(registered):
    """The microservice's error reaches the caller; feast serve and Redis are stopped."""
    settings = services.own_ports(registered.settings)
    port = settings.services.redis_port
    launcher = HalfLauncher()
    with pytest.raises(ServiceError, match="is taken"), stack.serving_stack(settings, launcher=launcher):
        pytest.fail("the stack must not start without its microservice")
    assert launcher.feature is not None, "the feature server was started beside the microservice"
    assert not launcher.feature.alive()
    assert not services.port_open(settings.serving.feature_server_port)
    assert not services.redis_ping(port)
