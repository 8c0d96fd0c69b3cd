"""The command line: commands are listed, user mistakes end in one readable line and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CTLOOP = str(Path(sys.executable).parent / "ctloop")


def ctloop(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CTLOOP, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def test_help_lists_the_commands():
    """`ctloop --help` names every command a user needs."""
    done = ctloop("--help")
    assert done.returncode == 0
    for command in ("train", "run", "models", "promote", "rollback", "ui", "pipeline", "features"):
        assert command in done.stdout
    assert "materialize" in ctloop("features", "--help").stdout
    assert "compile" in ctloop("pipeline", "--help").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--start", "2013-13-01", "--end", "2013-03-31"], "bad window"),
        (["train", "--start", "2013-03-01", "--end", "2013-01-31"], "is before its start"),
        (["models", "--config", "/nonexistent/config/local.toml"], "settings file not found"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_1(args, message):
    """No traceback: one `error:` line naming the problem and a non-zero exit."""
    done = ctloop(*args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1


def test_models_on_an_empty_registry_says_what_to_do(tmp_path):
    """With no versions yet, `ctloop models` points at `ctloop train`."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.toml").write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    done = ctloop("models", "--config", str(config / "local.toml"))
    assert done.returncode == 0, done.stderr
    assert "ctloop train" in done.stdout


def test_promote_an_unknown_version_is_a_clear_error(tmp_path):
    """Promoting a version that does not exist names it, without a traceback."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.toml").write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    done = ctloop("promote", "42", "--config", str(config / "local.toml"))
    assert done.returncode == 1
    assert "no version 42" in done.stderr and "Traceback" not in done.stderr


def test_an_error_naming_a_settings_section_keeps_its_brackets(tmp_path):
    """Messages are printed as text: ``[serving]`` in an error is not swallowed as console markup."""
    import subprocess
    import sys
    from pathlib import Path

    config = tmp_path / "config" / "bad.toml"
    config.parent.mkdir()
    config.write_text("[serving]\nno_such_field = 1\n")
    ctloop = Path(sys.executable).parent / "ctloop"
    done = subprocess.run([str(ctloop), "models", "--config", str(config)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "[serving] has unknown field(s): no_such_field" in done.stderr
