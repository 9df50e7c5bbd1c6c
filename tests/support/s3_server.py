"""A throw-away S3 API server on loopback: moto's standalone server (``python -m moto.server``) in
its own process, spoken to over real HTTP by the same client the app uses (obstore). Not a mock of
the client: the requests, conditional PUTs, listings and errors are the server's.

Plain functions, no pytest: ``tests/conftest.py`` wraps :func:`start_s3_server` in a fixture, and a
benchmark or a developer can use it directly::

    endpoint, stop = start_s3_server()
    make_bucket(endpoint, "candor-images")
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from tests.support.pg_server import free_port

ACCESS_KEY, SECRET_KEY, REGION = "candor-test", "candor-test-secret", "us-east-1"


def start_s3_server(timeout_s: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Start moto's S3 server on 127.0.0.1 at a free port; return (endpoint URL, stop).
    RuntimeError when moto[server] is not installed or the server does not answer in time."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "moto[server] is not installed (requirements.txt; make install)"
        ) from exc
    port = free_port()
    # The server logs a line per request: to a file, never a pipe nobody reads (a full pipe
    # would block the server after some thousand requests).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-500:]

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            err = tail()
            stop()
            raise RuntimeError(f"moto's S3 server exited with {proc.returncode}: {err}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1) as resp:
                resp.read()
            break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                stop()
                raise RuntimeError(
                    f"moto's S3 server did not answer on {endpoint} in {timeout_s:.0f} s"
                ) from None
            time.sleep(0.1)
    return endpoint, stop


def client(endpoint: str):  # type: ignore[no-untyped-def]
    """An independent S3 client (boto3) for the tests' own look at the bucket."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def make_bucket(endpoint: str, name: str) -> None:
    client(endpoint).create_bucket(Bucket=name)


def object_keys(endpoint: str, bucket: str) -> list[str]:
    """Every key in ``bucket`` (all pages)."""
    keys: list[str] = []
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    for page in pages:
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)
