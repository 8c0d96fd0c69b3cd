"""Write the manifests' secret env files (``manifests/base/secrets/*.env``) from environment variables.

The base's secretGenerators read git-ignored ``*.env`` files (only the ``*.env.example``
placeholders are committed). In CD the values come from the GitHub environment's secrets, passed
to the deploy step as ``CTLOOP_*`` variables; this script turns them into those files:

=============================  ===========================================================
variable                       file: keys
=============================  ===========================================================
CTLOOP_POSTGRES_USER           postgres.env: POSTGRES_USER (default ``mlflow``)
CTLOOP_POSTGRES_PASSWORD       postgres.env: POSTGRES_PASSWORD (URL-safe characters only)
CTLOOP_MINIO_ROOT_USER         minio.env: MINIO_ROOT_USER (default ``minio-root``)
CTLOOP_MINIO_ROOT_PASSWORD     minio.env: MINIO_ROOT_PASSWORD (8 characters or more)
CTLOOP_S3_ACCESS_KEY_ID        s3.env: AWS_ACCESS_KEY_ID; rclone.env: RCLONE_CONFIG_S3_ACCESS_KEY_ID
CTLOOP_S3_SECRET_ACCESS_KEY    s3.env: AWS_SECRET_ACCESS_KEY; rclone.env: ..._SECRET_ACCESS_KEY
=============================  ===========================================================

A file that already exists is kept as it is (a developer's own). Nothing is written unless every
value needed is there and well-formed; otherwise one error names each missing or bad variable.

Usage: ``python scripts/secret_envs.py [manifests/base/secrets]``
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SECRETS_DIR = Path("manifests/base/secrets")


@dataclass(frozen=True)
class Value:
    """Where one key's value comes from: a variable (with an optional default) or a constant."""

    variable: str = ""
    default: str | None = None
    constant: str | None = None
    rule: str = ""  # a regular expression the value must match (fully)
    rule_text: str = ""


URL_SAFE = (r"[A-Za-z0-9._~-]+", "letters, digits and - _ . ~ only (it goes into a URL)")
MIN3 = (r"\S{3,}", "3 characters or more, no spaces")
MIN8 = (r"\S{8,}", "8 characters or more, no spaces")


def var(name: str, rule: tuple[str, str], default: str | None = None) -> Value:
    """A value read from the variable ``name``, checked against ``rule`` (regex, description)."""
    return Value(variable=name, default=default, rule=rule[0], rule_text=rule[1])


def const(value: str) -> Value:
    """A fixed value (not a secret)."""
    return Value(constant=value)


FILES: dict[str, dict[str, Value]] = {
    "postgres.env": {
        "POSTGRES_USER": var("CTLOOP_POSTGRES_USER", URL_SAFE, "mlflow"),
        "POSTGRES_PASSWORD": var("CTLOOP_POSTGRES_PASSWORD", URL_SAFE),
    },
    "minio.env": {
        "MINIO_ROOT_USER": var("CTLOOP_MINIO_ROOT_USER", MIN3, "minio-root"),
        "MINIO_ROOT_PASSWORD": var("CTLOOP_MINIO_ROOT_PASSWORD", MIN8),
    },
    "s3.env": {
        "AWS_ACCESS_KEY_ID": var("CTLOOP_S3_ACCESS_KEY_ID", MIN3),
        "AWS_SECRET_ACCESS_KEY": var("CTLOOP_S3_SECRET_ACCESS_KEY", MIN8),
    },
    # Seldon's storage initializer reads the model from MinIO with the same key pair
    "rclone.env": {
        "RCLONE_CONFIG_S3_TYPE": const("s3"),
        "RCLONE_CONFIG_S3_PROVIDER": const("Minio"),
        "RCLONE_CONFIG_S3_ENV_AUTH": const("false"),
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": var("CTLOOP_S3_ACCESS_KEY_ID", MIN3),
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": var("CTLOOP_S3_SECRET_ACCESS_KEY", MIN8),
        "RCLONE_CONFIG_S3_ENDPOINT": const("http://minio:9000"),
    },
}


class SecretsError(ValueError):
    """Variables are missing or malformed (the message names each one)."""


def render(files: Mapping[str, Mapping[str, Value]], environ: Mapping[str, str]) -> dict[str, str]:
    """The text of each env file from ``environ``.

    Raises:
        SecretsError: naming every missing or malformed variable at once.
    """
    problems: dict[str, str] = {}
    texts: dict[str, str] = {}
    for filename, keys in files.items():
        lines = []
        for key, source in keys.items():
            value = source.constant
            if value is None:
                value = environ.get(source.variable) or source.default
                if value is None:
                    problems.setdefault(source.variable, "is not set")
                    continue
                if source.rule and not re.fullmatch(source.rule, value):
                    problems.setdefault(source.variable, f"must be {source.rule_text}")
                    continue
            lines.append(f"{key}={value}")
        texts[filename] = "\n".join(lines) + "\n"
    if problems:
        named = "; ".join(f"{name} {why}" for name, why in sorted(problems.items()))
        raise SecretsError(f"cannot write the secret env files: {named}")
    return texts


def write(directory: Path, environ: Mapping[str, str], files: Mapping[str, Mapping[str, Value]] = FILES) -> list[Path]:
    """Write each missing env file in ``directory`` (mode 0600); return the files written.

    Raises:
        SecretsError: a variable needed for a missing file is missing or malformed (nothing written).
    """
    missing = {name: keys for name, keys in files.items() if not (directory / name).exists()}
    texts = render(missing, environ)
    written = []
    for name, text in texts.items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: write the missing files, print what was written or kept; exit 1 with one error line."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else SECRETS_DIR
    if not directory.is_dir():
        print(f"error: {directory} is not a directory", file=sys.stderr)
        return 1
    try:
        written = write(directory, os.environ)
    except SecretsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kept = sorted(set(FILES) - {p.name for p in written})
    print(f"secret env files written: {[p.name for p in written]}; kept as they were: {kept}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
