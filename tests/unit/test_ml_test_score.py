"""docs/ml-test-score.md cannot rot: every test it cites exists, and its scores add up by the paper's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ml-test-score.md"
SECTIONS = {"D": "Data", "M": "Model", "I": "Infrastructure", "Mon": "Monitoring"}
ROW = re.compile(
    r"^\| (?P<id>(?:Mon|D|M|I)\d) \| (?P<test>[^|]+) \| (?P<covered>[^|]+) \| (?P<score>[^|]+) \| (?P<why>[^|]+) \|$"
)
CODE = re.compile(r"`([^`]+)`")


def rows() -> list[dict[str, str]]:
    return [m.groupdict() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]


def references() -> list[str]:
    """Every backticked file or folder of the repository the page names (``path`` or ``path::test``)."""
    return sorted({c for c in CODE.findall(DOC.read_text()) if "/" in c and " " not in c})


def test_all_28_tests_are_there_seven_per_section():
    ids = [r["id"] for r in rows()]
    expected = [f"{prefix}{i}" for prefix in ("D", "M", "I", "Mon") for i in range(1, 8)]
    assert ids == expected


def test_scores_follow_the_rubric():
    """0, 0.5 or 1; "not covered" scores 0; a positive score cites something of this repository."""
    for row in rows():
        score = float(row["score"])
        assert score in (0.0, 0.5, 1.0), row["id"]
        if row["covered"].strip() == "not covered":
            assert score == 0.0, row["id"]
        else:
            assert CODE.search(row["covered"]), row["id"]


@pytest.mark.parametrize("reference", references())
def test_every_cited_path_and_test_exists(reference):
    """A file or folder that was moved, or a test that was renamed, fails here."""
    path, _, function = reference.partition("::")
    assert (ROOT / path).exists(), f"{path} does not exist"
    if function:
        name = function.split("[")[0]
        assert re.search(rf"^\s*def {re.escape(name)}\(", (ROOT / path).read_text(), re.MULTILINE), reference


def test_the_page_cites_tests_of_every_layer():
    cited = references()
    assert len(cited) > 40
    for layer in ("unit", "features", "pipelines", "serving", "monitoring", "manifests"):
        assert any(c.startswith(f"tests/{layer}/") and "::" in c for c in cited), layer


def test_section_sums_and_the_final_score_are_computed_as_the_paper_says():
    """Each section sums its seven scores; the ML Test Score is the minimum of the four sums."""
    text = DOC.read_text()
    sums = dict.fromkeys(SECTIONS.values(), 0.0)
    for row in rows():
        prefix = re.match(r"[A-Za-z]+", row["id"])
        assert prefix is not None
        sums[SECTIONS[prefix.group()]] += float(row["score"])
    for name, total in sums.items():
        stated = re.search(rf"^\| {name} \| ([0-9.]+) \|$", text, re.MULTILINE)
        assert stated is not None and float(stated.group(1)) == total, name
    final = re.search(r"\*\*ML Test Score: ([0-9.]+)\*\*", text)
    assert final is not None and float(final.group(1)) == min(sums.values())
