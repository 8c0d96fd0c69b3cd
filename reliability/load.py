"""Load with faults: concurrent prediction requests while the stack is changed under them.

``Load`` keeps N persistent HTTP connections busy with valid prediction requests and records
every answer (when it was sent and answered, its status, the model version or error reason that
answered it). The scenarios run something in the middle of that traffic and return figures:

- ``promotion``: a new champion deployed mid-load (a hot swap), memory of the serving processes
  (``/proc`` RSS of Seldon's gunicorn master and everything under it) from warm-up to the end;
- ``rollback``: ``ctloop rollback`` mid-load; every request sent later than the switch plus the
  swap interval must be answered by the version rolled back to;
- ``feature_server_kill``: the feature server killed mid-load (503 with the reason, readiness
  false), restarted, and the seconds from its return until predictions and readiness are back.

``write`` merges a scenario's figures into ``bench/results/reliability.json`` under its own key.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREDICT_PATH = "/api/v1.0/predictions"
READY_PATH = "/health/status"
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """One request: monotonic send and answer times, HTTP status (0: no answer), who or what answered."""

    sent: float
    done: float
    status: int
    version: str = ""
    reason: str = ""


def get(url: str, path: str, timeout_s: float = 2.0) -> tuple[int, dict[str, Any]]:
    """One GET on a new connection: status (0 when nothing answers) and the decoded JSON (or {})."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        text = response.read()
    except OSError:
        return 0, {}
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, {}


class Load:
    """``connections`` threads, each sending ``body`` to ``url`` over its own keep-alive connection."""

    def __init__(self, url: str, body: dict[str, Any], connections: int = 8, timeout_s: float = TIMEOUT_S) -> None:
        """Prepare the request; nothing is sent before :meth:`start`."""
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.payload = json.dumps(body).encode()
        self.connections = connections
        self.timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the clients."""
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.connections)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the clients and wait for their last answers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def _client(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json"}
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("POST", PREDICT_PATH, self.payload, headers)
                response = conn.getresponse()
                text = response.read()
                answer = judge(sent, response.status, text)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # http.client reconnects on the next request
                answer = Answer(sent, time.monotonic(), 0, reason=f"{type(exc).__name__}: {exc}")
            with self._lock:
                self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        """The answers so far."""
        with self._lock:
            return list(self.answers)


def judge(sent: float, status: int, text: bytes) -> Answer:
    """An answer from a response: the model version of a 200, the reason of an error."""
    done = time.monotonic()
    try:
        body = json.loads(text)
    except ValueError:
        return Answer(sent, done, status, reason=f"not JSON: {text[:120]!r}")
    if status == 200:
        return Answer(sent, done, status, version=str(body.get("meta", {}).get("tags", {}).get("model_version", "")))
    return Answer(sent, done, status, reason=str(body.get("status", {}).get("reason", text[:120])))


@contextmanager
def loaded(url: str, body: dict[str, Any], connections: int = 8) -> Iterator[Load]:
    """A running :class:`Load` for the duration of the block."""
    load = Load(url, body, connections)
    load.start()
    try:
        yield load
    finally:
        load.stop()


# -- memory ---------------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state": the parent's pid
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def rss_kib(pid: int) -> int:
    """Resident set size of one process (``VmRSS`` in ``/proc/<pid>/status``), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> dict[int, int]:
    """RSS of ``pid`` and every process under it (gunicorn's master, its workers, Seldon's metrics manager)."""
    tree = _children()
    out: dict[int, int] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        out[current] = rss_kib(current)
        todo.extend(tree.get(current, []))
    return out


# -- figures --------------------------------------------------------------------------------------
def counts(answers: list[Answer]) -> dict[str, Any]:
    """Requests, statuses, failures (anything but a 200) and the versions that answered."""
    statuses = Counter(a.status for a in answers)
    return {
        "requests": len(answers),
        "ok": statuses.get(200, 0),
        "failed": len(answers) - statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "versions": dict(sorted(Counter(a.version for a in answers if a.status == 200).items())),
    }


def failures(answers: list[Answer], limit: int = 5) -> list[str]:
    """A few failed answers, readable."""
    return [f"{a.status} {a.reason}" for a in answers if a.status != 200][:limit]


def promotion(
    url: str, body: dict[str, Any], pid: int, promote: Callable[[], Any], seconds: float, warmup_s: float = 10.0
) -> dict[str, Any]:
    """Load for ``seconds``; ``promote`` at half time; RSS of the serving processes after warm-up and at the end."""
    with loaded(url, body) as load:
        began = time.monotonic()
        time.sleep(warmup_s)
        start_rss = sum(tree_rss_kib(pid).values())
        samples = [start_rss]
        middle, promoted_at = began + seconds / 2, 0.0
        while (now := time.monotonic()) < began + seconds:
            if not promoted_at and now >= middle:
                promote()
                promoted_at = time.monotonic()
            next_event = began + seconds if promoted_at else middle
            time.sleep(max(0.05, min(5.0, next_event - now)))
            samples.append(sum(tree_rss_kib(pid).values()))
        end = tree_rss_kib(pid)
    answers = load.snapshot()
    end_rss = sum(end.values())
    return {
        **counts(answers),
        "seconds": round(time.monotonic() - began, 1),
        "connections": load.connections,
        "requests_per_s": round(len(answers) / seconds, 1),
        "promoted_at_s": round(promoted_at - began, 1),
        "serving_processes": len(end),
        "rss_mib_after_warmup": round(start_rss / 1024, 1),
        "rss_mib_end": round(end_rss / 1024, 1),
        "rss_mib_max": round(max(samples) / 1024, 1),
        "memory_growth_pct": round(100 * (end_rss - start_rss) / start_rss, 2),
        "warmup_s": warmup_s,
        "first_failures": failures(answers),
    }


def rollback(
    url: str, body: dict[str, Any], roll_back: Callable[[], str], swap_s: float, before_s: float, after_s: float
) -> dict[str, Any]:
    """Load; ``roll_back`` (returns the version it went back to) after ``before_s``; load ``after_s`` more.

    Every request sent later than ``swap_s`` after ``roll_back`` returned (the link had switched
    by then) must be answered by the rolled-back-to version.
    """
    with loaded(url, body) as load:
        time.sleep(before_s)
        called = time.monotonic()
        target = roll_back()
        switched = time.monotonic()
        time.sleep(after_s)
    answers = load.snapshot()
    late = [a for a in answers if a.sent > switched + swap_s]
    old_after = [a for a in answers if a.status == 200 and a.version != target and a.sent > switched]
    return {
        **counts(answers),
        "rolled_back_to": target,
        "rollback_call_s": round(switched - called, 3),
        "swap_interval_s": swap_s,
        "answers_after_swap_interval": len(late),
        "not_the_target_after_swap_interval": sum(a.status != 200 or a.version != target for a in late),
        "last_old_version_sent_after_switch_s": round(max((a.sent - switched for a in old_after), default=0.0), 3),
        "first_failures": failures(answers),
    }


def feature_server_kill(
    url: str,
    body: dict[str, Any],
    kill: Callable[[], None],
    restart: Callable[[], None],
    down_s: float,
    before_s: float = 2.0,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Load; ``kill`` the feature server, keep it down ``down_s``, ``restart`` it; time the recovery.

    Recovery is measured from ``restart`` returning (the feature server answers ``/health``):
    the first 200 the load gets, and readiness (``/health/status``) 200 again.
    """
    with loaded(url, body) as load:
        time.sleep(before_s)
        kill()
        killed = time.monotonic()  # the feature server is gone from here on
        ready_false_at = None
        while time.monotonic() < killed + down_s:
            if ready_false_at is None and get(url, READY_PATH)[0] == 503:
                ready_false_at = time.monotonic()
            time.sleep(0.1)
        ready_status, ready_body = get(url, READY_PATH)
        restarting = time.monotonic()
        restart()
        back = time.monotonic()
        ready_at = None
        while ready_at is None and time.monotonic() < back + timeout_s:
            if get(url, READY_PATH)[0] == 200:
                ready_at = time.monotonic()
            else:
                time.sleep(0.05)
        time.sleep(2.0)  # and the load goes on after it
    answers = load.snapshot()
    down = [a for a in answers if killed < a.sent and a.done < restarting]
    after = [a for a in answers if a.sent > back]
    first_ok = min((a.done for a in after if a.status == 200), default=None)
    unexpected = [
        a for a in answers if a.status != 200 and not (a.status == 503 and a.reason == "FEATURE_SERVER_UNAVAILABLE")
    ]
    failed_after_recovery = [a for a in after if first_ok is not None and a.sent > first_ok and a.status != 200]
    return {
        **counts(answers),
        "down_s": down_s,
        "restart_s": round(back - restarting, 2),
        "during_outage": dict(sorted(Counter(f"{a.status} {a.reason}".strip() for a in down).items())),
        "readiness_false_after_s": None if ready_false_at is None else round(ready_false_at - killed, 2),
        "readiness_while_down": {**ready_body.get("status", {}), "http_status": ready_status},
        "recovery_first_ok_s": None if first_ok is None else round(first_ok - back, 3),
        "recovery_ready_s": None if ready_at is None else round(ready_at - back, 3),
        "unexpected": len(unexpected),
        "failed_after_recovery": len(failed_after_recovery),
        "first_unexpected": [f"{a.status} {a.reason}" for a in unexpected[:5]],
    }


def write(path: Path, key: str, figures: dict[str, Any]) -> None:
    """Put ``figures`` under ``key`` in the JSON file at ``path``; other keys stay as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    results[key] = figures
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
