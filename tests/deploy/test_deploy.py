"""The deployment files in deploy/ (issue #18 part 3): nginx's config passes ``nginx -t`` and, served
by Debian's nginx on loopback in front of two real ``streamlit run`` replicas (images in a bucket
on the test S3 server), keeps each browser on one replica by its cookie, spreads browsers over
both, upgrades Streamlit's websocket, answers /healthz, redirects plain HTTP, writes one JSON
object per log line, and moves a browser to the other replica when its own goes down.
``deploy/healthcheck.py`` says ready only when Streamlit, the database and the image store answer.

The compose file is not run here (this machine has no container runtime)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, S3Images, system_tool
from tests.support.nginx_proxy import (
    DEPLOY,
    https_get,
    nginx_prefix,
    serve_nginx,
    websocket_handshake,
)
from tests.support.pg_server import free_port


def test_the_shipped_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = system_tool("nginx", "nginx")
    proxy = nginx_prefix(tmp_path, [free_port(), free_port()])
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(proxy.conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr
    broken = proxy.conf.parent / "conf.d" / "candor.conf"
    broken.write_text(broken.read_text().replace("hash $candor_route", "hash $candor_route;;"))
    (proxy.conf.parent / "conf.d" / "upstream.conf").write_text(
        (proxy.conf.parent / "conf.d" / "upstream.conf")
        .read_text()
        .replace("consistent;", "consistent")
    )
    assert (
        subprocess.run(
            [nginx, "-t", "-p", str(tmp_path), "-c", str(proxy.conf)],
            capture_output=True,
            timeout=30,
        ).returncode
        != 0
    )


def test_the_compose_upstream_is_the_systemd_one_with_service_names() -> None:
    compose = (DEPLOY / "nginx" / "upstream-compose.conf").read_text()
    systemd = (DEPLOY / "nginx" / "upstream-systemd.conf").read_text()

    def body(text: str) -> list[str]:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        return [re.sub(r"server \S+:\d+", "server ADDR", ln) for ln in lines]

    assert body(compose) == body(systemd)
    assert "server app1:8501" in compose and "server app2:8501" in compose
    text = (DEPLOY / "compose.yaml").read_text()
    for needed in (
        "app1:",
        "app2:",
        "postgres:",
        "minio:",
        "proxy:",
        "CANDOR_IMAGE_STORE: s3://",
        "upstream-compose.conf",
        "init-db",
        "healthcheck.py",
    ):
        assert needed in text


@pytest.fixture
def replica_env(s3_images: S3Images, tmp_path: Path) -> dict[str, str]:
    """One migrated database and one bucket, the environment both replicas share."""
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env.update(
        CANDOR_DATA_DIR=str(data),
        CANDOR_IMAGE_STORE=s3_images.url,
        CANDOR_AUDIT_ANCHOR=str(tmp_path / "audit.anchor"),
        CANDOR_AUDIT_KEY_FILE=os.environ["CANDOR_AUDIT_KEY_FILE"],
        PYTHONPATH=str(PROJECT_ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "init-db"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return env


def test_healthcheck_is_ready_only_when_database_and_store_answer(
    replica_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.e2e.helpers import serve_app

    script = [sys.executable, str(DEPLOY / "healthcheck.py")]
    with serve_app(replica_env, tmp_path / "replica.log") as url:
        for args, env, expect in (
            (["--url", url], replica_env, (0, "alive")),
            (["--url", url, "--deep"], replica_env, (0, "ready")),
            (
                ["--url", url, "--deep"],
                {**replica_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
                (1, "not ready: image store"),
            ),
            (
                ["--url", url, "--deep"],
                {**replica_env, "CANDOR_IMAGE_STORE": "s3://no-such-candor-bucket/x"},
                (1, "does not exist"),
            ),
            (
                ["--url", url, "--deep"],
                {**replica_env, "CANDOR_DATA_DIR": str(tmp_path / "empty")},
                (1, "not ready: database"),
            ),
            (["--url", f"http://127.0.0.1:{free_port()}"], replica_env, (1, "does not answer")),
        ):
            done = subprocess.run(
                [*script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == expect[0], (args, done.stdout, done.stderr)
            assert expect[1] in done.stdout + done.stderr
            assert "Traceback" not in done.stderr


def test_two_replicas_behind_the_shipped_proxy(replica_env: dict[str, str], tmp_path: Path) -> None:
    from tests.e2e import helpers as e2e

    system_tool("nginx", "nginx")
    with ExitStack() as stack:
        urls = [
            stack.enter_context(e2e.serve_app(replica_env, tmp_path / f"replica-{i}.log"))
            for i in (1, 2)
        ]
        ports = [int(u.rsplit(":", 1)[1]) for u in urls]
        proxy = stack.enter_context(serve_nginx(nginx_prefix(tmp_path / "nginx", ports)))
        base = f"https://127.0.0.1:{proxy.https}"

        status, _, body = https_get(f"{base}/healthz")
        assert (status, body.strip()) == (200, b"ok")
        status, headers, _ = https_get(f"http://127.0.0.1:{proxy.http}/patients?x=1")
        assert status == 301 and headers["Location"] == "https://127.0.0.1/patients?x=1"

        status, headers, page = https_get(f"{base}/")
        assert status == 200 and b"<html" in page.lower()
        cookie = re.search(r"candor_route=([0-9a-f]{32});", headers["Set-Cookie"])
        assert cookie is not None and "Secure" in headers["Set-Cookie"]
        assert "HttpOnly" in headers["Set-Cookie"]
        route = cookie.group(1)

        for _ in range(8):  # one browser: always the same replica
            assert https_get(f"{base}/_stcore/health", route)[0] == 200
        assert websocket_handshake(proxy.https, route) == "HTTP/1.1 101 Switching Protocols"
        time.sleep(0.5)  # the log line of the closed websocket
        mine = [ln for ln in proxy.log_lines() if ln["route"] == route]
        assert len(mine) >= 10 and len({ln["upstream"] for ln in mine}) == 1
        assert any(ln["path"] == "/_stcore/stream" and ln["status"] == 101 for ln in mine)
        home = mine[0]["upstream"]

        for _ in range(24):  # many browsers: both replicas get some
            https_get(f"{base}/_stcore/health", uuid.uuid4().hex)
        assert {ln["upstream"] for ln in proxy.log_lines()} == {f"127.0.0.1:{p}" for p in ports}

        # the browser's replica goes down: it is served by the other one
        down = ports.index(int(str(home).rsplit(":", 1)[1]))
        stack_urls = urls[down]
        _stop_replica(stack_urls)
        before = len(proxy.log_lines())
        for _ in range(4):
            assert https_get(f"{base}/_stcore/health", route)[0] == 200
        moved = [ln for ln in proxy.log_lines()[before:] if ln["route"] == route]
        assert moved and moved[-1]["upstream"] == f"127.0.0.1:{ports[1 - down]}"
        assert https_get(f"{base}/healthz")[0] == 200


def _stop_replica(url: str) -> None:
    """Stop the streamlit process listening at ``url`` (started by this test's serve_app)."""
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    pids = set(re.findall(r"pid=(\d+)", out.stdout))
    assert pids, out.stdout
    for pid in pids:
        os.kill(int(pid), 15)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
            time.sleep(0.2)
        except OSError:
            return
    raise AssertionError(f"the replica on {port} did not stop")
