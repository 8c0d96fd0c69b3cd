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


def project(tmp_path: Path, extra: str = "") -> Path:
    """A project folder of its own: ``config/local.toml`` with its data under the folder."""
    config = tmp_path / "config" / "local.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[paths]\ndata_dir = "data"\nfeature_repo = "{ROOT / "feature_repo"}"\n{extra}')
    return config


def test_version_is_the_package_metadata_version():
    """`ctloop --version` prints the installed distribution's version, which is pyproject's."""
    import tomllib
    from importlib.metadata import version

    done = ctloop("--version")
    assert done.returncode == 0, done.stderr
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == f"ctloop {version('ctloop')}" == f"ctloop {declared}"


def test_shell_completion_completes_commands():
    """Completion is on: bash's completion request for `ctloop pipeline s` offers submit and schedule."""
    import os

    env = {**os.environ, "_CTLOOP_COMPLETE": "complete_bash", "COMP_WORDS": "ctloop pipeline s", "COMP_CWORD": "2"}
    done = subprocess.run([CTLOOP], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"submit", "schedule"}
    assert "--install-completion" in ctloop("--help").stdout


def test_help_shows_settings_sections_as_text():
    """Help is plain text: `[replay]` and `[pipeline]` in a help line are printed, not eaten as markup."""
    assert "[replay] quick_*" in " ".join(ctloop("replay", "--help").stdout.split())
    assert "[pipeline] local_runner" in " ".join(ctloop("train", "--help").stdout.split())


def test_pipeline_commands_have_their_own_names():
    """`ctloop pipeline submit`, not `run` (`ctloop run` is the replay); its version option is --pipeline-version."""
    listing = ctloop("pipeline", "--help").stdout.split("Commands:")[1]
    assert {line.split()[0] for line in listing.splitlines() if line.startswith("  ")} == {
        "compile",
        "upload",
        "submit",
        "schedule",
    }
    for command in ("upload", "submit", "schedule"):
        text = ctloop("pipeline", command, "--help").stdout
        assert "--pipeline-version" in text and "--version " not in text.replace("--pipeline-version", "")
    assert ctloop("pipeline", "run", "--help").returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "--bogus"], "No such option: --bogus (see `ctloop models --help`)"),
        (["ui", "--port", "abc"], "Invalid value for '--port'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["promote"], "Missing argument 'version'"),
    ],
)
def test_usage_mistakes_are_one_error_line_and_exit_1(args, message):
    """Click's usage block and exit 2 become one `error:` line pointing at --help, and exit 1."""
    done = ctloop(*args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Usage" not in done.stderr


def test_no_command_prints_the_help():
    """`ctloop` alone and a group alone print their help and succeed."""
    for args in ((), ("pipeline",)):
        done = ctloop(*args)
        assert done.returncode == 0 and "Usage: ctloop" in done.stdout and "Commands:" in done.stdout


def test_config_is_found_from_a_subfolder_and_from_the_environment(tmp_path):
    """The default config/local.toml is looked for above the working directory; CTLOOP_CONFIG names one anywhere."""
    import json
    import os

    config = project(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    done = ctloop("models", "--json", cwd=deep)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["versions"] == [] and str(tmp_path / "data") in listing["tracking_uri"]
    elsewhere = tmp_path.parent
    env = {**os.environ, "CTLOOP_CONFIG": str(config)}
    done = subprocess.run(
        [CTLOOP, "models", "--json"], cwd=elsewhere, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and json.loads(done.stdout)["tracking_uri"] == listing["tracking_uri"]


def test_no_config_anywhere_is_one_line_with_a_hint(tmp_path):
    """From a folder with no config/ above it: one `error:` line saying where it looked and what to do."""
    done = ctloop("models", cwd=tmp_path)
    assert done.returncode == 1
    assert "settings file not found: config/local.toml" in done.stderr
    assert "--config" in done.stderr and "CTLOOP_CONFIG" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_report_path_is_printed_whole_when_piped(tmp_path):
    """Piped output is not cut at 80 columns: a long report path comes out on one line, whole."""
    long = "a-report-folder-with-a-name-long-enough-to-pass-eighty-columns-on-its-own/" * 2
    config = project(tmp_path, f'[replay]\nreport_dir = "{long}"\n')
    page = tmp_path / long / "index.html"
    missing = ctloop("report", "--no-serve", "--config", str(config))
    assert missing.returncode == 1 and "ctloop replay --quick" in missing.stderr
    page.parent.mkdir(parents=True)
    page.write_text("<h1>report</h1>")
    done = ctloop("report", "--no-serve", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"report: {page}"]


def test_report_is_served_on_loopback_and_a_busy_port_is_one_line(tmp_path):
    """`ctloop report` serves the report folder over HTTP on 127.0.0.1; a taken port: one error line, exit 1."""
    import signal
    import socket
    import urllib.request

    from ctloop.adapters import services

    config = project(tmp_path, f'[replay]\nreport_dir = "{tmp_path / "report"}"\n')
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<h1>the replay</h1>")
    port = services.free_port()
    server = subprocess.Popen(
        [CTLOOP, "report", "--port", str(port), "--config", str(config)], stdout=subprocess.PIPE, text=True
    )
    try:
        services.wait_until(lambda: services.port_open(port), "ctloop report", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as answer:
            assert answer.status == 200 and b"the replay" in answer.read()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = ctloop("report", "--port", str(taken.getsockname()[1]), "--config", str(config))
        assert busy.returncode == 1 and "pass --port" in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=10)
    assert server.returncode == 0 and f"http://127.0.0.1:{port}/" in out
