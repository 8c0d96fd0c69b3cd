"""The offline store's day partitions: the days a run may append, and what a window reads."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ctloop.adapters.offline_store import MANIFEST_FILE, OfflineStore
from ctloop.core import partitions as parts
from tests.conftest import partition_files

D = date.fromisoformat


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("2013-04-02", ["2013-04-02"]),
        ("2013-04-02, 2013-04-03", ["2013-04-02", "2013-04-03"]),
        ("2013-02-27..2013-03-02", ["2013-02-27", "2013-02-28", "2013-03-01", "2013-03-02"]),
    ],
)
def test_days_are_read_as_one_day_a_list_or_a_range(text, days):
    """A day, days separated by commas, or FIRST..LAST inclusive."""
    assert [d.isoformat() for d in parts.parse_days(text)] == days


STORE = [D("2013-04-01"), D("2013-04-02"), D("2013-04-03")]
REFUSED = [
    ("day-format", "2013-04-31", STORE),
    ("day-format", "yesterday", STORE),
    ("days-in-order", "2013-04-05..2013-04-04", STORE),
    ("days-in-order", "2013-04-05,2013-04-04", STORE),
    ("no-duplicate-day", "2013-04-04,2013-04-04", STORE),
    ("not-before-last", "2013-03-31", STORE),
    ("no-gap", "2013-04-05", STORE),
    ("no-gap", "2013-04-04,2013-04-06", STORE),
    ("run-size", "2013-01-01..2014-12-31", []),
    ("run-size", "", []),
]


@pytest.mark.parametrize(("rule", "text", "present"), REFUSED, ids=[f"{r} {t}" for r, t, _ in REFUSED])
def test_each_broken_rule_is_named(rule, text, present):
    """The error names the rule, what broke it, and says nothing was appended."""
    with pytest.raises(parts.PartitionRuleError) as refused:
        parts.plan_append(parts.parse_days(text), present)
    assert refused.value.rule == rule
    assert f"rule {rule!r}" in str(refused.value) and "nothing was appended" in str(refused.value)


def test_reruns_and_new_days_may_share_a_run():
    """Days already in the store are reruns; the rest continue the store without a hole."""
    plan = parts.plan_append(parts.parse_days("2013-04-02..2013-04-05"), STORE)
    assert plan.reruns == (D("2013-04-02"), D("2013-04-03"))
    assert plan.days[-1] == D("2013-04-05")
    assert parts.plan_append([D("2013-06-01")], []).reruns == ()  # an empty store takes any first day


def test_a_window_reads_the_partition_before_its_first_day():
    """Departures of start..end read partitions start-1..end: the rates of `start` close partition start-1."""
    assert parts.window_partitions(D("2013-03-01"), D("2013-03-03")) == [
        D("2013-02-28"),
        D("2013-03-01"),
        D("2013-03-02"),
        D("2013-03-03"),
    ]
    assert parts.format_days(parts.window_partitions(D("2013-01-01"), D("2013-03-31"))) == "2012-12-31..2013-03-31"


def test_the_lineage_hash_changes_with_any_partition_or_the_static_tables():
    """One hash over the partitions read and the static tables: change one, the hash changes."""
    hashes = {D("2013-03-01"): "a" * 64, D("2013-03-02"): "b" * 64}
    base = parts.lineage_sha256(hashes, "s")
    assert parts.lineage_sha256(dict(reversed(hashes.items())), "s") == base  # order of the mapping: no matter
    assert parts.lineage_sha256({**hashes, D("2013-03-02"): "c" * 64}, "s") != base
    assert parts.lineage_sha256(hashes, "t") != base


def test_the_store_checks_the_days_again_at_append_and_writes_nothing_when_refused(tmp_path):
    """The store itself decides: a day that leaves a hole is refused and no file or manifest entry appears."""
    store = OfflineStore(str(tmp_path / "store"))
    plane = tmp_path / "plane.parquet"
    pd.DataFrame({"tailnum": ["N1"]}).to_parquet(plane, index=False)
    first = D("2013-03-01")
    store.append([first], {first: partition_files(tmp_path, first, 1.0)}, {"plane": plane}, {first: {"x": 1}}, "run-1")
    before = sorted(p.relative_to(Path(store.root)) for p in Path(store.root).rglob("*"))
    manifest = (Path(store.root) / MANIFEST_FILE).read_text()
    gap = D("2013-03-03")
    with pytest.raises(parts.PartitionRuleError, match="no-gap"):
        store.append([gap], {gap: partition_files(tmp_path, gap, 3.0)}, {"plane": plane}, {gap: {"x": 1}}, "run-2")
    assert sorted(p.relative_to(Path(store.root)) for p in Path(store.root).rglob("*")) == before
    assert (Path(store.root) / MANIFEST_FILE).read_text() == manifest


def test_a_rerun_replaces_its_day_only(tmp_path):
    """Appending a day again swaps its files and hash; the other day keeps its files and manifest entry."""
    store = OfflineStore(str(tmp_path / "store"))
    plane = tmp_path / "plane.parquet"
    pd.DataFrame({"tailnum": ["N1"]}).to_parquet(plane, index=False)
    d1, d2 = D("2013-03-01"), D("2013-03-02")
    store.append(
        [d1, d2],
        {d1: partition_files(tmp_path, d1, 1.0), d2: partition_files(tmp_path, d2, 2.0)},
        {"plane": plane},
        {d1: {"x": 1}, d2: {"x": 1}},
        "run-1",
    )
    kept = store.manifest()["days"]["2013-03-01"]
    old = store.hashes([d2])[d2]
    plan = store.append([d2], {d2: partition_files(tmp_path, d2, 9.0)}, {"plane": plane}, {d2: {"x": 1}}, "run-2")
    assert plan.reruns == (d2,)
    assert store.days() == [d1, d2]
    assert store.hashes([d2])[d2] != old
    assert store.manifest()["days"]["2013-03-01"] == kept
    assert store.read("carrier_delay")["x"].tolist() == [1.0, 9.0]
