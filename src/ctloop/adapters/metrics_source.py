"""Where a monitoring pass reads serving's counters: the ``/metrics`` page, or Prometheus's HTTP API.

Both give :class:`ctloop.core.monitor.Sample` lists with the same names and labels. The page holds
counters since the workers started (a window is the difference between two readings); from
Prometheus each series is already a window: ``increase(<counter>[<window>])`` summed over pods.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ctloop.core.monitor import Sample

COUNTERS = {
    "ctloop_feature_bucket_total": ("model_version", "feature", "bucket"),
    "ctloop_prediction_bucket_total": ("model_version", "bucket"),
    "ctloop_feedback_probability_bucket": ("model_version", "outcome", "le"),
    "ctloop_feedback_probability_sum": ("model_version", "outcome"),
    "ctloop_feedback_squared_error_total": ("model_version",),
}


_SAMPLE_NAMES = tuple(COUNTERS)


class MetricsSourceError(RuntimeError):
    """Serving's metrics (or Prometheus) could not be read."""


def _get(url: str, timeout_s: float = 10.0) -> str:
    if not url.startswith(("http://", "https://")):
        raise MetricsSourceError(f"metrics URL must be http(s): {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise MetricsSourceError(f"{url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MetricsSourceError(f"{url} unreachable: {exc}") from None


def read_page(url: str, version: str | None = None) -> list[Sample]:
    """The counters on a Prometheus text page (serving's ``/metrics``), of one model version if given.

    The page is asked for these counters only (Prometheus's ``name[]`` parameter, which
    prometheus_client's pages honour, serving's too); a page that ignores it is filtered here.
    """
    query = urllib.parse.urlencode([("name[]", name) for name in _SAMPLE_NAMES])
    return parse_page(_get(f"{url}{'&' if '?' in url else '?'}{query}"), version)


def parse_page(text: str, version: str | None = None) -> list[Sample]:
    """The counters of a Prometheus text page, of one model version if given.

    The page keeps every version served since the workers started, with gauges and latency
    histograms beside the counters, and prometheus_client's parser reads some 60,000 lines a
    second. Lines of other metrics, and with a version those of other versions, are dropped
    before parsing: a pass over a page of ten versions parses a twentieth of it.
    """
    label = f'model_version="{version}"' if version is not None else ""
    text = "\n".join(
        line for line in text.splitlines() if line.startswith("#") or (line.startswith(_SAMPLE_NAMES) and label in line)
    )
    samples = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in COUNTERS and (version is None or s.labels.get("model_version") == version):
                samples.append(Sample(s.name, dict(s.labels), float(s.value)))
    return samples


def prometheus_queries(window: str) -> dict[str, str]:
    """One PromQL query per counter: its increase over ``window``, summed over pods and workers."""
    return {name: f"sum by ({', '.join(labels)}) (increase({name}[{window}]))" for name, labels in COUNTERS.items()}


def read_prometheus(base_url: str, window: str) -> list[Sample]:
    """The counters' increase over ``window`` from Prometheus's ``/api/v1/query``."""
    samples = []
    for name, query in prometheus_queries(window).items():
        url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        answer = json.loads(_get(url))
        if answer.get("status") != "success":
            raise MetricsSourceError(f"Prometheus refused {query!r}: {answer.get('error', answer)}")
        for series in answer["data"]["result"]:
            samples.append(Sample(name, dict(series["metric"]), float(series["value"][1])))
    return samples
