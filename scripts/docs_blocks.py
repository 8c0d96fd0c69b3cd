"""The generated blocks of README.md and docs/: figures from ``bench/results/*.json``, values from ``ctloop.config``.

A block is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench -->`` (figures of the last
``make bench`` / ``make reliability`` run), or between ``<!-- config:NAME -->`` and
``<!-- /config -->`` (defaults of the typed settings). What a block holds is this script's output
and nothing else, so a figure in the docs is always the one the last run wrote, and a threshold
the one the code uses.

Usage: ``python scripts/docs_blocks.py`` (``make docs``) rewrites every block;
``python scripts/docs_blocks.py --check`` changes nothing and exits 1 naming each block that
differs (``tests/docs/test_docs.py`` runs the same check).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BLOCK = re.compile(r"(<!-- (bench|config):([a-z0-9-]+) -->\n)(.*?)(<!-- /\2 -->)", re.DOTALL)


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


class Results:
    """The benchmark result files, read once each."""

    def __init__(self, folder: Path = RESULTS) -> None:
        """Read from ``folder`` (``bench/results``)."""
        self.folder = folder
        self._cache: dict[str, dict[str, Any]] = {}

    def __getitem__(self, name: str) -> dict[str, Any]:
        """``bench/results/<name>.json``."""
        if name not in self._cache:
            path = self.folder / f"{name}.json"
            if not path.is_file():
                raise BlockError(f"{path} not found: run make bench (or make reliability) first")
            self._cache[name] = json.loads(path.read_text())
        return self._cache[name]


class BlockError(ValueError):
    """A block that cannot be rendered: unknown name, missing result file or key."""


def num(value: Any, digits: int | None = None) -> str:
    """A figure for people: thousands separated, as many decimals as its size needs."""
    if value is None or isinstance(value, bool):
        return {None: "–", True: "yes", False: "no"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    x = float(value)
    if digits is not None:
        return f"{x:,.{digits}f}"
    digits = _digits(x)
    if digits < 0:
        return f"{x:.1e}"
    text = f"{x:,.{digits}f}"
    return text.rstrip("0") if 0 < abs(x) < 1 else text  # a small ratio or share: no trailing zeros


def _digits(x: float) -> int:
    """Decimals a float of this size needs (-1: scientific notation)."""
    size = abs(x)
    if size == 0 or (x.is_integer() and size >= 100):
        return 0
    if size < 0.001:
        return -1
    return 1 if size >= 100 else 2 if size >= 1 else 4


def ratio(value: Any) -> str:
    """A ratio with two decimals (three under 0.1), or a dash."""
    if value is None:
        return "–"
    return f"{float(value):.3f}" if abs(float(value)) < 0.1 else f"{float(value):.2f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def source(name: str, document: dict[str, Any], key: str = "measured_at") -> str:
    """The line under a table saying where its figures come from."""
    when = document.get(key)
    stamp = f", measured {when[:10]}" if isinstance(when, str) else ""
    machine = document.get("machine", {})
    cpus = f" on {machine['cpus']} cores" if "cpus" in machine else ""
    return f"From `bench/results/{name}.json`{stamp}{cpus}."


def figures_table(document: dict[str, Any]) -> str:
    """The ``figures`` list every benchmark writes: figure, value, baseline, ratio."""
    rows = [(f["figure"], num(f["value"]), num(f["baseline"]), ratio(f["ratio"])) for f in document["figures"]]
    return table(("figure", "value", "baseline", "ratio"), rows)


def replay_outcome(results: Results) -> str:
    """What `make run` ends with: the replay's decisions and the loop against the static champion."""
    r = results["replay"]
    versions = r["versions_served"]
    rows = [
        ("period replayed", r["period"].replace("..", " – ")),
        ("flights replayed", num(r["flights"])),
        (
            "retrains / promoted / not blessed / failed",
            f"{r['retrains']} / {r['promotions']} / {r['not_blessed']} / {r['failed']}",
        ),
        ("versions served", f"v{versions[0]} … v{versions[-1]}" if len(versions) > 1 else f"v{versions[0]}"),
    ]
    naive = results["model"].get("naive_weekly", {})
    naive = naive if naive.get("period") == r["period"] else {}
    by_quarter = {q["quarter"]: q for q in naive.get("quarters", [])}
    versus = " vs naive weekly" if naive else ""
    for q in r["quarters"]:
        value = (
            f"{num(q['ct_auc'], 4)} / {num(q['ct_brier'], 4)} vs {num(q['static_auc'], 4)} / "
            f"{num(q['static_brier'], 4)}"
        )
        if q["quarter"] in by_quarter:
            n = by_quarter[q["quarter"]]
            value += f" vs {num(n['naive_auc'], 4)} / {num(n['naive_brier'], 4)}"
        rows.append((f"{q['quarter']} AUC / Brier: continuous training vs static champion{versus}", value))
    if naive and "overall" in r:
        o, n = r["overall"], naive["overall"]
        rows.append(
            (
                "whole period AUC / Brier: continuous training vs static champion vs naive weekly",
                f"{num(o['ct_auc'], 4)} / {num(o['ct_brier'], 4)} vs {num(o['static_auc'], 4)} / "
                f"{num(o['static_brier'], 4)} vs {num(n['naive_auc'], 4)} / {num(n['naive_brier'], 4)}",
            )
        )
    if naive:
        rows.append(("retrains: continuous training vs naive weekly", f"{r['retrains']} vs {naive['retrains']}"))
    latency = r["latency_ms"]
    rows += [
        ("prediction request (one per simulated hour), p50 / p99", f"{num(latency['p50'])} / {num(latency['p99'])} ms"),
        ("wall time of the replay (set-up excluded)", f"{num(r['wall_s'])} s ({r['wall_s'] / 60:.1f} min)"),
    ]
    return table(("what", "last run"), rows) + "\n\n" + source("replay", r)


def replay_time(results: Results) -> str:
    """The replay as a benchmark: wall time against its goal, monitor passes, time by stage."""
    r = results["replay"]
    timing = [f for f in r["figures"] if not any(word in f["figure"] for word in ("AUC", "Brier", "retrains"))]
    stages = sorted(r["stages_s"].items(), key=lambda kv: -kv[1])
    background = r.get("feature_pipeline_background_s")
    beside = (
        f"\n\nThe feature pipeline's runs in the background took {num(background, 1)} s besides, while the"
        " stages above went on (the `feature pipeline` stage is the time the loop waited for them or ran them itself)."
        if background is not None
        else ""
    )
    return (
        figures_table({"figures": timing})
        + "\n\nTime by stage:\n\n"
        + table(("stage", "s", "share"), [(k, num(v, 1), f"{v / r['wall_s']:.0%}") for k, v in stages])
        + beside
        + "\n\n"
        + source("replay", r)
    )


def pipeline(results: Results) -> str:
    """The full-year pipeline through kfp.local against the same steps called in one process."""
    p = results["pipeline_full_year"]
    rows = [
        (
            f"{p['window'].replace('..', ' – ')} ingest → register, kfp.local vs direct (s)",
            num(p["kfp_local_s"]),
            num(p["direct_s"]),
            ratio(p["ratio"]),
        ),
        ("goal: kfp.local under (s)", num(p["goal_s"]), "", ""),
        ("overhead goal (ratio)", "", "", ratio(p["overhead_goal"])),
        ("AUC on the evaluation window: model vs logistic baseline", num(p["model_auc"], 4), num(p["baseline_auc"], 4),
         ratio(p["model_auc"] / p["baseline_auc"])),
        ("Brier on the evaluation window: model vs logistic baseline", num(p["model_brier"], 4),
         num(p["baseline_brier"], 4), ratio(p["model_brier"] / p["baseline_brier"])),
        ("ONNX vs scikit-learn, max abs difference", num(p["onnx_max_abs_diff"]), "", ""),
    ]  # fmt: skip
    steps = p["steps_kfp_local_s"]
    direct = p["steps_direct_s"]
    step_rows = [
        (name, num(steps[name], 2), num(direct.get(name), 2), f"{steps[name] - direct.get(name, 0.0):+.2f}")
        for name in steps
    ]
    return (
        table(("figure", "value", "baseline", "ratio"), rows)
        + "\n\nBy step (s):\n\n"
        + table(("step", "kfp.local", "direct", "difference"), step_rows)
        + "\n\n"
        + source("pipeline_full_year", p)
    )


def serving(results: Results) -> str:
    """Serving under load: each figure against its baseline, then each server's raw numbers."""
    s = results["serving"]
    load = s["load"]
    raw = [
        (name, num(v["requests_per_s"], 0), num(v["p50_ms"]), num(v["p99_ms"]), num(v["errors"]))
        for name, v in s["results"].items()
        if "requests_per_s" in v
    ]
    return (
        figures_table(s)
        + f"\n\nEach server alone, `wrk -t{load['threads']} -c{load['connections']}`, "
        + f"{load['workers']} workers:\n\n"
        + table(("server", "req/s", "p50 ms", "p99 ms", "errors"), raw)
        + "\n\n"
        + source("serving", s)
    )


def containers(results: Results) -> str:
    """Images and the pipeline in containers against processes."""
    c = results["containers"]
    return figures_table(c) + "\n\n" + source("containers", c, "pipeline_measured_at") + f" Engine: {c['engine']}."


def model(results: Results) -> str:
    """The candidate against the logistic baseline, month by month."""
    m = results["model"]
    rows = [
        (
            x["month"],
            num(x["rows"]),
            num(x["candidate"]["auc"], 4),
            num(x["baseline"]["auc"], 4),
            num(x["candidate"]["brier"], 4),
            num(x["baseline"]["brier"], 4),
            num(x["beats_baseline"]),
        )
        for x in m["months"]
    ]
    header = ("month", "rows", "AUC", "baseline AUC", "Brier", "baseline Brier", "beats it")
    summary = (
        f"The candidate beats the baseline in AUC and Brier on {m['months_beating_baseline']} of {len(rows)} months."
    )
    return table(header, rows) + "\n\n" + summary + " " + source("model", m)


def naive_weekly(results: Results) -> str:
    """The reference loop: retrain every week and always promote, against the static champion."""
    n = results["model"]["naive_weekly"]
    rows = [
        (
            q["quarter"],
            num(q["flights"]),
            num(q["naive_auc"], 4),
            num(q["static_auc"], 4),
            num(q["naive_brier"], 4),
            num(q["static_brier"], 4),
        )
        for q in n["quarters"]
    ]
    header = ("quarter", "flights", "naive AUC", "static AUC", "naive Brier", "static Brier")
    span = n["period"].replace("..", " – ")
    return (
        table(header, rows)
        + f"\n\n{num(n['retrains'])} retrains, one every 7 days over {span}. "
        + source("model", results["model"])
    )


def window_evidence(results: Results) -> str:
    """The naive weekly loop with a short retrain window and with the configured one, per quarter."""
    m = results["model"]
    short, full = m["naive_weekly_short_window"], m["naive_weekly"]
    days = m["train_window_days"]
    by_quarter = {q["quarter"]: q for q in short["quarters"]}
    rows = []
    for q in full["quarters"]:
        s = by_quarter[q["quarter"]]
        rows.append(
            (
                q["quarter"],
                f"{num(q['static_auc'], 4)} / {num(q['static_brier'], 4)}",
                f"{num(s['naive_auc'], 4)} / {num(s['naive_brier'], 4)}",
                f"{num(q['naive_auc'], 4)} / {num(q['naive_brier'], 4)}",
            )
        )
    header = (
        "quarter",
        "static champion AUC / Brier",
        f"naive weekly, {short['train_window_days']}-day window",
        f"naive weekly, {days}-day window",
    )
    return table(header, rows) + "\n\n" + source("model", m)


def replay_decisions(results: Results) -> str:
    """Every retrain of the full replay: when, why, on what window, and what the gate made of it."""
    r = results["replay"]
    rows = []
    for e in r["gate_decisions"]:
        if not e["window"]:
            continue
        notes = "; ".join(e["gate_reasons"]) or "–"
        version = f"v{e['new_version']}" if e["new_version"] else "–"
        rows.append((e["at"][:10], ", ".join(e["triggers"]), " – ".join(e["window"]), e["outcome"], version, notes))
    header = ("day", "triggers", "window", "outcome", "version", "gate: failed checks, or floors waived")
    return table(header, rows) + "\n\n" + source("replay", r)


def offline_online(results: Results) -> str:
    """M2: each served version's gate AUC beside its served AUC, and their correlation."""
    r = results["replay"]
    table_ = r["offline_online"]
    rows = [
        (f"v{v['version']}", num(v["flights"]), num(v["offline_auc"], 4), num(v["served_auc"], 4))
        for v in table_["versions"]
    ]
    header = ("version", "flights served", "gate AUC (offline)", "served AUC (delayed labels)")
    return (
        table(header, rows)
        + f"\n\nCorrelation over the versions (Pearson): {num(table_['correlation'], 2)}. "
        + source("replay", r)
    )


def staleness(results: Results) -> str:
    """M4: AUC and Brier by model age, the loop's versions and the static champion."""
    r = results["replay"]
    rows = [
        (s["model"], s["age_days"], num(s["flights"]), num(s["auc"], 4), num(s["brier"], 4)) for s in r["staleness"]
    ]
    return table(("model", "age (days)", "flights", "AUC", "Brier"), rows) + "\n\n" + source("replay", r)


def fuzz(results: Results) -> str:
    """The fuzzing run: requests by kind and their answers."""
    f = results["reliability"]["fuzz"]
    total = f["total"]
    rows = [
        (kind, num(v.get("sent", 0)), num(v.get("2xx", 0)), num(v.get("4xx", 0)), num(v.get("5xx", 0)))
        for part in ("malformed", "schemathesis")
        for kind, v in f[part]["by_kind"].items()
    ]
    rows.append(("**all**", num(total["requests"]), num(total["2xx"]), num(total["4xx"]), f"**{num(total['5xx'])}**"))
    statuses = ", ".join(f"{code}: {num(n)}" for code, n in total["statuses"].items())
    return (
        table(("kind", "sent", "2xx", "4xx", "5xx"), rows)
        + f"\n\nStatuses: {statuses}. Requests without an answer: {num(total['no_answer'])}; "
        + f"answers breaking the rules: {num(total['problems'])}. Seed {f['seed']}.\n\n"
        + "From `bench/results/reliability.json` (`fuzz`)."
    )


def load(results: Results) -> str:
    """Load with a promotion, rollback under load, the feature server killed, the pipeline killed."""
    r = results["reliability"]
    promo, back, kill, pipe = (
        r["load_with_promotion"],
        r["rollback_under_load"],
        r["feature_server_kill"],
        r["pipeline_kill"],
    )
    rows = [
        (
            f"{num(promo['seconds'], 0)} s of load, {promo['connections']} connections, a promotion at "
            f"{num(promo['promoted_at_s'], 0)} s",
            f"{num(promo['requests'])} requests, {num(promo['failed'])} failed; serving RSS "
            f"{num(promo['rss_mib_after_warmup'])} → {num(promo['rss_mib_end'])} MiB "
            f"({promo['memory_growth_pct']:+.2f} %) after a {num(promo['warmup_s'], 0)} s warm-up",
        ),
        (
            "`ctloop rollback` under load",
            f"{num(back['requests'])} requests, {num(back['failed'])} failed; of the "
            f"{num(back['answers_after_swap_interval'])} sent later than the swap interval "
            f"({back['swap_interval_s']} s) after the switch, {num(back['not_the_target_after_swap_interval'])} "
            "answered by the old version",
        ),
        (
            f"feature server SIGKILLed for {num(kill['down_s'], 0)} s under load",
            f"during the outage: {', '.join(f'{num(n)} × {k}' for k, n in kill['during_outage'].items())}; "
            f"readiness false after {kill['readiness_false_after_s']} s; back {kill['recovery_ready_s']} s after its "
            f"return ({num(kill['restart_s'])} s restart); {num(kill['unexpected'])} unexpected answers",
        ),
        (
            f"training pipeline SIGKILLed during `{pipe['killed_during']}`",
            f"{num(pipe['processes_surviving_the_kill'])} processes survive, "
            f"{num(pipe['versions_registered_by_the_killed_run'])} versions registered; the rerun "
            f"{'completes' if pipe['rerun_completed'] else 'fails'} and registers "
            f"{num(pipe['versions_registered_by_the_rerun'])}",
        ),
    ]
    return table(("scenario", "outcome"), rows) + "\n\nFrom `bench/results/reliability.json`."


def registry_outage(results: Results) -> str:
    """MLflow killed around the register step."""
    o = results["reliability"]["registry_outage"]
    limits = ", ".join(f"`{k}={v}`" for k, v in o["http_limits"].items())
    rows = [
        ("server killed as the kfp.local register task starts",
         f"the step fails {o['pipeline_register_failed_s_after_kill']} s later"),
        ("register called with the server down", f"fails in {o['register_with_server_down_failed_s']} s"),
    ]  # fmt: skip
    for point, v in o["kill_points"].items():
        rows.append(
            (
                f"killed mid-register at `{point}`, restarted, register called again",
                f"error {v['failed_s_after_kill']} s after the kill; versions after the rerun: "
                f"{v['versions_after_rerun_and_third_call']}; a third call returns the same version: "
                f"{num(v['third_call_same_version'])}",
            )
        )
    return (
        table(("scenario", "outcome"), rows)
        + f"\n\nThe error: `{o['pipeline_error']}`. MLflow's HTTP limits: {limits}.\n\n"
        + "From `bench/results/reliability.json` (`registry_outage`)."
    )


def value(setting: Any) -> str:
    """A setting as TOML would spell it; seconds also in days when they are whole days."""
    text = f"`{json.dumps(list(setting) if isinstance(setting, tuple) else setting)}`"
    if isinstance(setting, float) and setting >= DAY_S and setting % DAY_S == 0:
        text += f" ({setting / DAY_S:.0f} days)"
    return text


DAY_S = 86400


def settings_table(instance: Any, section: str, meanings: dict[str, str]) -> str:
    """One row per field of a settings dataclass: ``[section] key``, its default, what it means."""
    names = [f.name for f in fields(instance)]
    missing = [n for n in names if n not in meanings]
    extra = [n for n in meanings if n not in names]
    if missing or extra:
        raise BlockError(
            f"[{section}] fields without a meaning here: {missing}; meanings without a field: {extra} "
            "(update scripts/docs_blocks.py)"
        )
    rows = [(f"`{name}`", value(getattr(instance, name)), meanings[name]) for name in names]
    return (
        table((f"`[{section}]` key", "default", "meaning"), rows)
        + "\n\nDefaults of `src/ctloop/config.py`; an environment's `config/*.toml` may set others."
    )


MONITOR = {
    "prometheus_url": "empty: read serving's `/metrics` page; on a cluster, Prometheus's HTTP API",
    "window": "the traffic a pass judges (drift and delayed-label performance)",
    "kfp_host": "on a cluster, the KFP API retrains start on",
    "max_feature_psi_above_normal": "a feature has drifted when its PSI exceeds its normal by more than this",
    "min_drifted_features": "drifted features needed to trigger",
    "drift_ignore": "features whose PSI is reported but triggers nothing",
    "max_prediction_psi_above_normal": "the prediction has drifted when its PSI exceeds its normal by more than this",
    "min_rows": "fewer scored flights in the window: drift is not judged",
    "min_auc": "delayed-label AUC floor",
    "max_brier": "delayed-label Brier ceiling",
    "min_labelled": "outcomes needed before AUC and Brier are judged",
    "max_model_age_days": "schedule: retrain when the champion's data is older than this",
    "min_new_data_days": "no run until the champion's data is this old (a retrain needs news)",
    "train_window_days": "a retrain's window: this many days ending the day before now",
    "cooldown_s": "at least this long between two runs, in seconds on the monitor's clock",
}

GATE = {
    "min_auc": "AUC floor on the evaluation window",
    "min_log_loss_skill": "log-loss skill floor (against predicting the window's base rate)",
    "min_brier_skill": "Brier skill floor (same)",
    "max_auc_drop": "AUC may fall below the champion's by at most this",
    "max_brier_increase": "Brier may rise above the champion's by at most this",
    "floors_yield_to_champion": "the floors yield to a candidate as good as the champion in AUC and Brier",
    "min_slice_rows": "a slice with fewer rows is not judged",
    "min_slice_auc": "a slice below this AUC has collapsed",
    "max_slice_auc_drop": "a slice may fall below the champion's same slice by at most this",
}

TRAIN = {
    "seed": "random state of the model and the baseline",
    "eval_days": "the window's last days, held out for evaluation and the gate",
    "max_iter": "boosting iterations (no early stopping: deterministic)",
    "learning_rate": "shrinkage (the tune step's choice replaces it)",
    "max_leaf_nodes": "leaves per tree (the tune step's choice replaces it)",
    "l2_regularization": "L2 penalty on leaf values",
    "min_samples_leaf": "rows per leaf at least",
}
TUNE = {
    "enabled": "false: no search, `[train]`'s values",
    "learning_rate": "the learning rates tried",
    "max_leaf_nodes": "the leaf counts tried (every pair with each learning rate)",
    "validation_days": "the fit split's last days, on which each pair is scored (log-loss)",
    "max_rows": "at most this many flights (a seeded sample) of the earlier fit days fit each pair",
}


def monitor_settings(_: Results) -> str:
    """The retraining policy's defaults."""
    from ctloop.config import MonitorSettings

    return settings_table(MonitorSettings(), "monitor", MONITOR)


def gate_settings(_: Results) -> str:
    """The promotion gate's defaults."""
    from ctloop.config import GateSettings

    return settings_table(GateSettings(), "gate", GATE)


def train_settings(_: Results) -> str:
    """The model's hyper-parameters."""
    from ctloop.config import TrainParams

    return settings_table(TrainParams(), "train", TRAIN)


def tune_settings(_: Results) -> str:
    """The tuning step's search."""
    from ctloop.config import TuneSettings

    return settings_table(TuneSettings(), "tune", TUNE)


def ports(_: Results) -> str:
    """Every loopback port the local stack uses, and the setting that moves it."""
    from ctloop.config import Services, ServingSettings

    services, serving = Services(), ServingSettings()
    rows = [
        (str(services.redis_port), "Redis, the online store (ctloop's own; a foreign one is refused)",
         "`[services] redis_port`"),
        (str(serving.feature_server_port), "`feast serve`, the feature server", "`[serving] feature_server_port`"),
        (str(serving.rest_port), "the Seldon microservice: predictions, feedback, health, `/metrics`",
         "`[serving] rest_port`"),
        (str(serving.metrics_port), "Seldon's own metrics page", "`[serving] metrics_port`"),
        (str(services.mlflow_ui_port), "`ctloop ui`, the MLflow UI", "`[services] mlflow_ui_port` or `--port`"),
        (str(services.report_port), "`ctloop report`, the replay's report", "`[services] report_port` or `--port`"),
    ]  # fmt: skip
    return table(("port", "what listens", "setting"), rows)


RENDERERS: dict[str, Callable[[Results], str]] = {
    "bench:replay": replay_outcome,
    "bench:replay-time": replay_time,
    "bench:pipeline": pipeline,
    "bench:serving": serving,
    "bench:containers": containers,
    "bench:model": model,
    "bench:naive-weekly": naive_weekly,
    "bench:window-evidence": window_evidence,
    "bench:replay-decisions": replay_decisions,
    "bench:offline-online": offline_online,
    "bench:staleness": staleness,
    "bench:fuzz": fuzz,
    "bench:load": load,
    "bench:registry-outage": registry_outage,
    "config:monitor": monitor_settings,
    "config:gate": gate_settings,
    "config:train": train_settings,
    "config:tune": tune_settings,
    "config:ports": ports,
}


def render(text: str, results: Results, where: str = "") -> str:
    """``text`` with every block's body replaced by what its renderer gives now."""

    def body(match: re.Match[str]) -> str:
        kind, name = match.group(2), match.group(3)
        renderer = RENDERERS.get(f"{kind}:{name}")
        if renderer is None:
            raise BlockError(f"{where}: unknown block {kind}:{name} (known: {', '.join(RENDERERS)})")
        try:
            content = renderer(results)
        except KeyError as exc:
            raise BlockError(f"{where}: block {kind}:{name} needs key {exc} in the results") from None
        return f"{match.group(1)}{content}\n{match.group(5)}"

    return BLOCK.sub(body, text)


def blocks(text: str) -> list[tuple[str, str]]:
    """Each block of ``text`` as (``kind:name``, body)."""
    return [(f"{m.group(2)}:{m.group(3)}", m.group(4)) for m in BLOCK.finditer(text)]


def stale(root: Path = ROOT, results: Results | None = None) -> list[str]:
    """``file: kind:name`` for every block whose body differs from what it renders to now."""
    results = results or Results(root / "bench" / "results")
    out = []
    for path in doc_files(root):
        text = path.read_text()
        fresh = render(text, results, str(path.relative_to(root)))
        now, then = dict(blocks(fresh)), blocks(text)
        out += [f"{path.relative_to(root)}: {name}" for name, old in then if now[name] != old]
    return out


def main(argv: list[str]) -> int:
    """Rewrite the blocks (or, with ``--check``, list the stale ones and exit 1)."""
    results = Results()
    try:
        if "--check" in argv:
            differing = stale(ROOT, results)
            for line in differing:
                print(f"stale: {line}", file=sys.stderr)
            if differing:
                print(
                    "error: generated blocks differ from bench/results and the settings: run make docs", file=sys.stderr
                )
            return 1 if differing else 0
        for path in doc_files():
            text = path.read_text()
            fresh = render(text, results, str(path.relative_to(ROOT)))
            if fresh != text:
                path.write_text(fresh)
                print(f"rewrote {path.relative_to(ROOT)}")
    except BlockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
