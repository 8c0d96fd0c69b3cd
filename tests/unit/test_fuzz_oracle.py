"""The fuzzer's oracle and generators (reliability/fuzz.py), without a server: what it calls a problem."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings

from reliability.fuzz import KINDS, Answer, Limits, Oracle, Probe, Raw, encode, malformed_probes, put

ORACLE = Oracle()
JSON_HEADERS = {"content-type": "application/json"}


def error_body(code: int, **extra: str) -> bytes:
    return json.dumps(
        {"status": {"code": code, "status": "FAILURE", "reason": "BAD_FIELD", "info": "x", **extra}}
    ).encode()


def judge(status: int, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> str | None:
    return ORACLE.judge(method, "/api/v1.0/predictions", Answer(status, headers or JSON_HEADERS, body))


def test_a_structured_4xx_passes():
    assert judge(400, error_body(400, field="jsonData")) is None
    assert judge(405, error_body(405), {"allow": "OPTIONS, POST", **JSON_HEADERS}) is None


def test_server_errors_and_dropped_connections_are_problems():
    assert "server error 500" in (judge(500, error_body(500)) or "")
    assert "server error 503" in (judge(503, error_body(503)) or "")
    assert "no answer" in (ORACLE.judge("POST", "/", Answer(0, {}, b"", "ConnectionResetError")) or "")


def test_unstructured_or_inconsistent_4xx_are_problems():
    assert "not JSON" in (judge(400, b"<html>Bad Request</html>", {"content-type": "text/html"}) or "")
    assert "Error schema" in (judge(400, b'{"error": "bad"}') or "")
    assert "Error schema" in (judge(400, error_body(400, extra="field not in the schema")) or "")
    assert "says code 400" in (judge(413, error_body(400)) or "")
    assert "Allow" in (judge(405, error_body(405)) or "")


def test_gunicorns_own_rejections_of_the_request_line_pass_only_as_html():
    """414/431 come from gunicorn's parser before the app: accepted as HTML, not as anything else."""
    assert judge(414, b"<html>URI Too Long</html>", {"content-type": "text/html"}) is None
    assert judge(414, b"oops", JSON_HEADERS) is not None
    assert judge(400, b"<html>Bad Request</html>", {"content-type": "text/html"}) is not None


def test_a_200_must_match_the_declared_response():
    tags = {"model_name": "m", "model_version": "1", "alias": "champion", "feature_service": "f"}
    good = {"jsonData": {"probabilities": [0.2]}, "meta": {"tags": tags}}
    assert judge(200, json.dumps(good).encode()) is None
    bad = {**good, "jsonData": {"probabilities": [1.5]}}
    assert "declared response" in (judge(200, json.dumps(bad).encode()) or "")
    assert ORACLE.judge("GET", "/health/ping", Answer(200, {}, b"pong")) is None  # not a JSON route


def test_raw_values_are_sent_verbatim():
    body = encode({"a": [Raw("NaN"), Raw("1" + "0" * 400)], "b": "\ud800"})
    assert body.startswith(b'{"a": [NaN, 1000') and b'"\\ud800"' in body
    assert b'"\xed\xa0\x80"' in encode({"b": "\ud800"}, ascii_only=False)  # a lone surrogate as bytes: not UTF-8
    assert put({"x": [0, {"y": 1}]}, ("x", 1, "y"), 2) == {"x": [0, {"y": 2}]}
    assert put({"x": 1}, (), "whole") == "whole"


def test_every_kind_of_probe_is_generated_within_its_limits():
    """Generation alone (no server): every kind appears; oversized bodies are over the limit and expect 413."""
    limits = Limits(max_body_bytes=2048, max_batch=5, feature_names=("a", "b", "c"))
    seen: set[str] = set()

    @settings(max_examples=400, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(malformed_probes(limits))
    def check(probe: Probe) -> None:
        seen.add(probe.kind)
        assert probe.method and probe.path.startswith("/")
        if probe.expect == 413:
            assert len(probe.body) > limits.max_body_bytes

    check()
    assert seen == set(KINDS)
