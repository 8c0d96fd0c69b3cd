"""The Seldon microservice with our model class, against real feast serve, Redis and MLflow exports."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctloop.adapters import services
from ctloop.app import stack
from ctloop.core import data
from ctloop.core.features import as_float_matrix
from tests.conftest import promtool
from tests.online_store import online_features
from tests.serving.conftest import call, flights_payload, promote_and_deploy

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
GOOD = {"origin": "JFK", "carrier": "B6", "tailnum": "N503JB", "dest": "BOS", "sched_dep": "2013-03-15T08:30:00"}
GOOD = {**GOOD, "distance": 187}


def predictions_url(live: stack.Stack) -> str:
    return f"{live.rest_url}/api/v1.0/predictions"


def sample_flights(snapshot, n: int = 40) -> list[dict]:
    """Real flights of the window's last day, as request rows (some without a tail number)."""
    flights, _, _ = data.read_snapshot(Path(snapshot.path))
    last = flights[flights["sched_dep_local"].str.startswith("2013-03-15")].head(n)
    rows = []
    for i, f in enumerate(last.itertuples()):
        row = {"origin": f.origin, "carrier": f.carrier, "dest": f.dest, "sched_dep": f.sched_dep_local}
        row["distance"] = int(f.distance)
        if i % 5 and isinstance(f.tailnum, str):
            row["tailnum"] = f.tailnum
        rows.append(row)
    return rows


def test_served_probability_equals_scikit_learn_with_online_features(live, registered, snapshot, store):
    """Served probabilities equal the platform's scikit-learn model on the same online features (<= 1e-5)."""
    rows = sample_flights(snapshot)
    status, answer = call(predictions_url(live), flights_payload(rows))
    assert status == 200, answer
    served = np.asarray(answer["jsonData"]["probabilities"])
    entity_rows = [
        {
            "origin": r["origin"],
            "carrier": r["carrier"],
            "route": f"{r['origin']}-{r['dest']}",
            "tailnum": r.get("tailnum", "UNKNOWN"),
            "sched_dep_local": r["sched_dep"],
            "distance": float(r["distance"]),
        }
        for r in rows
    ]
    online = online_features(store, registered.settings.features.feature_service, entity_rows)
    bundle = registered.bundles["1"]
    expected = bundle.model.predict_proba(as_float_matrix(online, bundle.feature_names))[:, 1]
    assert len(served) == len(rows)
    assert np.max(np.abs(served - expected)) <= 1e-5
    assert online["temp"].notna().all() and online["carrier_delay_rate_7d"].notna().all()  # features were found


def test_response_tags_name_model_version_alias_and_feature_service(live):
    """meta.tags says which model answered: name, version, alias, feature service."""
    status, answer = call(predictions_url(live), flights_payload([GOOD]))
    assert status == 200
    tags = answer["meta"]["tags"]
    assert tags["model_name"] == "flight-delay" and tags["model_version"] == "1"
    assert tags["alias"] == "champion" and tags["feature_service"] == "flight_delay_v1"
    assert 0.0 < answer["jsonData"]["probabilities"][0] < 1.0


def test_features_in_the_request_skip_enrichment(live, registered):
    """data.names + data.ndarray (any column order, null = missing) scores without the feature server."""
    bundle = registered.bundles["1"]
    names = list(reversed(bundle.feature_names))
    row = [None if n.startswith("plane") else 1.0 for n in names]
    status, answer = call(predictions_url(live), {"data": {"names": names, "ndarray": [row, row]}})
    assert status == 200, answer
    matrix = np.asarray([[np.nan if n.startswith("plane") else 1.0 for n in bundle.feature_names]] * 2)
    expected = bundle.model.predict_proba(matrix)[:, 1]
    got = np.asarray(answer["data"]["ndarray"])[:, 0]
    assert answer["data"]["names"] == ["delay_probability"]
    assert np.max(np.abs(got - expected)) <= 1e-5


def _flight(**change):
    row = {**GOOD, **change}
    return {k: v for k, v in row.items() if v is not ...}


BAD_REQUESTS = [
    ("missing field", flights_payload([_flight(origin=...)]), "jsonData.flights[0].origin"),
    ("wrong type", flights_payload([_flight(distance="far")]), "jsonData.flights[0].distance"),
    ("NaN", flights_payload([_flight(distance=float("nan"))]), "jsonData.flights[0].distance"),
    ("Infinity", flights_payload([_flight(distance=float("inf"))]), "jsonData.flights[0].distance"),
    ("bad time", flights_payload([_flight(sched_dep="2013-13-45T99:00")]), "jsonData.flights[0].sched_dep"),
    (
        "time with offset",
        flights_payload([_flight(sched_dep="2013-03-15T08:30:00+02:00")]),
        "jsonData.flights[0].sched_dep",
    ),
    ("unknown origin", flights_payload([_flight(origin="BOS")]), "jsonData.flights[0].origin"),
    ("unknown carrier", flights_payload([_flight(carrier="ZZ")]), "jsonData.flights[0].carrier"),
    ("extra field", flights_payload([_flight(gate="B22")]), "jsonData.flights[0].gate"),
    ("empty batch", flights_payload([]), "jsonData.flights"),
    ("batch too large", flights_payload([GOOD] * 1001), "jsonData.flights"),
    ("flights not a list", {"jsonData": {"flights": {"0": GOOD}}}, "jsonData.flights"),
    ("no payload", {"meta": {}}, "jsonData"),
    ("both payloads", {"jsonData": {"flights": [GOOD]}, "data": {}}, "jsonData"),
    ("not an object", [GOOD], "request body"),
    ("ndarray missing names", {"data": {"ndarray": [[1.0]]}}, "data.names"),
    ("ndarray wrong width", {"data": {"names": [], "ndarray": [[1.0]]}}, "data.names"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_are_400_naming_the_field(live, case, body, field):
    """Every client mistake is a 400 whose body names the field (never a 500)."""
    status, answer = call(predictions_url(live), body)
    assert status == 400, (case, answer)
    assert answer["status"]["field"] == field and answer["status"]["info"].startswith(field)


def test_transport_mistakes_have_their_own_codes(live, registered):
    """413 over the body limit, 415 without JSON, 404 unknown path, 400 for deep nesting or bad JSON."""
    limit = registered.settings.serving.max_body_bytes
    url = predictions_url(live)
    status, answer = call(url, raw=b" " * (limit + 1))
    assert (status, answer["status"]["reason"]) == (413, "PAYLOAD_TOO_LARGE")
    status, answer = call(url, raw=b"origin=JFK", content_type="application/x-www-form-urlencoded")
    assert (status, answer["status"]["reason"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, answer = call(url, raw=json.dumps(flights_payload([GOOD])).encode(), content_type="text/plain")
    assert (status, answer["status"]["reason"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, answer = call(f"{live.rest_url}/api/v9/predictions", {"jsonData": {}})
    assert (status, answer["status"]["code"]) == (404, 404)
    status, answer = call(url, raw=b"[" * 5000 + b"]" * 5000)
    assert (status, answer["status"]["reason"]) == (400, "BAD_JSON")
    status, _ = call(url, raw=b'{"jsonData": {"flights": [')
    assert status == 400


def feedback_body(answer: dict, outcomes: list) -> dict:
    return {"response": answer, "truth": {"data": {"ndarray": outcomes}}}


def test_feedback_with_nan_or_bad_shape_is_400(live):
    """Feedback with NaN, a wrong count, or a non-Seldon field is a 400, not protobuf's 500."""
    url = f"{live.rest_url}/api/v1.0/feedback"
    _, answer = call(predictions_url(live), flights_payload([GOOD]))
    nan_body = b'{"response": {"jsonData": {"probabilities": [NaN]}, "meta": {"tags": {"model_version": "1"}}},'
    status, got = call(url, raw=nan_body + b' "truth": {"data": {"ndarray": [1]}}}')
    assert (status, got["status"]["reason"]) == (400, "BAD_JSON"), got
    status, got = call(url, feedback_body(answer, [1, 0]))
    assert (status, got["status"]["field"]) == (400, "truth")
    status, got = call(url, {**feedback_body(answer, [1]), "response": {**answer, "meta": {**answer["meta"], "x": 1}}})
    assert status == 400, got
    status, got = call(url, feedback_body(answer, ["late"]))
    assert (status, got["status"]["field"]) == (400, "truth[0]")


def scrape(live: stack.Stack) -> dict[tuple[str, tuple], float]:
    """Our metrics page as {(sample name, sorted labels): value}."""
    status, text = call(live.metrics_url)
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(page: dict, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in page.items() if n == name and want <= set(lab))


def test_metrics_count_the_requests_and_feedback_sent(live, snapshot):
    """Flights scored, per-feature buckets, prediction buckets and feedback outcomes move by what was sent."""
    time.sleep(0.3)  # earlier tests' drift counts are flushed (metrics_flush_s = 0.1 here)
    before = scrape(live)
    rows = sample_flights(snapshot, 30)
    _, first = call(predictions_url(live), flights_payload(rows[:20]))
    call(predictions_url(live), flights_payload(rows[20:]))
    status, ack = call(f"{live.rest_url}/api/v1.0/feedback", feedback_body(first, [1] * 5 + [0] * 15))
    assert status == 200 and ack["jsonData"]["accepted"] == 20
    after = scrape(live)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    deadline = time.monotonic() + 5  # drift counts reach the page within metrics_flush_s
    while moved("ctloop_feature_bucket_total", model_version="1", feature="sched_hour") < 30:
        assert time.monotonic() < deadline, "drift counts never reached the metrics page"
        time.sleep(0.2)
        after = scrape(live)

    assert moved("ctloop_predictions_total", model_version="1") == 30
    assert moved("ctloop_prediction_bucket_total", model_version="1") == 30
    for feature in ("temp", "route_delay_rate_28d", "plane_year", "sched_hour"):
        assert moved("ctloop_feature_bucket_total", model_version="1", feature=feature) == 30, feature
    assert moved("ctloop_feedback_probability_count", model_version="1", outcome="delayed") == 5
    assert moved("ctloop_feedback_probability_count", model_version="1", outcome="on_time") == 15
    probabilities = first["jsonData"]["probabilities"]
    assert moved("ctloop_feedback_probability_sum", model_version="1", outcome="delayed") == pytest.approx(
        sum(probabilities[:5])
    )
    brier = sum((p - y) ** 2 for p, y in zip(probabilities, [1] * 5 + [0] * 15, strict=True))
    assert moved("ctloop_feedback_squared_error_total", model_version="1") == pytest.approx(brier)
    assert moved("ctloop_http_requests_total", route="/api/v1.0/predictions", code="200") == 2
    assert total(after, "ctloop_model_info", model_version="1") == 1


def test_metrics_page_passes_promtool(live):
    """`promtool check metrics` accepts our page."""
    call(predictions_url(live), flights_payload([GOOD]))
    _, text = call(live.metrics_url)
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_page_keeps_only_the_names_asked_for(live):
    """`?name[]=` (as prometheus_client's pages read it) keeps those samples, with the full page's values."""
    _, answer = call(predictions_url(live), flights_payload([GOOD]))
    assert call(f"{live.rest_url}/api/v1.0/feedback", feedback_body(answer, [1]))[0] == 200
    time.sleep(0.3)  # drift counts flushed (metrics_flush_s = 0.1 here); nothing is sent while the pages are read
    full = scrape(live)
    asked = ["ctloop_feature_bucket_total", "ctloop_feedback_probability_bucket", "ctloop_feature_reference_share"]
    query = "&".join(f"name[]={name}" for name in asked)
    status, text = call(f"{live.metrics_url}?{query}")
    assert status == 200
    some = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert {name for name, _ in some} == set(asked)
    assert some == {key: value for key, value in full.items() if key[0] in asked}
    assert call(f"{live.metrics_url}?name[]=not_a_metric_of_ours") == (200, "")


def serving_env_python(settings) -> tuple[str, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    return str(stack.serving_python(settings)), env


def test_seldon_python_client_gets_a_prediction(live, registered):
    """Seldon's own SeldonClient (in the serving env) gets a probability back."""
    script = (
        "import json, sys\n"
        "from google.protobuf.json_format import MessageToDict\n"
        "from seldon_core.seldon_client import SeldonClient\n"
        "sc = SeldonClient(microservice_endpoint=sys.argv[1])\n"
        "r = sc.microservice(method='predict', json_data=json.loads(sys.argv[2]))\n"
        "print(json.dumps({'success': r.success, 'msg': r.msg, 'response': MessageToDict(r.response)}))\n"
    )
    python, env = serving_env_python(registered.settings)
    endpoint = live.rest_url.removeprefix("http://")
    body = json.dumps({"flights": [GOOD]})
    out = subprocess.run([python, "-c", script, endpoint, body], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["success"], result["msg"]
    assert 0.0 < result["response"]["jsonData"]["probabilities"][0] < 1.0


def test_serving_env_imports_no_platform_library(registered):
    """The model class imports neither MLflow, Feast, pandas nor scikit-learn."""
    python, env = serving_env_python(registered.settings)
    script = (
        "import sys, serving.model\n"
        "print(sorted(m for m in ('mlflow', 'feast', 'pandas', 'sklearn', 'kfp') if m in sys.modules))\n"
    )
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_promotion_under_load_swaps_with_no_failed_request(live, registered, champion_v1):
    """Promoting v2 during concurrent requests: zero failures, only v1 and v2 answer, then only v2."""
    url = predictions_url(live)
    seen: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, answer = call(url, flights_payload([GOOD]))
            if status != 200:
                failures.append(f"{status} {answer}")
            else:
                seen[answer["meta"]["tags"]["model_version"]] += 1

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    promote_and_deploy(registered.settings, "2")
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert set(seen) == {"1", "2"}
    for _ in range(10):  # every worker has moved on
        assert call(url, flights_payload([GOOD]))[1]["meta"]["tags"]["model_version"] == "2"


def test_feature_server_down_is_503_and_not_ready_then_recovers(live, registered, request):
    """Feature server killed: 503 with the reason, readiness false, liveness true; restarted: 200 within 5 s."""
    feast = live.processes[0]
    assert feast.name == "feature-server"
    cfg = registered.settings.serving
    log_dir = registered.settings.data_dir / "logs" / "serving"

    def restart() -> None:
        restarted = stack.start_feature_server(
            registered.settings, cfg.feature_server_port, cfg.feature_server_workers, log_dir
        )
        request.config.add_cleanup(restarted.stop)  # the session's stack goes on with the new server

    feast.stop()
    try:
        status, answer = call(predictions_url(live), flights_payload([GOOD]))
        assert (status, answer["status"]["reason"]) == (503, "FEATURE_SERVER_UNAVAILABLE")
        assert "unreachable" in answer["status"]["info"]
        services.wait_until(lambda: call(f"{live.rest_url}/health/status")[0] == 503, "readiness false", 5)
        assert call(f"{live.rest_url}/health/ping")[0] == 200
        status, _ = call(predictions_url(live), {"data": {"names": [], "ndarray": [[]]}})
        assert status == 400  # the model-only path does not need the feature server
    finally:
        restart()  # later tests use the same stack, whatever happened above
    back = time.monotonic()
    services.wait_until(lambda: call(predictions_url(live), flights_payload([GOOD]))[0] == 200, "recovery", 5)
    services.wait_until(lambda: call(f"{live.rest_url}/health/status")[0] == 200, "readiness true", 5)
    assert time.monotonic() - back < 5


def test_seldon_skips_its_metrics_manager_only_when_there_is_no_metric(registered):
    """After the launcher's patch an empty update never reaches the manager; one with metrics still does."""
    script = (
        "import serving.launch as launch\n"
        "from seldon_core.metrics import SeldonMetrics\n"
        "launch.skip_empty_metric_updates(); launch.skip_empty_metric_updates()\n"
        "m = SeldonMetrics(worker_id_func=lambda: 1)\n"
        "m.update([], 'predict')\n"
        "empty = dict(m.data)\n"
        "m.update([{'type': 'COUNTER', 'key': 'k', 'value': 2}], 'predict')\n"
        "print(empty)\n"
        "print([entry['value'] for entry in dict(m.data)[1].values()])\n"
    )
    python, env = serving_env_python(registered.settings)
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first == "{}"  # the empty update left the manager's shared dict untouched
    assert second == "[2]"  # a real metric is still recorded
