"""Redis (the online store behind feast serve) stopping: 503 with the reason, not ready, then recovery."""

from __future__ import annotations

import pytest

from ctloop.adapters import services
from ctloop.app import stack
from tests.serving.conftest import call, flights_payload
from tests.serving.test_endpoint import GOOD

pytestmark = pytest.mark.slow


def test_redis_down_is_503_then_recovers(registered, tmp_path):
    """Own stack and Redis: Redis stopped → 503 with the feature server's error; Redis back and reloaded → 200."""
    settings = services.own_ports(registered.settings)
    port = settings.services.redis_port
    with stack.serving_stack(settings) as running:
        url = f"{running.rest_url}/api/v1.0/predictions"
        assert call(url, flights_payload([GOOD]))[0] == 200
        assert running.redis.process is not None  # the stack started this Redis itself
        running.redis.stop()
        status, answer = call(url, flights_payload([GOOD]))
        assert (status, answer["status"]["reason"]) == (503, "FEATURE_SERVER_UNAVAILABLE"), answer
        assert "online store" in answer["status"]["info"] or "answered 500" in answer["status"]["info"]
        services.wait_until(lambda: call(f"{running.rest_url}/health/status")[0] == 503, "readiness false", 5)
        redis = services.start_redis(port, tmp_path / "redis")
        try:
            from ctloop.adapters import featurestore as fs

            fs.load_online(settings)  # a new Redis is empty: the online store is rebuilt, as on a restart
            services.wait_until(lambda: call(url, flights_payload([GOOD]))[0] == 200, "recovery", 10)
            services.wait_until(lambda: call(f"{running.rest_url}/health/status")[0] == 200, "readiness true", 5)
        finally:
            redis.stop()
