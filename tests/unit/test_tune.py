"""The tuning step's search: the whole grid, chosen on validation days, blind to the evaluation window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ctloop.config import ConfigError, Settings, TuneSettings
from ctloop.core import train as core
from ctloop.core import tune
from ctloop.core.evaluate import LABEL, score
from tests.unit.test_train import END, PARAMS, ts  # noqa: F401 - the synthetic training set fixture

SEARCH = TuneSettings(learning_rate=(0.03, 0.3), max_leaf_nodes=(3, 15), validation_days=10, max_rows=1500)


@pytest.fixture(scope="module")
def searched(ts):  # noqa: F811 - the imported fixture
    return tune.search(ts, END, PARAMS, SEARCH)


def test_every_combination_is_tried_and_the_lowest_validation_log_loss_wins(searched):
    assert [t.params for t in searched.trials] == tune.grid(SEARCH)
    best = min(searched.trials, key=lambda t: t.log_loss)
    assert searched.chosen == best.params
    assert searched.params == replace(PARAMS, **best.params)  # the rest is [train]'s
    assert len({t.log_loss for t in searched.trials}) == len(searched.trials)  # the grid's points differ


def test_the_validation_days_are_the_last_of_the_fit_split(searched):
    # END 2013-02-09, eval_days 8: evaluation Feb 2..9; validation the 10 days before it
    assert searched.validation == "2013-01-23..2013-02-01"
    assert searched.fit_rows == SEARCH.max_rows  # a sample of the earlier fit days


def test_a_trial_scores_what_a_fit_on_the_search_days_scores_on_the_validation_days(ts, searched):  # noqa: F811
    day = ts.frame["sched_dep_local"].str.slice(0, 10)
    early = ts.frame.loc[day < "2013-01-23"].sample(n=SEARCH.max_rows, random_state=PARAMS.seed)
    late = ts.frame.loc[(day >= "2013-01-23") & (day <= "2013-02-01")]
    trial = searched.trials[-1]
    model = core.fit_model(early, ts.feature_names, replace(PARAMS, **trial.params))
    expected = score(late[LABEL].to_numpy(), core.predict(model, late, ts.feature_names))
    assert trial.log_loss == pytest.approx(expected.log_loss, abs=1e-12)
    assert trial.auc == pytest.approx(expected.auc, abs=1e-12)


def test_the_evaluation_window_cannot_change_the_choice(ts, searched):  # noqa: F811
    """Labels and features of the evaluation days scrambled: the same trials, the same choice."""
    frame = ts.frame.copy()
    held = frame["sched_dep_local"].str.slice(0, 10) >= "2013-02-02"
    rng = np.random.default_rng(0)
    frame.loc[held, LABEL] = rng.integers(0, 2, int(held.sum())).astype("int8")
    frame.loc[held, "carrier_rate"] = rng.uniform(0, 1, int(held.sum()))
    again = tune.search(core.TrainingSet(frame, ts.feature_names), END, PARAMS, SEARCH)
    assert again.to_dict() == searched.to_dict()


def test_the_search_round_trips_through_the_steps_json(searched):
    assert tune.Tuning.from_dict(searched.to_dict()) == searched


def test_trial_metrics_have_names_mlflow_accepts(searched):
    metrics = tune.trial_metrics(searched)
    assert len(metrics) == 3 * len(searched.trials)
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.") for name in metrics)


def test_disabled_or_too_short_the_configured_values_are_used(ts):  # noqa: F811
    off = tune.search(ts, END, PARAMS, replace(SEARCH, enabled=False))
    assert (off.params, off.trials, off.skipped) == (PARAMS, [], "[tune] enabled = false")
    short = tune.search(ts, END, PARAMS, replace(SEARCH, validation_days=40))  # no search fit day left
    assert short.params == PARAMS
    assert short.trials == []
    assert "search fit days hold 0 flight(s)" in short.skipped


@pytest.mark.parametrize(
    ("tune_section", "message"),
    [
        ({"learning_rate": [0.1, "fast"]}, "[tune] learning_rate must be a list of numbers"),
        ({"max_leaf_nodes": [15, 2.5]}, "[tune] max_leaf_nodes must be a list of whole numbers"),
        ({"learning_rate": []}, "[tune] learning_rate must list values in (0, 1]"),
        ({"depth": [3]}, "[tune] has unknown field(s): depth"),
    ],
)
def test_a_bad_tune_section_is_one_error_naming_the_key(tune_section, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_mapping({"tune": tune_section})
    assert str(refused.value).startswith(message)


def test_the_settings_carry_the_search_through_json():
    settings = Settings.from_mapping({"tune": {"learning_rate": [0.2], "max_leaf_nodes": [7, 9]}})
    back = Settings.from_json(settings.to_json())
    assert back.tune == settings.tune == TuneSettings(learning_rate=(0.2,), max_leaf_nodes=(7, 9))
