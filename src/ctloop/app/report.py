"""The replay's report: ``index.html`` with PNG plots, from the replayed flights and the loop's record.

- performance: AUC and Brier per week, continuous training (what serving answered) against the
  static first champion and, where ``make bench`` measured it on the same flights, the naive
  loop that retrains every week and always promotes; the serving model version as bands;
- drift: PSI above each feature's normal (and the prediction's) per week, against the reference of
  the version serving that week, from serving's own bucket counters (what the monitor judges), the
  features the policy acts on marked;
- timeline: every trigger, retrain, gate decision and promotion;
- serving: request latency and volume per day.
"""

from __future__ import annotations

import html
import itertools
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctloop.core.clock import LOCAL_TZ
from ctloop.core.monitor import drift
from ctloop.core.text import human

if TYPE_CHECKING:
    from ctloop.config import MonitorSettings, Settings


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
DECISIONS = "decisions.jsonl"
"""Every monitoring decision of the replay, copied beside the report."""
REFERENCE_LOOP = Path("bench") / "results" / "model.json"
"""Where ``make bench`` writes the naive weekly loop (``naive_weekly``), measured on the same flights."""


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


def reference_loop(root: Path, period: str) -> dict[str, Any] | None:
    """The naive weekly loop ``make bench`` measured over ``period``, if this checkout has it."""
    import json

    path = root / REFERENCE_LOOP
    if not path.is_file():
        return None
    loop: dict[str, Any] | None = json.loads(path.read_text()).get("naive_weekly")
    if not loop or loop.get("period") != period or "weeks" not in loop:
        return None
    return loop


def with_reference(weeks: pd.DataFrame, loop: dict[str, Any] | None) -> pd.DataFrame:
    """The weekly table with the naive loop's AUC and Brier of the same week, when there is one."""
    if loop is None:
        return weeks
    naive = pd.DataFrame(loop["weeks"]).loc[:, ["start", "naive_auc", "naive_brier"]]
    return weeks.merge(naive, on="start", how="left")


def three_loops(quarters: list[dict[str, Any]], loop: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per quarter and over the period: AUC and Brier of continuous training, the static champion and the naive loop."""
    naive = {q["quarter"]: q for q in loop["quarters"]} if loop else {}
    rows = []
    for q in quarters:
        row = {"quarter": q["quarter"], "flights": q["flights"], "CT AUC": q["ct_auc"], "static AUC": q["static_auc"]}
        row["naive weekly AUC"] = naive.get(q["quarter"], {}).get("naive_auc")
        row |= {"CT Brier": q["ct_brier"], "static Brier": q["static_brier"]}
        row["naive weekly Brier"] = naive.get(q["quarter"], {}).get("naive_brier")
        rows.append(row)
    return rows


def period_scores(results: pd.DataFrame) -> dict[str, float]:
    """AUC and Brier of continuous training and of the static champion on the same flights (rounded)."""
    y = results["delayed"].to_numpy(dtype=np.float64)
    ct = _scores(y, results["probability"].to_numpy())
    static = _scores(y, results["static_probability"].to_numpy())
    return {
        "ct_auc": round(ct[0], 4),
        "static_auc": round(static[0], 4),
        "ct_brier": round(ct[1], 4),
        "static_brier": round(static[1], 4),
    }


AGE_BIN_DAYS = 28
"""Model age is reported in bins of this many days since the end of the model's data."""


def _version_key(value: Any) -> str:
    return str(int(value)) if value not in (None, "") and not pd.isna(value) else ""


def offline_vs_online(results: pd.DataFrame, versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per served version: the gate's offline AUC against the AUC it was served at on delayed labels.

    ``versions``: each version's ``offline_auc`` (its evaluation window). The correlation is
    Pearson's over the versions (NaN with fewer than three).
    """
    key = results["version"].map(_version_key)
    rows = []
    for version, part in results.groupby(key, sort=False):
        if version not in versions:
            continue
        served, _ = _scores(part["delayed"].to_numpy(dtype=np.float64), part["probability"].to_numpy())
        offline = float(versions[version]["offline_auc"])
        rows.append({"version": int(version), "flights": len(part), "offline_auc": round(offline, 4)})
        rows[-1]["served_auc"] = round(served, 4)
    rows.sort(key=lambda r: r["version"])
    pairs = [(r["offline_auc"], r["served_auc"]) for r in rows if not math.isnan(r["served_auc"])]
    correlation = float(np.corrcoef(np.asarray(pairs).T)[0, 1]) if len(pairs) >= 3 else math.nan
    return {"versions": rows, "correlation": round(correlation, 4)}


def staleness(results: pd.DataFrame, versions: dict[str, dict[str, Any]], static_end: str) -> list[dict[str, Any]]:
    """AUC and Brier by model age (days from the end of the model's data to the flight's local day).

    For the loop, each flight is aged by the version that served it; for the static champion by
    its one window's end, so its ages run the whole replay long.
    """
    days = _local_days(results)
    ends = results["version"].map(lambda v: versions.get(_version_key(v), {}).get("data_end"))
    ages = {
        "continuous training": ((days - pd.to_datetime(ends)).dt.days, "probability"),
        "static champion": ((days - pd.Timestamp(static_end)).dt.days, "static_probability"),
    }
    rows = []
    y = results["delayed"].to_numpy(dtype=np.float64)
    for model, (age, column) in ages.items():
        bins = (age // AGE_BIN_DAYS).to_numpy(dtype=np.float64)  # NaN: a version whose data end is unknown
        for b in np.unique(bins[~np.isnan(bins)]):
            mask = bins == b
            auc, brier = _scores(y[mask], results[column].to_numpy()[mask])
            first = int(b) * AGE_BIN_DAYS
            rows.append(
                {
                    "model": model,
                    "age_days": f"{first}-{first + AGE_BIN_DAYS - 1}",
                    "flights": int(mask.sum()),
                    "auc": round(auc, 4),
                    "brier": round(brier, 4),
                }
            )
    return rows


def quarter_table(results: pd.DataFrame) -> list[dict[str, Any]]:
    """AUC and Brier per calendar quarter, continuous training against the static champion."""
    quarters = _local_days(results).dt.quarter.to_numpy()
    out = []
    for q in np.unique(quarters):
        part = results.loc[quarters == q]
        out.append({"quarter": f"Q{int(q)}", "flights": len(part), **period_scores(part)})
    return out


def weekly_drift(
    weekly: list[dict[str, Any]], references: dict[str, dict[str, Any]], above_normal: bool = True
) -> pd.DataFrame:
    """Drift per feature (and ``prediction``) per week, for the version that scored most flights that week.

    ``above_normal``: each PSI minus the feature's normal (the serving version's
    ``reference_fractions``; ``ctloop.core.drift_normal``), what the monitor and the alerts judge;
    otherwise the raw PSI.
    """
    rows = []
    for earlier, later in itertools.pairwise(weekly):
        windows = {v: c.minus(earlier["counts"].get(v)) for v, c in later["counts"].items()}
        windows = {v: c for v, c in windows.items() if c.rows() > 0 and v in references}
        if not windows:
            continue
        version, counts = max(windows.items(), key=lambda kv: kv[1].rows())
        d = drift(counts, references[version])
        values = d.above_normal() if above_normal else d.features
        prediction = d.prediction - d.prediction_normal if above_normal else d.prediction
        rows.append({"week_start": earlier["at"][:10], "version": version, **values, "prediction": prediction})
    return pd.DataFrame(rows)


def _pyplot() -> Any:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _date_axis(ax: Any) -> None:
    """Dates as people read them: month names, the year once (matplotlib's concise formatter)."""
    import matplotlib.dates as mdates

    # matplotlib leaves these two constructors unannotated
    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


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
        if f"naive_{metric}" in weeks:
            ax.plot(x, weeks[f"naive_{metric}"], "^:", label="naive: retrain weekly, always promote", color="C2")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    _date_axis(axes[1])
    axes[0].legend(loc="lower left")
    fig.suptitle("Weekly performance on delayed labels; bands: the version serving most of the week")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _week_label(week_start: str, version: str) -> str:
    day = pd.Timestamp(week_start)
    return f"{day:%b} {day.day}\nv{version}"


def drift_row_labels(rows: list[str], policy: MonitorSettings) -> list[str]:
    """The heat map's row names: ``●`` after each feature (or the prediction) the policy acts on."""
    return [row if row in policy.drift_ignore else f"{row} ●" for row in rows]


def fired_cells(matrix: np.ndarray, rows: list[str], policy: MonitorSettings) -> list[tuple[int, int]]:
    """(row, week) of every cell above its threshold, for what the policy acts on."""
    cells = []
    for i, row in enumerate(rows):
        if row in policy.drift_ignore:
            continue
        prediction = row == "prediction"
        limit = policy.max_prediction_psi_above_normal if prediction else policy.max_feature_psi_above_normal
        cells += [(i, int(j)) for j in np.flatnonzero(matrix[i] > limit)]
    return cells


def plot_drift(path: Path, drifts: pd.DataFrame, policy: MonitorSettings) -> None:
    """Heat map: PSI above each feature's normal (and the prediction's) per week; what the policy acts on marked.

    Features the drift trigger watches carry a ``●`` before their name (those in ``drift_ignore``
    are greyed); a cell above its threshold (``max_feature_psi_above_normal``, the prediction's own)
    gets a white ``×``: that week, that feature fired.
    """
    plt = _pyplot()
    cols = [c for c in drifts.columns if c not in {"week_start", "version"}]
    matrix = drifts.loc[:, cols].to_numpy(dtype=np.float64).T
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(cols) + 2.2))
    shown = np.clip(matrix, 0.0, PSI_COLOR_CAP)
    image = ax.imshow(shown, aspect="auto", cmap="magma_r", vmin=0, vmax=PSI_COLOR_CAP)
    fired = fired_cells(matrix, cols, policy)
    if fired:
        ax.scatter([j for _, j in fired], [i for i, _ in fired], marker="x", color="white", s=14, linewidths=1)
    ax.set_yticks(range(len(cols)), drift_row_labels(cols, policy))
    for label, name in zip(ax.get_yticklabels(), cols, strict=True):
        if name in policy.drift_ignore:
            label.set_color("0.55")
    every = max(1, -(-len(drifts) // 20))
    ticks = list(range(0, len(drifts), every))
    starts, versions = drifts["week_start"].astype(str).tolist(), drifts["version"].astype(str).tolist()
    ax.set_xticks(ticks, [_week_label(starts[i], versions[i]) for i in ticks], fontsize=8)
    bar = fig.colorbar(image, ax=ax, label=f"PSI above the feature's normal (capped at {PSI_COLOR_CAP:g})")
    bar.ax.axhline(policy.max_feature_psi_above_normal, color="C0", lw=2)
    ax.set_title(
        "Drift per week against the serving version's training data, above each feature's normal week-to-week PSI\n"
        f"● the policy acts on it; × above its threshold ({policy.max_feature_psi_above_normal:g} for a feature, "
        f"{policy.max_prediction_psi_above_normal:g} for the prediction; blue line on the scale)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


CAPTIONS = {
    "drift.png": (
        "<p>Each cell: the week's population stability index (PSI) of a feature against the serving "
        "version's training data, minus that feature's <em>normal</em>, the PSI a week of it had "
        "against the rest of the training data (a high quantile over the training weeks, recorded "
        "with the model). Weather, trailing delay rates and the month move every week by nature and "
        "have large normals; distance, hour and planes small ones. The monitor and the Prometheus "
        "alerts judge exactly this number (<code>drift.csv</code>; raw PSI in "
        "<code>drift_psi.csv</code>).</p>"
    ),
}

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
    _date_axis(ax)
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
    _date_axis(ax2)
    fig.suptitle("Serving: one prediction request per simulated hour (client-side latency)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plots(
    folder: Path, weeks: pd.DataFrame, drifts: pd.DataFrame, loop: ReplayRecord, policy: MonitorSettings
) -> list[str]:
    names = ["performance.png"]
    plot_performance(folder / "performance.png", weeks)
    if not drifts.empty:
        plot_drift(folder / "drift.png", drifts, policy)
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
    body = "".join("<tr>" + "".join(f"<td>{html.escape(human(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str) -> str:
    return f'<h2>{html.escape(name.removesuffix(".png"))}</h2>{CAPTIONS.get(name, "")}<img src="{name}" alt="{name}">'


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
    loop_ref = reference_loop(Path(settings.root), figures["period"])
    weeks = with_reference(weekly_metrics(results), loop_ref)
    drifts = weekly_drift(loop.weekly, references)
    images = _plots(folder, weeks, drifts, loop, settings.monitor)
    weeks.to_csv(folder / "weekly.csv", index=False)
    drifts.to_csv(folder / "drift.csv", index=False)  # PSI above normal: what the monitor judges
    weekly_drift(loop.weekly, references, above_normal=False).to_csv(folder / "drift_psi.csv", index=False)
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
            "gate (failed checks, or floors waived)": e.gate_reasons,
        }
        for e in loop.events
        if e.outcome != "none"
    ]
    held = sum(1 for e in loop.events if e.outcome == "none")
    decisions = settings.data_dir / "monitor" / DECISIONS
    if decisions.is_file():
        shutil.copyfile(decisions, folder / DECISIONS)
    if loop_ref is None:
        reference_note = (
            'The naive weekly loop is measured by <code>make bench BENCH_ARGS="--only model"</code> '
            "over the full replay's period; it is not shown for this period."
        )
    else:
        reference_note = (
            f"Retrains: continuous training {figures['retrains']}, the naive weekly loop {loop_ref['retrains']} "
            "(it retrains every 7 days as a retrain does and always promotes, trained offline by "
            '<code>make bench BENCH_ARGS="--only model"</code> on the same flights).'
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ctloop replay {html.escape(figures["period"])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}}th{{background:#f3f3f3}}img{{max-width:100%}}</style></head><body>
<h1>ctloop continuous-training replay, {html.escape(figures["period"])}</h1>
<p>Every flight went through the Seldon REST endpoint on a simulated clock; outcomes came back as
feedback once each flight had arrived (a batch at each local midnight, or as often as
<code>[replay] feedback_every_hours</code> says); the monitor ran each simulated midnight and retrained,
gated and promoted on its own. The static champion is the first model, never retrained, scored
on the same flights.</p>
<h2>Summary</h2>{_table([overview])}
<h2>Continuous training, static champion and the naive weekly loop, per quarter</h2>
{_table(three_loops(figures["quarters"], loop_ref))}
<p>{reference_note}</p>
{"".join(_figure(n) for n in images)}
<h2>Offline against online: the gate's AUC and the served AUC, per version</h2>
{_table(figures["offline_online"]["versions"])}
<p>Correlation over the versions (Pearson): {human(figures["offline_online"]["correlation"])}. Offline: the
gate's AUC on the version's own evaluation window; served: the AUC of the flights it answered, on
their delayed labels.</p>
<h2>AUC by model age</h2>{_table(figures["staleness"])}
<p>Age: days from the last day of a model's data to the flight's day. The static champion ages
through the whole replay; the loop's versions are replaced before they grow old.</p>
<h2>Triggers, retrains, gate decisions, promotions</h2>{_table(events)}
<p>{held} more passes found a trigger but started no run (cooldown, waiting for new data, or an
incident already retrained): every decision with its reasons and numbers is in
<a href="{DECISIONS}">{DECISIONS}</a>, copied beside this page.</p>
<h2>Wall time by stage (s)</h2>{_table([figures["stages_s"]])}
</body></html>
"""
    index = folder / "index.html"
    index.write_text(page)
    return index
