import re
from pathlib import Path

import pytest

from ctloop.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_local_config_loads_with_root_above_config_dir():
    """The shipped config parses and resolves paths against the project root."""
    settings = Settings.load(ROOT / "config" / "local.toml")
    assert settings.data_dir == ROOT / "data"
    assert settings.tracking_uri == f"sqlite:///{ROOT / 'data' / 'mlflow' / 'mlflow.db'}"
    assert settings.features.feature_service == "flight_delay_v1"


def test_settings_round_trip_through_json():
    """Components receive settings as JSON and get back an equal object."""
    settings = Settings.load(ROOT / "config" / "local.toml")
    assert Settings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nope]\nx = 1\n", "unknown settings section [nope]"),
        ("[train]\nseeds = 1\n", "[train] has unknown field(s): seeds"),
        ("[train\n", "local.toml"),
        ('[gate]\nmin_auc = "high"\n', "[gate] min_auc must be a number, got 'high'"),
        ("[train]\nmax_iter = 2.5\n", "[train] max_iter must be a whole number, got 2.5"),
        ("[serving]\nworkers = true\n", "[serving] workers must be a whole number, got True"),
        ("[monitor]\ndrift_ignore = [1]\n", "[monitor] drift_ignore must be a list of texts, got [1]"),
        ('[deploy]\ntarget = "k8s"\n', "[deploy] target must be 'local' or 'seldon', got 'k8s'"),
        ('[pipeline]\nlocal_runner = "pods"\n', "[pipeline] local_runner must be 'subprocess' or 'container'"),
        ("[deploy]\ncanary_percent = 150\n", "[deploy] canary_percent must be in 0..100, got 150"),
        ("[replay]\nfeedback_every_hours = 5\n", "[replay] feedback_every_hours must divide 24"),
        ("[replay]\nfeedback_every_hours = 0\n", "[replay] feedback_every_hours must divide 24"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path, text, message):
    """A typo in a settings file is a ConfigError naming the section or field."""
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "local.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.load(path)


def test_missing_settings_file():
    with pytest.raises(ConfigError, match="not found"):
        Settings.load("/nonexistent/config/x.toml")


def test_a_pipeline_parameter_is_checked_like_a_file():
    """Settings arriving as a pipeline parameter get the same type checks as a settings file."""
    text = Settings().to_json().replace('"min_auc": 0.65', '"min_auc": "high"')
    with pytest.raises(ConfigError, match=re.escape("[gate] min_auc must be a number, got 'high'")):
        Settings.from_json(text)
