"""moto's S3 server on loopback, standing in for a cluster's MinIO in tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3

from ctloop.adapters import services

BUCKET = "ctloop-feast"
"""The offline store's bucket, created on every server started here."""
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ctloop-test", "AWS_SECRET_ACCESS_KEY": "ctloop-test", "AWS_REGION": "us-east-1"}


def s3_client(url: str) -> object:
    """A boto3 S3 client for the test server, with the test credentials."""
    keys = {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    return boto3.client("s3", endpoint_url=url, region_name=CREDENTIALS["AWS_REGION"], **keys)


@contextlib.contextmanager
def moto_s3(log: Path) -> Iterator[str]:
    """Moto's S3 server on a free loopback port with the bucket :data:`BUCKET`; yields its URL, stops it after."""
    port = services.free_port()
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=sink,
        )
    try:
        services.wait_until(lambda: services.port_open(port), "moto S3 server", 20.0)
        url = f"http://127.0.0.1:{port}"
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
