"""``make bench BENCH_ARGS="--only replay"``: the full continuous-training replay, timed by stage.

The whole of ``ctloop replay`` (first champion, serving stack, Apr–Dec hour by hour with
the day's outcomes fed back and a monitor pass at each midnight, the feature pipeline every
``[replay] features_every_days`` in the background and before each retrain, every retrain
through kfp.local, the static champion's scores, the report)
against the goal of 240 s; each monitoring pass that started no retrain
against 1 s; the loop's AUC and Brier per quarter against the static champion's; the gate's
decisions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ctloop.adapters import services
from ctloop.app import replay, report
from ctloop.config import Settings
from ctloop.pipelines.local import LocalFeatures, LocalRetrainer

GOAL_S = 240.0
PASS_GOAL_S = 1.0
NAIVE_AUC_MARGIN = 0.005
ROOT = Path(__file__).resolve().parents[1]


def run(base: Settings, work: Path) -> dict[str, Any]:
    """The full replay with free loopback ports and folders under ``work``; its summary."""
    settings = services.own_ports(base).replace(
        replay=replace(base.replay, data_dir=str(work / "replay"), report_dir=str(work / "report")),
    )
    return replay.run(settings, LocalRetrainer(git_sha="bench"), LocalFeatures(git_sha="bench"), quick=False).summary


def rows(summary: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(figure, value, baseline, ratio)."""
    passes = summary["monitor_pass_s"]
    month = passes["four_weeks"]
    out = [
        (f"full replay Apr-Dec wall s vs goal {GOAL_S:.0f} s", summary["wall_s"], GOAL_S, summary["wall_s"] / GOAL_S),
        (
            f"monitor pass over 4 weeks ({month['flights']:,.0f} flights) s vs 1 s",
            month["seconds"],
            PASS_GOAL_S,
            month["seconds"] / PASS_GOAL_S,
        ),
        (
            f"slowest daily pass, 7-day windows (up to {passes['window_flights_max']:,}) s vs 1 s",
            passes["max"],
            PASS_GOAL_S,
            passes["max"] / PASS_GOAL_S,
        ),
    ]
    for q in summary["quarters"]:
        out.append(
            (
                f"{q['quarter']} AUC: continuous training vs static champion",
                q["ct_auc"],
                q["static_auc"],
                q["ct_auc"] / q["static_auc"],
            )
        )
        out.append(
            (
                f"{q['quarter']} Brier: continuous training vs static champion",
                q["ct_brier"],
                q["static_brier"],
                q["ct_brier"] / q["static_brier"],
            )
        )
    out += against_naive(summary)
    return out


def against_naive(summary: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """CT against the naive weekly loop of ``bench/results/model.json``: AUC within 0.005, a third of its retrains."""
    loop = report.reference_loop(ROOT, summary["period"])
    if loop is None:
        return []
    ct, naive = summary["overall"]["ct_auc"], loop["overall"]["naive_auc"]
    third = loop["retrains"] / 3
    return [
        (
            f"{summary['period']} AUC: continuous training vs naive weekly (goal: >= naive - {NAIVE_AUC_MARGIN})",
            ct,
            naive,
            ct / naive,
        ),
        (
            "retrains: continuous training vs a third of the naive weekly loop's",
            summary["retrains"],
            third,
            summary["retrains"] / third,
        ),
    ]


def stages(summary: dict[str, Any]) -> str:
    """The wall time split by stage, one line each."""
    total = summary["wall_s"]
    lines = [f"  {name:32} {s:8.1f} s  {s / total:6.1%}" for name, s in summary["stages_s"].items()]
    background = summary.get("feature_pipeline_background_s")
    if background is not None:
        lines.append(f"  (feature runs in the background, beside these: {background:.1f} s)")
    return "\n".join(lines)
