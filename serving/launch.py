"""Start Seldon's microservice (``seldon_core.microservice``) bound to one host.

Seldon 1.19 binds its REST and metrics servers to ``0.0.0.0`` with no option to change it.
Locally ctloop serves on loopback only, so this entry point sets gunicorn's bind host from
``CTLOOP_BIND_HOST`` (default ``127.0.0.1``; the serving image sets ``0.0.0.0`` for its pod)
and then runs Seldon's own ``main`` with the same command-line arguments.
``PROMETHEUS_MULTIPROC_DIR`` must be set before ``prometheus_client`` is imported: it is
checked (and the folder created) here, first.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main() -> None:
    """``python -m serving.launch serving.model.FlightDelayModel --http-port 9000 ...``."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not folder:
        sys.exit("error: set PROMETHEUS_MULTIPROC_DIR to a writable folder (our metrics live there)")
    try:
        os.makedirs(folder, exist_ok=True)  # noqa: PTH103 - a pod's /tmp starts empty
    except OSError as exc:
        sys.exit(f"error: PROMETHEUS_MULTIPROC_DIR {folder!r}: {exc.strerror}")
    host = os.environ.get("CTLOOP_BIND_HOST", "127.0.0.1")

    from seldon_core import gunicorn_utils, microservice

    seldon_load_config = gunicorn_utils.StandaloneApplication.load_config

    def load_config(self: Any) -> None:
        seldon_load_config(self)
        self.cfg.set("bind", [address.replace("0.0.0.0:", f"{host}:") for address in self.cfg.bind])
        # gunicorn's runtime control socket is unused here, and it needs a writable HOME
        # (the pod's root filesystem is read-only): without this it logs an error at every start
        self.cfg.set("control_socket_disable", True)

    gunicorn_utils.StandaloneApplication.load_config = load_config
    microservice.main()


if __name__ == "__main__":
    main()
