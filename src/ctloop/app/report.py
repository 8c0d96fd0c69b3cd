"""The replay's report: ``index.html`` with PNG plots, from the replayed flights and the loop's record.

- performance: AUC and Brier per week, continuous training (what serving answered) against the
  static first champion, with the serving model version as bands and promotions as lines;
- drift: PSI per feature and on the prediction per week, against the reference of the version
  serving that week, from serving's own bucket counters (what the monitor sees);
- timeline: every trigger, retrain, gate decision and promotion;
- serving: request latency and volume per day.
"""

from __future__ import annotations

import html
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctloop.core.clock import LOCAL_TZ
from ctloop.core.monitor import drift
from ctloop.core.text import cell

if TYPE_CHECKING:
    from ctloop.config import Settings


@dataclass
class Event:
    """A monitoring pass that did more than look: a trigger fired."""

    at: str
    model_version: str
    triggers: list[str]
    reasons: list[str]
    outcome: str
    window: list[str] | None
    new_version: str | None
    gate_reasons: list[str]
    numbers: dict[str, Any]


@dataclass(frozen=True)
class ReplayRecord:
    """What a replay hands its report: plain data, not the live loop."""

    start: str
    """The first replayed day (ISO date)."""
    events: list[Event]
    weekly: list[dict[str, Any]]
    """Serving's counters per week (``ctloop.app.replay.Loop.weekly``)."""
    requests: list[tuple[int, int, float]]
    """(step, flights, seconds) of each prediction request."""


PSI_COLOR_CAP = 1.0


def _scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """AUC and Brier (NaN when one class is missing)."""
    from sklearn.metrics import roc_auc_score

    if len(y) == 0:
        return math.nan, math.nan
    brier = float(np.mean((p - y) ** 2))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan
    return auc, brier


def _local_days(results: pd.DataFrame) -> pd.Series:
    days: pd.Series = results["sched_dep_utc"].dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    return days


def weekly_metrics(results: pd.DataFrame) -> pd.DataFrame:
    """Per week from the first replayed day: flights, AUC and Brier of both models, the version that served most."""
    days = _local_days(results)
    week = ((days - days.min()).dt.days // 7).to_numpy()
    rows = []
    for w in np.unique(week):
        part = results.loc[week == w]
        y = part["delayed"].to_numpy(dtype=np.float64)
        ct_auc, ct_brier = _scores(y, part["probability"].to_numpy())
        st_auc, st_brier = _scores(y, part["static_probability"].to_numpy())
        rows.append(
            {
                "week": int(w),
                "start": days.loc[week == w].min().date().isoformat(),
                "flights": len(part),
                "delay_rate": float(y.mean()),
                "ct_auc": ct_auc,
                "ct_brier": ct_brier,
                "static_auc": st_auc,
                "static_brier": st_brier,
                "version": int(part["version"].mode().iat[0]),
            }
        )
    return pd.DataFrame(rows)


def quarter_table(results: pd.DataFrame) -> list[dict[str, Any]]:
    """AUC and Brier per calendar quarter, continuous training against the static champion."""
    quarters = _local_days(results).dt.quarter.to_numpy()
    out = []
    for q in np.unique(quarters):
        part = results.loc[quarters == q]
        y = part["delayed"].to_numpy(dtype=np.float64)
        ct = _scores(y, part["probability"].to_numpy())
        static = _scores(y, part["static_probability"].to_numpy())
        out.append(
            {
                "quarter": f"Q{int(q)}",
                "flights": len(part),
                "ct_auc": round(ct[0], 4),
                "static_auc": round(static[0], 4),
                "ct_brier": round(ct[1], 4),
                "static_brier": round(static[1], 4),
            }
        )
    return out


def weekly_drift(weekly: list[dict[str, Any]], references: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """PSI per feature (and ``prediction``) per week, for the version that scored most flights that week."""
    rows = []
    for earlier, later in itertools.pairwise(weekly):
        windows = {v: c.minus(earlier["counts"].get(v)) for v, c in later["counts"].items()}
        windows = {v: c for v, c in windows.items() if c.rows() > 0 and v in references}
        if not windows:
            continue
        version, counts = max(windows.items(), key=lambda kv: kv[1].rows())
        d = drift(counts, references[version])
        rows.append({"week_start": earlier["at"][:10], "version": version, **d.features, "prediction": d.prediction})
    return pd.DataFrame(rows)


def _pyplot() -> Any:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_performance(path: Path, weeks: pd.DataFrame) -> None:
    """Weekly AUC and Brier of both models, the serving version as bands."""
    plt = _pyplot()
    x = list(pd.to_datetime(weeks["start"]))
    versions = weeks["version"].to_numpy()
    palette = plt.get_cmap("tab20")
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    panels = ((axes[0], "auc", "AUC (higher is better)"), (axes[1], "brier", "Brier (lower is better)"))
    for ax, metric, label in panels:
        start = 0
        for i in range(1, len(weeks) + 1):
            if i == len(weeks) or versions[i] != versions[start]:
                end = x[i] if i < len(weeks) else x[-1] + pd.Timedelta(days=7)
                ax.axvspan(x[start], end, color=palette(int(versions[start]) % 20), alpha=0.15, lw=0)
                if metric == "auc":
                    ax.text(x[start], 1.0, f"v{versions[start]}", transform=ax.get_xaxis_transform(), va="bottom")
                start = i
        ax.plot(x, weeks[f"ct_{metric}"], "o-", label="continuous training (served)", color="C0")
        ax.plot(x, weeks[f"static_{metric}"], "s--", label="static first champion", color="C3")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left")
    fig.suptitle("Weekly performance on delayed labels; bands: the version serving most of the week")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_drift(path: Path, drifts: pd.DataFrame) -> None:
    """Heat map: PSI per feature (and on the prediction) per week."""
    plt = _pyplot()
    cols = [c for c in drifts.columns if c not in {"week_start", "version"}]
    matrix = drifts.loc[:, cols].to_numpy(dtype=np.float64).T
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(cols) + 1.8))
    image = ax.imshow(np.minimum(matrix, PSI_COLOR_CAP), aspect="auto", cmap="magma_r", vmin=0, vmax=PSI_COLOR_CAP)
    ax.set_yticks(range(len(cols)), cols)
    ticks = list(range(0, len(drifts), max(1, len(drifts) // 12)))
    starts, versions = drifts["week_start"].astype(str).tolist(), drifts["version"].astype(str).tolist()
    ax.set_xticks(ticks, [f"{starts[i][5:]} v{versions[i]}" for i in ticks])
    ax.tick_params(axis="x", rotation=45)
    fig.colorbar(image, ax=ax, label=f"PSI vs the serving version's training data (capped at {PSI_COLOR_CAP})")
    ax.set_title("Drift per feature and on the prediction, per week")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


OUTCOME_COLORS = {"promoted": "C2", "not blessed": "C1", "failed": "C3", "none": "0.6"}


def plot_timeline(path: Path, events: list[Any]) -> None:
    """Every trigger by kind, coloured by what became of it; promotions as lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    kinds = sorted({t for e in events for t in e.triggers}) or ["none"]
    for e in events:
        when = pd.Timestamp(e.at)
        for t in e.triggers:
            ax.scatter(when, kinds.index(t), color=OUTCOME_COLORS.get(e.outcome, "0.6"), s=40, zorder=3)
        if e.outcome == "promoted":
            ax.axvline(when, color="C2", alpha=0.4)
            ax.text(when, len(kinds) - 0.4, f"v{e.new_version}", rotation=90, va="top", fontsize=8)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(-0.6, len(kinds))
    for outcome, color in OUTCOME_COLORS.items():
        ax.scatter([], [], color=color, label=outcome if outcome != "none" else "held back (cooldown, de-dup)")
    ax.legend(loc="upper left", fontsize=8, ncols=4)
    ax.set_title("Triggers and what became of them (green lines: promotions, serving swapped)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_serving(path: Path, requests: pd.DataFrame, first_day: pd.Timestamp) -> None:
    """Client-side request latency (p50, p99) and flights scored, per simulated day."""
    plt = _pyplot()
    per_day = requests.assign(day=requests["step"] // 24).groupby("day")
    xs = [first_day + pd.Timedelta(days=int(d)) for d in per_day.size().index]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    ax1.plot(xs, per_day["seconds"].quantile(0.5) * 1000, label="p50")
    ax1.plot(xs, per_day["seconds"].quantile(0.99) * 1000, label="p99")
    ax1.set_ylabel("request latency (ms)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.bar(xs, per_day["flights"].sum(), width=1.0, color="C0", alpha=0.7)
    ax2.set_ylabel("flights scored per day")
    ax2.grid(alpha=0.3)
    fig.suptitle("Serving: one prediction request per simulated hour (client-side latency)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plots(folder: Path, weeks: pd.DataFrame, drifts: pd.DataFrame, loop: ReplayRecord) -> list[str]:
    names = ["performance.png"]
    plot_performance(folder / "performance.png", weeks)
    if not drifts.empty:
        plot_drift(folder / "drift.png", drifts)
        names.append("drift.png")
    plot_timeline(folder / "timeline.png", loop.events)
    names.append("timeline.png")
    requests = pd.DataFrame(loop.requests, columns=["step", "flights", "seconds"])
    if not requests.empty:
        plot_serving(folder / "serving.png", requests, pd.Timestamp(loop.start))
        names.append("serving.png")
    return names


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    cols = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(folder: Path, results: pd.DataFrame, loop: ReplayRecord, figures: dict[str, Any], settings: Settings) -> Path:
    """Write ``index.html`` and its PNGs to ``folder``; return the page's path."""
    import json

    from ctloop.contract.layout import METADATA_FILE, serving_dir

    folder.mkdir(parents=True, exist_ok=True)
    references = {}
    for path in serving_dir(settings.data_dir).glob(f"v*/{METADATA_FILE}"):
        reference = json.loads(path.read_text()).get("reference_fractions")
        if reference:
            references[path.parent.name.removeprefix("v")] = reference
    weeks = weekly_metrics(results)
    drifts = weekly_drift(loop.weekly, references)
    images = _plots(folder, weeks, drifts, loop)
    weeks.to_csv(folder / "weekly.csv", index=False)
    drifts.to_csv(folder / "drift.csv", index=False)
    overview = {k: v for k, v in figures.items() if not isinstance(v, list | dict)}
    overview["versions_served"] = ", ".join(f"v{v}" for v in figures["versions_served"])
    events = [
        {
            "at": e.at,
            "serving": f"v{e.model_version}",
            "triggers": e.triggers,
            "reasons": e.reasons,
            "outcome": e.outcome,
            "window": "..".join(e.window) if e.window else None,
            "new version": f"v{e.new_version}" if e.new_version else None,
            "gate (failed checks)": e.gate_reasons,
        }
        for e in loop.events
        if e.outcome != "none"
    ]
    held = sum(1 for e in loop.events if e.outcome == "none")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ctloop replay {html.escape(figures["period"])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}}th{{background:#f3f3f3}}img{{max-width:100%}}</style></head><body>
<h1>ctloop continuous-training replay, {html.escape(figures["period"])}</h1>
<p>Every flight went through the Seldon REST endpoint on a simulated clock; outcomes came back as
feedback once each flight had arrived; the monitor ran each simulated midnight and retrained,
gated and promoted on its own. The static champion is the first model, never retrained, scored
on the same flights.</p>
<h2>Summary</h2>{_table([overview])}
<h2>Continuous training vs static champion, per quarter</h2>{_table(figures["quarters"])}
{"".join(f'<h2>{html.escape(n.removesuffix(".png"))}</h2><img src="{n}" alt="{n}">' for n in images)}
<h2>Triggers, retrains, gate decisions, promotions</h2>{_table(events)}
<p>{held} more passes found a trigger but started no run (cooldown, waiting for new data, or an
incident already retrained): every decision with its reasons and numbers is in
<code>{html.escape(str(settings.data_dir / "monitor" / "decisions.jsonl"))}</code>.</p>
<h2>Wall time by stage (s)</h2>{_table([figures["stages_s"]])}
</body></html>
"""
    index = folder / "index.html"
    index.write_text(page)
    return index
