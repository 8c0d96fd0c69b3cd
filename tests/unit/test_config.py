import re
from pathlib import Path

import pytest

from ctloop.config import ConfigError, GateSettings, Settings, TrainParams

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
    assert TrainParams.from_json(settings.train.to_json()) == settings.train
    assert GateSettings.from_json(settings.gate.to_json()) == settings.gate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nope]\nx = 1\n", "unknown settings section [nope]"),
        ("[train]\nseeds = 1\n", "[train] has unknown field(s): seeds"),
        ("[train\n", "local.toml"),
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
