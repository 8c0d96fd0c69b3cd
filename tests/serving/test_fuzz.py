"""Fuzzing the live endpoint (a fast subset of `make reliability`), and the 5xx and misanswers fuzzing found.

The subset: a couple hundred hypothesis-generated malformed requests of every kind plus
schemathesis cases from serving/openapi.yaml, against the real microservice. Each regression test
below is a request that fuzzing answered wrongly before the fix named in its docstring.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from reliability.fuzz import KINDS, Client, Limits, Oracle, Probe, Raw, encode, run_malformed, run_schema
from tests.serving.conftest import call
from tests.serving.test_endpoint import GOOD

pytestmark = pytest.mark.slow
PREDICT = "/api/v1.0/predictions"
FEEDBACK = "/api/v1.0/feedback"
HUGE = Raw("1" + "0" * 400)  # an integer past a double's range (float() raises OverflowError)


@pytest.fixture(scope="module")
def limits(registered) -> Limits:
    serving = registered.settings.serving
    return Limits(serving.max_body_bytes, serving.max_batch, tuple(registered.bundles["1"].feature_names))


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


def shown(problems: list[dict]) -> str:
    return "\n".join(f"[{p['kind']}] {p['problem']}\n    {p['request']}" for p in problems)


def test_malformed_requests_get_structured_4xx_never_5xx(live, limits, oracle):
    """200+ malformed requests of every kind: no 5xx, every non-2xx a 4xx in the Error shape."""
    tally = run_malformed(live.rest_url, limits, requests=240, seed=8, oracle=oracle)
    assert tally.sent >= 240
    assert tally.problem_count == 0, shown(tally.problems)
    assert tally.count("5xx") == 0 and tally.count("4xx") > 0.7 * tally.sent
    assert set(tally.by_kind) == set(KINDS)  # every kind was sent


def test_schemathesis_cases_from_the_document_pass_its_checks(live, oracle):
    """Positive and negative cases of every documented operation: no 5xx, declared codes and schemas."""
    tally = run_schema(live.rest_url, examples=15, seed=8, oracle=oracle)
    assert tally.problem_count == 0, shown(tally.problems)
    assert tally.count("5xx") == 0
    assert any("negative" in kind for kind in tally.by_kind) and tally.sent >= 60


def send(live, oracle, probe: Probe) -> tuple[int, dict]:
    """Send one probe; the oracle must accept the answer; return the status and the decoded body."""
    answer = Client(live.rest_url).send(probe)
    assert oracle.judge(probe.method, probe.path, answer) is None, (answer.status, answer.body[:300])
    return answer.status, json.loads(answer.body) if answer.body else {}


def feedback_with(**parts) -> dict:
    body = {
        "response": {"jsonData": {"probabilities": [0.5]}, "meta": {"tags": {"model_version": "1"}}},
        "truth": {"data": {"ndarray": [1]}},
    }
    return {**body, **parts}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (PREDICT, {"jsonData": {"flights": [{**GOOD, "distance": HUGE}]}}, "jsonData.flights[0].distance"),
        (FEEDBACK, feedback_with(reward=HUGE), None),
        (FEEDBACK, feedback_with(request={"data": {"ndarray": [HUGE]}}), None),
        (
            FEEDBACK,
            feedback_with(response={"jsonData": {"probabilities": [HUGE]}, "meta": {"tags": {"model_version": "1"}}}),
            None,
        ),
    ],
    ids=["distance", "reward", "request", "probability"],
)
def test_an_integer_past_a_doubles_range_is_400(live, oracle, path, body, field):
    """Was a 500 ("int too large to convert to float"): now a 400, naming the field where there is one."""
    status, answer = send(live, oracle, Probe("regression", "POST", path, encode(body)))
    assert status == 400
    if field is not None:
        assert answer["status"]["field"] == field


def test_the_same_in_a_feature_row_is_400(live, oracle, limits):
    """A huge integer in data.ndarray names its cell (was a 500)."""
    row: list = [1.0] * len(limits.feature_names)
    row[3] = HUGE
    body = {"data": {"names": list(limits.feature_names), "ndarray": [row]}}
    status, answer = send(live, oracle, Probe("regression", "POST", PREDICT, encode(body)))
    assert (status, answer["status"]["field"]) == (400, "data.ndarray[0][3]")


@pytest.mark.parametrize("version", [Raw("1e400"), "latest", "1" * 13, HUGE, -1, 1.5, ""])
def test_feedback_for_a_version_that_is_not_a_version_number_is_400(live, oracle, version):
    """1e400 was accepted as model version "inf" (a new metric series per made-up version); a huge int was a 500."""
    response = {"jsonData": {"probabilities": [0.5]}, "meta": {"tags": {"model_version": version}}}
    status, answer = send(live, oracle, Probe("regression", "POST", FEEDBACK, encode(feedback_with(response=response))))
    assert status == 400
    assert answer["status"].get("field") in ("response.meta.tags.model_version", None)


def test_feedback_names_the_version_as_a_number_or_digits(live, oracle):
    """What Seldon's clients send back (the tag as a string, or a float after protobuf) is accepted."""
    for version in ("1", 1, 1.0):
        response = {"jsonData": {"probabilities": [0.5]}, "meta": {"tags": {"model_version": version}}}
        status, ack = send(live, oracle, Probe("ok", "POST", FEEDBACK, encode(feedback_with(response=response))))
        assert (status, ack["jsonData"]["model_version"]) == (200, "1")


@pytest.mark.parametrize(
    "probe",
    [
        Probe("regression", "GET", "/predict?json=%7B", b"", None),
        Probe("regression", "GET", "/send-feedback?json=%5B%5B", b"", None),
        Probe("regression", "POST", PREDICT + "?json=%7B", encode({"jsonData": {"flights": [GOOD]}})),
        Probe("regression", "POST", PREDICT, b"json=%7B", "application/x-www-form-urlencoded"),
    ],
    ids=["get-predict", "get-feedback", "query-over-body", "form"],
)
def test_json_seldon_reads_from_a_query_or_form_field_is_checked(live, oracle, probe):
    """Seldon decodes ?json= (before the body) and form fields unchecked: invalid JSON there was a 500."""
    status, answer = send(live, oracle, probe)
    assert (status, answer["status"]["reason"]) == (400, "BAD_JSON")


def test_undeclared_methods_are_405_naming_the_allowed_ones(live, oracle):
    """PUT/GET on predictions were 404 (the static route's GET hid the route), TRACE on health had no Allow."""
    for method, path, allowed in (
        ("PUT", PREDICT, "OPTIONS, POST"),
        ("GET", PREDICT, "OPTIONS, POST"),
        ("TRACE", "/health/ping", "GET, HEAD, OPTIONS"),
        ("DELETE", FEEDBACK, "OPTIONS, POST"),
    ):
        answer = Client(live.rest_url).send(Probe("regression", method, path, b"", None))
        assert oracle.judge(method, path, answer) is None
        assert (answer.status, answer.headers["allow"]) == (405, allowed), (method, path)
    answer = Client(live.rest_url).send(Probe("regression", "OPTIONS", PREDICT, b"", None))
    assert (answer.status, answer.headers["allow"]) == (200, "OPTIONS, POST")  # Flask's own added the static GET
    assert call(f"{live.rest_url}/api/v9/predictions", {"jsonData": {}})[0] == 404


@pytest.mark.parametrize("path", ["/transform-input", "/transform-output", "/route", "/aggregate"])
def test_routes_a_model_does_not_serve_are_404(live, oracle, path):
    """Seldon's transformer, router and combiner routes echoed any input (NaN included) back: now 404."""
    status, _ = send(live, oracle, Probe("regression", "POST", path, encode({"jsonData": {"x": Raw("NaN")}})))
    assert status == 404


@pytest.mark.parametrize("path", [PREDICT, FEEDBACK])
def test_a_chunked_body_over_the_limit_is_413(live, limits, path):
    """Werkzeug cut a chunked body at the limit and parsed what was left (a 400, or a 200): now 413."""
    valid = json.dumps({"jsonData": {"flights": [GOOD]}}).encode()
    body = valid + b" " * (limits.max_body_bytes + 10 - len(valid))  # valid JSON in its first megabyte
    parts = urlsplit(live.rest_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request("POST", path, chunks, {"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, answer["status"]["reason"]) == (413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_under_the_limit_is_served(live):
    """The same request streamed without a Content-Length, under the limit, is answered as usual."""
    parts = urlsplit(live.rest_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        body = json.dumps({"jsonData": {"flights": [GOOD, GOOD]}}).encode()
        conn.request(
            "POST", PREDICT, iter([body[:10], body[10:]]), {"Content-Type": "application/json"}, encode_chunked=True
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200 and len(answer["jsonData"]["probabilities"]) == 2
