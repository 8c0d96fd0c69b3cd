"""Containers benchmark (``make bench BENCH_ARGS="--only containers"``).

- builds: both images cold (``--no-cache``, the base already present) and warm (nothing changed),
  through ``make images``, as CI and developers build them;
- image sizes against their goals (serving ≤ 400 MB, platform ≤ 1.2 GB);
- the training pipeline on 2013 Jan-Mar with each task in the platform image against the same
  pipeline as subprocesses of the platform venv, alternating, twice each (goal ≤ 1.3×);
- the serving stack's memory at rest and after 60 s of load (wrk, 2 threads, 8 connections): the
  serving container (``podman stats``) beside the same microservice as processes (RSS of its
  process tree).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.serving import measure
from ctloop.adapters import containers, services
from ctloop.app import stack
from ctloop.cli.shell import git_sha
from ctloop.config import Settings
from ctloop.contract.flight_request import EXAMPLE
from ctloop.pipelines import local
from reliability.load import tree_rss_kib

START, END = "2013-01-01", "2013-03-31"
RATIO_GOAL = 1.3
SIZE_GOALS_MB = {"serving": 400.0, "platform": 1200.0}
LOAD_S = 60


def _timed_make(root: Path, *args: str) -> float:
    began = time.perf_counter()
    subprocess.run(["make", "-s", "images", *args], cwd=root, check=True, capture_output=True, timeout=3600)  # noqa: S607
    return time.perf_counter() - began


def builds(root: Path) -> dict[str, float]:
    """Seconds for a cold build (no layer cache) and a warm one (all cached), both images.

    The cold build's layers are the cache; one more build before the timed one makes sure
    every layer of both images is in it.
    """
    cold = _timed_make(root, "BUILD_FLAGS=--no-cache")
    _timed_make(root)
    return {"cold_s": cold, "warm_s": _timed_make(root)}


def sizes_mb(podman: containers.Podman, tag: str) -> dict[str, float]:
    """Each image's size in MB (10^6 bytes, as podman lists it)."""
    out = {}
    for name in ("platform", "serving"):
        done = podman.run("image", "inspect", "--format", "{{.Size}}", f"ghcr.io/ctloop/{name}:{tag}")
        out[name] = round(int(done.stdout.strip()) / 1e6, 1)
    return out


def pipelines(settings: Settings, tag: str, work: Path) -> dict[str, list[float]]:
    """Jan-Mar through each runner, alternating, twice; seconds per run."""
    times: dict[str, list[float]] = {"subprocess": [], "container": []}
    for attempt in range(2):
        for runner, seconds in times.items():
            folder = work / f"{runner}-{attempt}"
            run_settings = settings.replace(paths=replace(settings.paths, data_dir=str(folder)))
            local.features_for_window(run_settings, START, END, git_sha=tag, runner="subprocess")  # what training reads
            seconds.append(local.run(run_settings, START, END, git_sha=tag, runner=runner).seconds)
    return times


def _container_mib(podman: containers.Podman, name: str) -> float:
    done = podman.run("stats", "--no-stream", "--format", "json", name)
    (stats,) = json.loads(done.stdout)
    used = str(stats.get("mem_usage") or stats.get("MemUsage", "")).split("/")[0].strip()
    units = {"kB": 1e3 / 2**20, "KB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20, "B": 1 / 2**20}
    number = used.rstrip("kKMGB")
    unit = used[len(number) :] or "B"
    return round(float(number) * units[unit], 1)


def serving_memory(settings: Settings, tag: str, work: Path, podman: containers.Podman) -> dict[str, dict[str, float]]:
    """MiB at rest and after LOAD_S of load, the microservice in its container and as processes."""
    url_body = json.dumps({"jsonData": {"flights": [EXAMPLE]}})
    out: dict[str, dict[str, float]] = {}
    for kind in ("processes", "container"):
        launcher = stack.Containers(settings, tag) if kind == "container" else stack.Processes()
        with stack.serving_stack(settings, launcher=launcher) as running:
            seldon = running.processes[-1]
            if kind == "container":
                name = f"ctloop-seldon-{launcher.run_id}"  # type: ignore[union-attr]

                def memory(name: str = name) -> float:
                    return _container_mib(podman, name)
            else:

                def memory(pid: int = seldon.popen.pid) -> float:
                    return round(sum(tree_rss_kib(pid).values()) / 1024, 1)

            url = f"{running.rest_url}/api/v1.0/predictions"
            measure(url, [url_body], 1, work)
            rest = memory()
            load = measure(url, [url_body], LOAD_S, work)
            out[kind] = {
                "rest_mib": rest,
                "after_load_mib": memory(),
                "requests_per_s": round(load.requests_per_s, 1),
                "errors": load.errors,
            }
    return out


def run(root: Path, settings: Settings, work: Path) -> dict[str, Any]:
    """All container figures; the images are (re)built first, tagged with the checkout's SHA."""
    tag = git_sha(str(root))
    podman = containers.Podman(root)
    built = builds(root)
    size = sizes_mb(podman, tag)
    port = services.free_port()
    redis = services.start_redis(port, work / "redis")
    try:
        base = settings.replace(services=replace(settings.services, redis_port=port))
        times = pipelines(base, tag, work)
        serving_settings = base.replace(
            paths=replace(base.paths, data_dir=str(work / "container-0")),
            serving=replace(
                base.serving,
                rest_port=services.free_port(),
                metrics_port=services.free_port(),
                feature_server_port=services.free_port(),
            ),
        )
        memory = serving_memory(serving_settings, tag, work, podman)
    finally:
        redis.stop()
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "builds_s": {k: round(v, 1) for k, v in built.items()},
        "sizes_mb": size,
        "size_goals_mb": SIZE_GOALS_MB,
        "pipeline_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "pipeline_ratio": round(median["container"] / median["subprocess"], 3),
        "ratio_goal": RATIO_GOAL,
        "serving_memory": memory,
        "window": f"{START}..{END}",
        "load": {"seconds": LOAD_S, "threads": 2, "connections": 8},
        "engine": "podman " + podman.run("--version").stdout.split()[-1],
        "cpus": os.cpu_count(),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """Each figure beside its baseline (a goal where there is no second measurement) and the ratio."""
    med = {k: statistics.median(v) for k, v in result["pipeline_s"].items()}
    mem = result["serving_memory"]
    out = [
        (
            "pipeline Jan-Mar: containers vs subprocesses (s)",
            med["container"],
            med["subprocess"],
            result["pipeline_ratio"],
        ),
    ]
    for name, goal in result["size_goals_mb"].items():
        size = result["sizes_mb"][name]
        out.append((f"{name} image size vs goal (MB)", size, goal, size / goal))
    for when in ("rest_mib", "after_load_mib"):
        label = "at rest" if when == "rest_mib" else f"after {result['load']['seconds']} s of load"
        value, base = mem["container"][when], mem["processes"][when]
        out.append((f"serving memory {label}: container vs processes (MiB)", value, base, value / base))
    cold, warm = result["builds_s"]["cold_s"], result["builds_s"]["warm_s"]
    out.append(("image builds, both: warm vs cold (s)", warm, cold, warm / cold))
    return out
