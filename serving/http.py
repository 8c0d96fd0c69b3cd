"""Seldon's blueprint hook: our HTTP rules on Seldon's Flask app.

Out of the box Seldon 1.19's wrapper answers most client mistakes with a 500. Registered
through the model class's ``model_error_handler`` attribute, this blueprint:

- caps the body (``max_body_bytes``, 413) and requires ``application/json`` (or the form field
  ``json=`` that Seldon's own client posts) on the prediction and feedback routes (415), before
  Seldon reads the body;
- checks that the JSON text Seldon will decode from a form field or the query (``?json=``, which
  Seldon reads before the body) is JSON (400), and validates feedback (NaN, numbers too large for
  a double, shape) before Seldon turns it into protobuf;
- answers unknown paths with 404 (Seldon's static catch-all route and the transformer, router and
  combiner routes a model does not serve included), undeclared methods with 405 naming the
  allowed ones in ``Allow`` (OPTIONS lists them), JSON nested too deep and non-Seldon messages
  with 400, every one in Seldon's error shape plus the field at fault;
- adds ``/metrics`` (our multiprocess metrics) and counts every response by route and code.
"""

from __future__ import annotations

import io
import json
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from google.protobuf.json_format import ParseError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from serving import metrics
from serving.errors import ServingError
from serving.params import ServingParams
from serving.payloads import check_json, parse_feedback

PREDICT_ROUTES = frozenset({"/api/v1.0/predictions", "/api/v0.1/predictions", "/predict"})
FEEDBACK_ROUTES = frozenset({"/api/v1.0/feedback", "/api/v0.1/feedback", "/send-feedback"})
JSON_ROUTES = PREDICT_ROUTES | FEEDBACK_ROUTES
# Seldon's app serves these for transformers, routers and combiners; a MODEL unit is none of them
NOT_A_MODEL_ROUTES = frozenset({"/transform-input", "/transform-output", "/route", "/aggregate"})
FORM = "application/x-www-form-urlencoded"
PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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


def _route_methods(path: str) -> set[str]:
    """The methods the app's own routes accept at ``path`` (not Seldon's static catch-all ``/<path>``)."""
    if path in NOT_A_MODEL_ROUTES:
        return set()
    adapter = current_app.url_map.bind("localhost")
    allowed: set[str] = set()
    for method in PROBE_METHODS:
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != "static":
            allowed |= rule.methods or set()
    return allowed


def _check_route() -> Response | None:
    """404 for a path no route of ours serves, 405 (with ``Allow``) for a method it does not take.

    OPTIONS is answered here, listing only those methods: Flask's own answer would add the GET of
    the static catch-all route to every path.
    """
    rule = request.url_rule
    served = rule is not None and rule.endpoint != "static" and request.path not in NOT_A_MODEL_ROUTES
    if served and request.method != "OPTIONS":
        return None
    allowed = _route_methods(request.path)
    if not allowed:
        raise NotFound
    if request.method == "OPTIONS":
        return Response(status=200, headers={"Allow": ", ".join(sorted(allowed))})
    if request.method not in allowed:
        raise MethodNotAllowed(valid_methods=sorted(allowed))
    return None


def _buffer_streamed_body(limit: int) -> None:
    """Read a body sent without Content-Length (chunked) up to ``limit``: 413 past it.

    Werkzeug 3.1 cuts such a stream at ``MAX_CONTENT_LENGTH`` without an error, so an oversized
    chunked body would be parsed truncated (a misleading 400, or worse a 200 on its first
    megabyte). Read before anything touches ``request.stream``; what fits is handed on as a
    body with a Content-Length, exactly as if the client had sent one.
    """
    data = request.environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise ServingError(413, "PAYLOAD_TOO_LARGE", f"streamed body is over the limit of {limit} bytes")
    request.environ["wsgi.input"] = io.BytesIO(data)
    request.environ["CONTENT_LENGTH"] = str(len(data))


def _json_text() -> tuple[bytes, bool]:
    """The JSON text Seldon's ``get_request`` will decode, in its order; True when it is the body.

    Seldon reads a form field ``json=``, else a query parameter ``json=`` (on any method), else
    the body of an ``application/json`` request; we validate the same text it will use.
    """
    if request.mimetype == "multipart/form-data":
        raise ServingError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type multipart/form-data: send application/json")
    field = request.form.get("json") or request.args.get("json")
    if field:
        return field.encode("utf-8", "surrogatepass"), False
    if request.mimetype == "application/json":
        return request.get_data(), True
    shown = request.mimetype or "none"
    raise ServingError(
        415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type {shown}: send application/json (or a form field json=)"
    )


def blueprint(params: ServingParams) -> Blueprint:
    """The blueprint for one model object (limits come from its parameters)."""
    bp = Blueprint("ctloop", __name__)

    @bp.record_once
    def configure(state: object) -> None:
        state.app.config["MAX_CONTENT_LENGTH"] = params.max_body_bytes  # type: ignore[attr-defined]

    @bp.before_app_request
    def guard() -> Response | None:
        g.ctloop_t0 = time.perf_counter()
        answered = _check_route()
        if answered is not None or request.path not in JSON_ROUTES:
            return answered
        size = request.content_length
        if size is None:
            _buffer_streamed_body(params.max_body_bytes)
        elif size > params.max_body_bytes:
            raise ServingError(
                413, "PAYLOAD_TOO_LARGE", f"body of {size} bytes is over the limit of {params.max_body_bytes}"
            )
        text, from_body = _json_text()
        if request.path in FEEDBACK_ROUTES:
            g.ctloop_feedback = parse_feedback(text, params.max_batch)
        elif not from_body:  # Seldon decodes a form field or query parameter with no error handling
            check_json(text)
        return None

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
        body, content_type = metrics.exposition(request.args.getlist("name[]"))
        return Response(body, content_type=content_type)

    @bp.app_errorhandler(ServingError)
    def serving_error(error: ServingError) -> tuple[Response, int]:
        return _answer(error)

    @bp.app_errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 400
        if code == 405:  # routing's own 405 counts the static route's GET: recompute from our routes
            allowed = _route_methods(request.path)
            error = MethodNotAllowed(valid_methods=sorted(allowed)) if allowed else NotFound()
            code = error.code or 400
        reason = (error.name or "error").upper().replace(" ", "_")
        message = error.description or reason
        if code == 413:
            message = f"body is over the limit of {params.max_body_bytes} bytes"
        response, status = _answer(ServingError(code, reason, message))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, status

    @bp.app_errorhandler(RecursionError)
    def too_deep(_: RecursionError) -> tuple[Response, int]:
        return _answer(ServingError(400, "BAD_JSON", "request body: JSON nested too deep"))

    @bp.app_errorhandler(ParseError)
    def not_seldon(error: ParseError) -> tuple[Response, int]:
        return _answer(ServingError(400, "BAD_SELDON_MESSAGE", f"not a Seldon message: {str(error)[:200]}"))

    return bp
