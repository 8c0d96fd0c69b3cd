"""A local recording HTTP server: the contract check for the Kubernetes and KFP API calls.

It records every request (method, path, query, headers, JSON body) and answers from a table of
canned responses; it is not a fake cluster: tests assert on what the adapters send.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Responder = Callable[["Recorded"], tuple[int, Any]]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """The server's URL, what it received, and how it answers (first matching route wins)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    routes: list[tuple[str, str, Responder]] = field(default_factory=list)

    def on(self, method: str, path_prefix: str, responder: Responder) -> None:
        """Answer ``method`` requests whose path starts with ``path_prefix``."""
        self.routes.insert(0, (method, path_prefix, responder))


@contextmanager
def recording_server() -> Iterator[Recorder]:
    """A recording server on a free loopback port."""
    state = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            seen = Recorded(self.command, parts.path, dict(parse_qsl(parts.query)), dict(self.headers), body)
            state.requests.append(seen)
            for method, prefix, responder in state.routes:
                if method == self.command and parts.path.startswith(prefix):
                    status, answer = responder(seen)
                    break
            else:
                status, answer = 404, {"kind": "Status", "code": 404, "message": f"no route for {parts.path}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815 - BaseHTTPRequestHandler's names

        def log_message(self, *args: object) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def kube_client(url: str) -> Any:
    """A real ``kubernetes`` ApiClient aimed at ``url`` with a bearer token (what a pod's service account sends)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    configuration.api_key = {"authorization": "Bearer test-token"}
    return client.ApiClient(configuration)
