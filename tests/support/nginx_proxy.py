"""A private nginx on loopback serving the shipped deploy/nginx config (only the listen ports, the
upstream addresses and the file paths changed), and small HTTPS helpers to talk to it. Used by
tests/test_deploy.py and the two-replica browser test."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

from tests.conftest import PROJECT_ROOT, system_tool
from tests.support.pg_server import free_port

DEPLOY = PROJECT_ROOT / "deploy"


def self_signed(dest: Path) -> tuple[Path, Path]:
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crt, pem = dest / "candor.crt", dest / "candor.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


class Proxy:
    def __init__(self, root: Path, https: int, http: int) -> None:
        self.root, self.https, self.http = root, https, http
        self.conf = root / "nginx.conf"
        self.log = root / "candor.access.log"

    def log_lines(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def nginx_prefix(root: Path, replicas: list[int]) -> Proxy:
    """The shipped candor.conf and upstream-systemd.conf, with only the addresses, the ports and
    the file paths changed for a private nginx on loopback."""
    proxy = Proxy(root, free_port(), free_port())
    confd = root / "conf.d"
    confd.mkdir(parents=True)
    crt, key = self_signed(root)
    site = (DEPLOY / "nginx" / "candor.conf").read_text()
    site = re.sub(r"^\s*listen \[::\]:\d+.*\n", "", site, flags=re.M)
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{proxy.https} ssl")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{proxy.http};")
    site = site.replace("/etc/nginx/certs/candor.crt", str(crt))
    site = site.replace("/etc/nginx/certs/candor.key", str(key))
    site = site.replace("/var/log/nginx/candor.access.log", str(proxy.log))
    (confd / "candor.conf").write_text(site)
    upstream = (DEPLOY / "nginx" / "upstream-systemd.conf").read_text()
    for shipped, port in zip(("127.0.0.1:8501", "127.0.0.1:8502"), replicas, strict=True):
        upstream = upstream.replace(shipped, f"127.0.0.1:{port}")
    (confd / "upstream.conf").write_text(upstream)
    temp = root / "temp"
    temp.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    proxy.conf.write_text(
        f"{user}worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {root}/other.access.log;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {confd}/upstream.conf;\n  include {confd}/candor.conf;\n}}\n"
    )
    return proxy


@contextmanager
def serve_nginx(proxy: Proxy) -> Iterator[Proxy]:
    nginx = system_tool("nginx", "nginx")
    server = subprocess.Popen(
        [nginx, "-p", str(proxy.root), "-c", str(proxy.conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", proxy.https), timeout=1).close()
                break
            except OSError as exc:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: " + (proxy.root / "error.log").read_text()[-2000:]
                    ) from exc
                time.sleep(0.1)
        yield proxy
    finally:
        server.terminate()
        server.wait(10)
        if server.stderr is not None:
            server.stderr.close()


TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def https_get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, headers={"Cookie": f"candor_route={cookie}"} if cookie else {}
    )
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=TLS), NoRedirect())
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def websocket_handshake(port: int, cookie: str) -> str:
    """The status line nginx returns for a websocket upgrade of /_stcore/stream."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    with TLS.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(
            (
                "GET /_stcore/stream HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nOrigin: https://127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamlit\r\n"
                f"Cookie: candor_route={cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n", 1)[0].decode()


def routes_to(proxy: Proxy, ports: list[int], tries: int = 64) -> dict[int, str]:
    """A ``candor_route`` cookie value that the proxy sends to each replica port (found by asking
    /_stcore/health with random values and reading the JSON access log)."""
    import uuid

    found: dict[int, str] = {}
    for _ in range(tries):
        value = uuid.uuid4().hex
        https_get(f"https://127.0.0.1:{proxy.https}/_stcore/health", value)
        deadline = time.monotonic() + 5  # nginx logs a request just after answering it
        while not (lines := [ln for ln in proxy.log_lines() if ln["route"] == value]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no access log line for the route {value}")
            time.sleep(0.05)
        line = lines[-1]
        port = int(str(line["upstream"]).rsplit(":", 1)[1])
        found.setdefault(port, value)
        if set(found) == set(ports):
            return found
    raise AssertionError(f"no cookie reached every replica in {tries} tries: {found}")
