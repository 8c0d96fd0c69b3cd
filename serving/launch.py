"""Start Seldon's microservice (``seldon_core.microservice``) bound to one host.

Seldon 1.19 binds its REST and metrics servers to ``0.0.0.0`` with no option to change it.
Locally ctloop serves on loopback only, so this entry point sets gunicorn's bind host from
``CTLOOP_BIND_HOST`` (default ``127.0.0.1``; the serving image sets ``0.0.0.0`` for its pod)
and then runs Seldon's own ``main`` with the same command-line arguments.
``PROMETHEUS_MULTIPROC_DIR`` must be set before ``prometheus_client`` is imported: it is
checked (and the folder created) here, first.

Seldon records a model's custom metrics (``meta.metrics``) through a ``multiprocessing`` manager
process shared by its workers, and it makes that round trip (two lock calls, a read and a write
of the worker's entry) after every request, even when there is nothing to record. This model
returns no custom metrics (its own live in ``/metrics``), so :func:`skip_empty_metric_updates`
lets an update with none return at once; an update that carries metrics goes through unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def skip_empty_metric_updates() -> None:
    """Make Seldon's ``SeldonMetrics.update`` a no-op when it has no metric to record (module docstring)."""
    from seldon_core.metrics import SeldonMetrics

    update = SeldonMetrics.update
    if getattr(update, "skips_empty", False):
        return

    def update_if_any(self: SeldonMetrics, custom_metrics: list[dict[str, Any]], method: str) -> None:
        if custom_metrics:
            update(self, custom_metrics, method)

    update_if_any.skips_empty = True  # type: ignore[attr-defined]  # applied once
    SeldonMetrics.update = update_if_any


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
    skip_empty_metric_updates()
    microservice.main()


if __name__ == "__main__":
    main()
