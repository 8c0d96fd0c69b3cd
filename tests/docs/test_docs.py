"""The README and docs/ cannot go stale.

Their figures are generated from bench/results (scripts/docs_blocks.py); they carry no narration of
how the project was made; every link and file they name exists; the README's command table is the
command line's; the README stays short.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer.main

from ctloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 200


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


blocks = load_script("docs_blocks")


def pages() -> list[Path]:
    """Every page a user reads: README.md, docs/, the manifests' READMEs."""
    return [*blocks.doc_files(ROOT), *sorted((ROOT / "manifests").rglob("*.md"))]


def own_pages() -> list[Path]:
    """The pages whose file references are this repository's (manifests/schemas/ cites upstream paths)."""
    return [*blocks.doc_files(ROOT), ROOT / "manifests" / "README.md"]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def without_generated(text: str) -> str:
    """``text`` without its generated blocks (their content is the script's)."""
    return blocks.BLOCK.sub("", text)


def prose(text: str) -> str:
    """``text`` without generated blocks and fenced code."""
    return re.sub(r"^```.*?^```", "", without_generated(text), flags=re.MULTILINE | re.DOTALL)


def test_generated_blocks_equal_what_the_results_and_settings_give():
    """A table that differs from bench/results/*.json or the settings' defaults fails: run `make docs`."""
    assert blocks.stale(ROOT) == [], "generated blocks differ: run `make docs`"


def test_a_new_result_makes_the_blocks_stale(tmp_path):
    """The check above can fail: a changed result file changes the blocks that show it."""
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results)
    replay = json.loads((results / "replay.json").read_text())
    replay["wall_s"] += 1.0
    replay["quarters"][0]["ct_auc"] = 0.5
    (results / "replay.json").write_text(json.dumps(replay))
    stale = blocks.stale(ROOT, blocks.Results(results))
    assert "README.md: bench:replay" in stale
    serving = json.loads((results / "serving.json").read_text())
    serving["figures"][0]["value"] = 1.0
    (results / "serving.json").write_text(json.dumps(serving))
    assert "docs/benchmarks.md: bench:serving" in blocks.stale(ROOT, blocks.Results(results))


def test_every_block_is_published_and_every_name_is_known():
    """Each renderer has a block somewhere (no result goes unpublished); an unknown block name fails."""
    used = {name for path in blocks.doc_files(ROOT) for name, _ in blocks.blocks(path.read_text())}
    assert used == set(blocks.RENDERERS)
    with pytest.raises(blocks.BlockError, match="unknown block bench:nope"):
        blocks.render("<!-- bench:nope -->\n<!-- /bench -->", blocks.Results(), "x.md")


def test_a_settings_field_without_a_meaning_fails_the_generator():
    """A new `[monitor]`, `[gate]` or `[train]` key must be described before the docs render."""
    from ctloop.config import GateSettings

    meanings = dict(blocks.GATE)
    meanings.pop("min_auc")
    with pytest.raises(blocks.BlockError, match="min_auc"):
        blocks.settings_table(GateSettings(), "gate", meanings)


# Narration of how the project was made, and files a user does not have.
NARRATION = [
    r"\bissues?\b",
    r"\b(this|that|the previous|the next|an earlier|a later|another|last|one) session\b",
    r"\bsessions\b",
    r"\bthis machine\b",
    r"\bwork in progress\b",
    r"\b(not yet|never) (re-?)?measured\b",
    r"\bas of (this|the time of) writing\b",
    r"\b(yesterday|last week)\b",
    r"\bNOTES\.md\b",
    r"\bDESIGN\.md\b",
    r"\bSTYLE\.md\b",
    r"\.\./shared\b",
    r"(/home/\w|/Users/\w|/root/)",  # a home folder: a path of someone's machine
]


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_no_narration_and_no_private_files(page):
    """No talk of sessions, issues or "this machine", no internal notes, no home folders."""
    text = page.read_text()
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for pattern in NARRATION
        for m in re.finditer(pattern, text, re.IGNORECASE)
    ]
    assert not found, f"{page_id(page)}: {found}"


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("as promised in a later issue", True),
        ("measured on this machine before tuning", True),
        ("see NOTES.md", True),
        ("the ONNX session is rebuilt; a persistent HTTP session", False),
        ("the machine the pipeline compiled on", False),
    ],
)
def test_the_narration_patterns_catch_what_they_should(line, bad):
    assert any(re.search(p, line, re.IGNORECASE) for p in NARRATION) is bad


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_relative_link_and_anchor_exists(page):
    missing = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            missing.append(target)
    assert not missing, f"{page_id(page)}: {missing}"


TRACKED_TOP = {
    ".github", "bench", "config", "docs", "feature_repo", "images", "manifests", "mk", "reliability",
    "requirements", "scripts", "serving", "src", "tests",
}  # fmt: skip
TOP_FILES = {"README.md", "CHANGELOG.md", "LICENSE", "Makefile", "pyproject.toml", ".python-version"}
CODE = re.compile(r"`([^`\s]+)`")


def file_references(text: str) -> list[str]:
    """Backticked paths into the repository (``path``, ``path::test``); untracked folders like data/ are not."""
    refs = []
    for token in CODE.findall(text):
        head = token.split("/", 1)[0]
        if ("/" in token and head in TRACKED_TOP) or token in TOP_FILES:
            refs.append(token)
    return refs


def resolves(reference: str) -> bool:
    path, _, function = reference.partition("::")
    fixed = re.split(r"[<*{]", path, maxsplit=1)[0]  # a pattern: the folder it names must exist
    if fixed != path:
        return (ROOT / fixed.rsplit("/", 1)[0]).is_dir()
    if not (ROOT / path).exists():
        return False
    if function:
        name = function.split("[")[0]
        return bool(re.search(rf"^\s*def {re.escape(name)}\(", (ROOT / path).read_text(), re.MULTILINE))
    return True


@pytest.mark.parametrize("page", own_pages(), ids=page_id)
def test_every_file_the_page_names_exists(page):
    """A moved file or a renamed test fails here, in prose and in code blocks alike."""
    missing = [ref for ref in file_references(without_generated(page.read_text())) if not resolves(ref)]
    assert not missing, f"{page_id(page)}: {missing}"


def test_file_references_are_found_and_checked():
    text = "`src/ctloop/config.py`, `data/replay/`, `config/*.toml`, `tests/unit/test_gate.py::nope`, `Makefile`"
    refs = file_references(text)
    assert refs == ["src/ctloop/config.py", "config/*.toml", "tests/unit/test_gate.py::nope", "Makefile"]
    assert [resolves(r) for r in refs] == [True, True, False, True]


def command_paths() -> set[str]:
    """Every command of the `ctloop` CLI, as typed: ``train``, ``pipeline compile``, ..."""

    def walk(command: Any, prefix: str) -> set[str]:
        if hasattr(command, "commands"):  # a group (typer carries its own click)
            return {p for name, sub in command.commands.items() for p in walk(sub, f"{prefix} {name}".strip())}
        return {prefix}

    return walk(typer.main.get_command(app), "")


def readme_command_rows() -> set[str]:
    """The commands of the README's command table, as written in its first column."""
    rows = set()
    for line in README.read_text().splitlines():
        m = re.match(r"^\| `ctloop ([a-z][a-z -]*?)(?: [A-Z\[-].*)?`", line)
        if m:
            rows.add(m.group(1))
    return rows


def test_the_command_table_lists_every_command_and_nothing_else():
    commands = command_paths()
    assert {"run", "report", "features load-online", "pipeline submit"} <= commands
    assert readme_command_rows() == commands


def test_the_readme_fits_on_a_few_screens():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail into docs/"


# a measured quantity: a decimal with a unit of time, throughput or memory, or an AUC/Brier score
FIGURE = re.compile(
    r"\b\d[\d,]*\.\d+ ?(ms|s|µs|min|req/s|rows/s|MiB|MB|GB)\b|\b(AUC|Brier)\b[^.\n|]{0,20}\b0\.\d{3,}",
    re.IGNORECASE,
)


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_no_measured_figure_is_typed_by_hand(page):
    """Measured figures live in generated blocks; prose and code blocks outside them carry none."""
    found = [m.group(0) for m in FIGURE.finditer(without_generated(page.read_text()))]
    assert not found, f"{page_id(page)}: {found}: put figures in a generated block (scripts/docs_blocks.py)"


@pytest.mark.parametrize(
    ("line", "bad"),
    [("took 433.3 s", True), ("p99 38.65 ms", True), ("AUC 0.6845", True), ("swaps within 200 ms", False)],
)
def test_the_figure_pattern_catches_measurements(line, bad):
    assert bool(FIGURE.search(line)) is bad
