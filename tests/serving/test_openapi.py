"""serving/openapi.yaml is a valid OpenAPI 3.1 document and the live endpoint answers as it says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.serving.conftest import call, flights_payload
from tests.serving.test_endpoint import BAD_REQUESTS, GOOD

pytestmark = pytest.mark.slow
DOCUMENT = yaml.safe_load((Path(__file__).resolve().parents[2] / "serving" / "openapi.yaml").read_text())
UNEXPRESSIBLE = {"NaN", "Infinity", "bad time"}  # JSON Schema cannot say NaN (not JSON) or "month 13"


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for one schema of the document, its $refs resolved inside the document."""
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which the document does not declare"
    declared = responses[str(status)]
    if "$ref" in declared:
        declared = DOCUMENT["components"]["responses"][declared["$ref"].rsplit("/", 1)[-1]]
    return declared["content"]["application/json"]["schema"]


def test_the_document_is_valid_openapi():
    """openapi-spec-validator accepts the document."""
    validate(DOCUMENT)


def test_the_documented_example_is_answered(live):
    """The request example in the document gets a 200 that matches the declared response."""
    example = DOCUMENT["paths"]["/api/v1.0/predictions"]["post"]["requestBody"]["content"]["application/json"]
    status, answer = call(f"{live.rest_url}/api/v1.0/predictions", example["examples"]["flights"]["value"])
    assert status == 200
    schema_validator(response_schema("/api/v1.0/predictions", "post", 200)).validate(answer)


def test_live_responses_match_the_document(live, registered):
    """Successes and every kind of error, from predictions, feedback and health, match their schemas."""
    url = live.rest_url
    names = registered.bundles["1"].feature_names
    exchanges: list[tuple[str, str, Any, bytes | None, str]] = [
        ("/api/v1.0/predictions", "post", flights_payload([GOOD, GOOD]), None, "application/json"),
        (
            "/api/v1.0/predictions",
            "post",
            {"data": {"names": names, "ndarray": [[None] * len(names)]}},
            None,
            "application/json",
        ),
        ("/api/v1.0/predictions", "post", None, b"{not json", "application/json"),
        ("/api/v1.0/predictions", "post", None, b"x" * 1_000_001, "application/json"),
        ("/api/v1.0/predictions", "post", None, b"json=1", "text/plain"),
        *[("/api/v1.0/predictions", "post", body, None, "application/json") for _, body, _ in BAD_REQUESTS],
    ]
    for path, method, body, raw, content_type in exchanges:
        status, answer = call(f"{url}{path}", body, content_type=content_type, raw=raw)
        schema_validator(response_schema(path, method, status)).validate(answer)
    status, answer = call(f"{url}/api/v1.0/predictions", flights_payload([GOOD]))
    feedback = {"response": answer, "truth": {"data": {"ndarray": [1]}}}
    schema_validator(DOCUMENT["components"]["schemas"]["Feedback"]).validate(feedback)
    for body in (feedback, {**feedback, "truth": {"data": {"ndarray": [7]}}}):
        status, ack = call(f"{url}/api/v1.0/feedback", body)
        schema_validator(response_schema("/api/v1.0/feedback", "post", status)).validate(ack)
    status, ready = call(f"{url}/health/status")
    schema_validator(response_schema("/health/status", "get", status)).validate(ready)
    status, missing = call(f"{url}/api/v1.0/nothing-here", {"jsonData": {}})
    assert status == 404
    schema_validator(response_schema("/api/v1.0/predictions", "post", 404)).validate(missing)


def test_request_schema_agrees_with_the_endpoint():
    """Good requests validate; what the endpoint refuses, the schema refuses too (where JSON Schema can say it)."""
    schema = DOCUMENT["paths"]["/api/v1.0/predictions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = schema_validator(schema)
    validator.validate(flights_payload([GOOD, {**GOOD, "tailnum": None}]))
    for case, body, _ in BAD_REQUESTS:
        if case not in UNEXPRESSIBLE:
            assert not validator.is_valid(json.loads(json.dumps(body))), case
