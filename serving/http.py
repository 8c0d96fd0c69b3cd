"""Seldon's blueprint hook: our HTTP rules on Seldon's Flask app.

Out of the box the wrapper answers most client mistakes with a 500 (NOTES.md). Registered
through the model class's ``model_error_handler`` attribute, this blueprint:

- caps the body (``max_body_bytes``, 413) and requires ``application/json`` (or the form field
  ``json=`` that Seldon's own client posts) on the prediction and feedback routes (415), before
  Seldon reads the body;
- validates feedback bodies (NaN, shape) before Seldon turns them into protobuf;
- answers unknown paths and methods with 404/405, JSON nested too deep and non-Seldon
  messages with 400, every one in Seldon's error shape plus the field at fault;
- adds ``/metrics`` (our multiprocess metrics) and counts every response by route and code.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from google.protobuf.json_format import ParseError
from werkzeug.exceptions import HTTPException, NotFound

from serving import metrics
from serving.errors import ServingError
from serving.params import ServingParams
from serving.payloads import parse_feedback

PREDICT_ROUTES = frozenset({"/api/v1.0/predictions", "/api/v0.1/predictions", "/predict"})
FEEDBACK_ROUTES = frozenset({"/api/v1.0/feedback", "/api/v0.1/feedback", "/send-feedback"})
JSON_ROUTES = PREDICT_ROUTES | FEEDBACK_ROUTES
FORM = "application/x-www-form-urlencoded"


def _answer(error: ServingError) -> tuple[Response, int]:
    return jsonify(error.body()), error.status


def _reshape_seldon_error(response: Response) -> None:
    """Give errors Seldon raised itself (``code: -1``, ``status: 1``) the same shape as ours."""
    body = response.get_json(silent=True)
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, dict) or status.get("status") == "FAILURE":
        return
    shaped = ServingError(
        response.status_code, str(status.get("reason") or "ERROR"), str(status.get("info") or "error")
    ).body()
    response.set_data(json.dumps(shaped))


def _static_only(path: str) -> bool:
    """True when ``path`` matches only the catch-all static route Seldon's app declares (``/<path>``)."""
    adapter = current_app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(path, method="GET")
    except HTTPException:
        return False
    return bool(endpoint == "static")


def blueprint(params: ServingParams) -> Blueprint:
    """The blueprint for one model object (limits come from its parameters)."""
    bp = Blueprint("ctloop", __name__)

    @bp.record_once
    def configure(state: object) -> None:
        state.app.config["MAX_CONTENT_LENGTH"] = params.max_body_bytes  # type: ignore[attr-defined]

    @bp.before_app_request
    def guard() -> None:
        g.ctloop_t0 = time.perf_counter()
        if request.method != "POST" or request.path not in JSON_ROUTES:
            return
        size = request.content_length
        if size is not None and size > params.max_body_bytes:
            raise ServingError(
                413, "PAYLOAD_TOO_LARGE", f"body of {size} bytes is over the limit of {params.max_body_bytes}"
            )
        if request.mimetype == "application/json":
            body = request.get_data()
        elif request.mimetype == FORM and "json" in request.form:  # how SeldonClient posts over REST
            body = request.form["json"].encode()
        else:
            shown = request.mimetype or "none"
            raise ServingError(
                415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type {shown}: send application/json (or a form field json=)"
            )
        if request.path in FEEDBACK_ROUTES:
            g.ctloop_feedback = parse_feedback(body, params.max_batch)

    @bp.after_app_request
    def count(response: Response) -> Response:
        if response.status_code >= 400 and response.is_json:
            _reshape_seldon_error(response)
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.http_requests.labels(rule, str(response.status_code)).inc()
        started = g.get("ctloop_t0")
        if started is not None:
            metrics.http_seconds.labels(rule).observe(time.perf_counter() - started)
        return response

    @bp.route("/metrics", methods=["GET"])
    def metrics_page() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @bp.app_errorhandler(ServingError)
    def serving_error(error: ServingError) -> tuple[Response, int]:
        return _answer(error)

    @bp.app_errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 400
        if code == 405 and _static_only(request.path):
            error = NotFound()
            code = 404
        reason = (error.name or "error").upper().replace(" ", "_")
        message = error.description or reason
        if code == 413:
            message = f"body is over the limit of {params.max_body_bytes} bytes"
        return _answer(ServingError(code, reason, message))

    @bp.app_errorhandler(RecursionError)
    def too_deep(_: RecursionError) -> tuple[Response, int]:
        return _answer(ServingError(400, "BAD_JSON", "request body: JSON nested too deep"))

    @bp.app_errorhandler(ParseError)
    def not_seldon(error: ParseError) -> tuple[Response, int]:
        return _answer(ServingError(400, "BAD_SELDON_MESSAGE", f"not a Seldon message: {str(error)[:200]}"))

    return bp
