"""``ctloop``: the command line. Errors a user can act on end as one line and a non-zero exit.

One module per command group (``training``, ``models``, ``serving``, ``pipeline``, ``features``);
``shell`` holds what they share. Importing the groups registers their commands on ``app``.
"""

from __future__ import annotations

# importing a group registers its commands; the order here is their order in `ctloop --help`
# isort: off
from ctloop.cli import training  # noqa: F401
from ctloop.cli import models  # noqa: F401
from ctloop.cli import serving  # noqa: F401
from ctloop.cli import pipeline  # noqa: F401
from ctloop.cli import features  # noqa: F401

# isort: on
import sys

from ctloop.cli.shell import app, run_cli

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    sys.exit(run_cli())
