"""The promotion gate: a candidate is blessed only if every check passes.

Checks: no NaN metric; absolute floors (which yield to a candidate at least as good as the
champion in AUC and Brier on the same rows, ``floors_yield_to_champion``); not worse than the
champion beyond a tolerance on the same evaluation window; no slice collapsed (absolutely or
against the champion's slice), for every carrier, origin airport and part of the day
(``ctloop.core.evaluate.SLICE_COLUMNS``); ONNX export faithful to the scikit-learn model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ctloop.config import GateSettings
from ctloop.core.evaluate import EvalResult, Scores, slice_kinds

ONNX_TOLERANCE = 1e-5
BLESSED = "blessed"
REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    """The verdict and every reason behind it (passed checks included)."""

    blessed: bool
    reasons: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    """The floors the candidate was below and passed anyway (``floors_yield_to_champion``), also in ``passed``."""

    @property
    def verdict(self) -> str:
        """``blessed`` or ``rejected``."""
        return BLESSED if self.blessed else REJECTED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"verdict": self.verdict, **asdict(self)}


def skill(log_loss: float, brier: float, positive_rate: float) -> tuple[float, float]:
    """Log-loss and Brier skill against always predicting ``positive_rate`` (NaN if undefined)."""
    r = positive_rate
    if not 0 < r < 1:
        return math.nan, math.nan
    ll_ref = -(r * math.log(r) + (1 - r) * math.log(1 - r))
    return 1 - log_loss / ll_ref, 1 - brier / (r * (1 - r))


def _nan(value: float) -> bool:
    return value is None or math.isnan(value)


def _floors(c: Scores, gate: GateSettings) -> list[tuple[bool, str, str]]:
    """The absolute floors as (passed, reason if passed, reason if failed)."""
    ll_skill, brier_skill = skill(c.log_loss, c.brier, c.positive_rate)
    return [
        (c.auc >= gate.min_auc, f"auc {c.auc:.4f} >= floor {gate.min_auc}", f"auc {c.auc:.4f} < floor {gate.min_auc}"),
        (
            ll_skill >= gate.min_log_loss_skill,
            f"log_loss {c.log_loss:.4f}: skill {ll_skill:.3f} >= {gate.min_log_loss_skill}",
            f"log_loss {c.log_loss:.4f}: skill {ll_skill:.3f} < floor {gate.min_log_loss_skill}",
        ),
        (
            brier_skill >= gate.min_brier_skill,
            f"brier {c.brier:.4f}: skill {brier_skill:.3f} >= {gate.min_brier_skill}",
            f"brier {c.brier:.4f}: skill {brier_skill:.3f} < floor {gate.min_brier_skill}",
        ),
    ]


def _collapsed_slices(candidate: EvalResult, champion: EvalResult | None, gate: GateSettings) -> list[str]:
    """A reason for each judged slice that collapsed, absolutely or against the champion's same slice."""
    out: list[str] = []
    for name, s in candidate.slices.items():
        if s.rows < gate.min_slice_rows or not 0 < s.positive_rate < 1:
            continue
        if _nan(s.auc) or s.auc < gate.min_slice_auc:
            out.append(f"slice {name} collapsed: auc {s.auc:.4f} < {gate.min_slice_auc} on {s.rows} rows")
            continue
        base = champion.slices.get(name) if champion is not None else None
        if base is not None and not _nan(base.auc) and s.auc < base.auc - gate.max_slice_auc_drop:
            out.append(
                f"slice {name} collapsed: auc {s.auc:.4f} vs champion {base.auc:.4f} (drop > {gate.max_slice_auc_drop})"
            )
    return out


def decide(
    candidate: EvalResult,
    champion: EvalResult | None,
    gate: GateSettings,
    onnx_max_abs_diff: float = 0.0,
) -> Decision:
    """Apply every check; the candidate is blessed when no check fails."""
    fails: list[str] = []
    passes: list[str] = []
    waived: list[str] = []

    def check(ok: bool, good: str, bad: str) -> None:
        (passes if ok else fails).append(good if ok else bad)

    c = candidate.overall
    for name in ("auc", "log_loss", "brier"):
        if _nan(getattr(c, name)):
            fails.append(f"{name} is NaN")
    if fails:
        return Decision(False, fails, passes)

    ch = champion.overall if champion is not None and not _nan(champion.overall.auc) else None
    beats_champion = ch is not None and not _nan(ch.brier) and c.auc >= ch.auc and c.brier <= ch.brier
    for ok, good, bad in _floors(c, gate):
        if not ok and gate.floors_yield_to_champion and beats_champion:
            waived.append(f"{bad}, waived: at least as good as the champion in auc and brier on the same rows")
            passes.append(waived[-1])
        else:
            check(ok, good, bad)
    check(
        not _nan(onnx_max_abs_diff) and onnx_max_abs_diff <= ONNX_TOLERANCE,
        f"onnx parity {onnx_max_abs_diff:.1e} <= {ONNX_TOLERANCE:.0e}",
        f"onnx export differs from scikit-learn by {onnx_max_abs_diff:.1e} (> {ONNX_TOLERANCE:.0e})",
    )

    if ch is not None:
        check(
            c.auc >= ch.auc - gate.max_auc_drop,
            f"auc {c.auc:.4f} vs champion {ch.auc:.4f} within {gate.max_auc_drop}",
            f"auc {c.auc:.4f} worse than champion {ch.auc:.4f} by more than {gate.max_auc_drop}",
        )
        check(
            c.brier <= ch.brier + gate.max_brier_increase,
            f"brier {c.brier:.4f} vs champion {ch.brier:.4f} within {gate.max_brier_increase}",
            f"brier {c.brier:.4f} worse than champion {ch.brier:.4f} by more than {gate.max_brier_increase}",
        )
    else:
        passes.append("no champion to compare with")

    fails += _collapsed_slices(candidate, champion, gate)
    if not any(r.startswith("slice ") for r in fails):
        kinds = ", ".join(f"{len(names)} {kind}" for kind, names in slice_kinds(candidate.slices).items())
        passes.append(f"no slice collapsed ({len(candidate.slices)} slices{': ' + kinds if kinds else ''})")
    return Decision(not fails, fails, passes, waived)
