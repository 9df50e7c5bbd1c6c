"""Sizing figures for docs/deployment.md (issue #18): what one photo costs in the database and in
the object store, and what one app replica costs in memory, measured on a demo clinic whose images
are in S3-compatible storage (moto's standalone server on loopback, tests/s3_server.py).

1. Seeds the demo clinic (``--patients``, default 16) into a fresh SQLite database with
   ``CANDOR_IMAGE_STORE=s3://…``, then reports bytes per photo row (the ``photos`` table and its
   indexes, SQLite's dbstat), per audit event, for the whole file, and the stored image bytes per
   photo (object sizes in the bucket).
2. Starts one ``streamlit run app.py`` replica over it and reports its resident memory (the
   process and its children, /proc) idle, then after 1 and after ``--sessions`` (default 3)
   Chromium sessions signed in through the form (Debian's /usr/bin/chromium via Playwright).

Loopback only, bounded (at most 64 patients, 8 sessions).

    .venv/bin/python benchmarks/deployment_sizing.py
    .venv/bin/python benchmarks/deployment_sizing.py --patients 32 --sessions 5
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "sizing-password-not-secret"


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def database_figures(db_file: Path) -> dict[str, float]:
    con = sqlite3.connect(db_file)
    try:
        sizes = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))

        def table_bytes(table: str) -> int:  # the table and every index on it
            names = [table] + [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=?", (table,)
                )
            ]
            return sum(sizes.get(n, 0) for n in names)

        photo_bytes, audit_bytes = table_bytes("photos"), table_bytes("audit_events")
        photos = con.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        events = con.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
        patients = con.execute("SELECT COUNT(*) FROM patients").fetchone()[0]
    finally:
        con.close()
    return {
        "patients": patients,
        "photos": photos,
        "audit_events": events,
        "photo_row_bytes": photo_bytes / max(photos, 1),
        "audit_event_bytes": audit_bytes / max(events, 1),
        "file_bytes": db_file.stat().st_size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    if not 4 <= args.patients <= 64 or not 1 <= args.sessions <= 8:
        parser.error("--patients 4..64, --sessions 1..8")

    from analysis.config import S3Settings
    from analysis.store.images import S3ImageStore
    from tests.e2e.helpers import CHROMIUM, CHROMIUM_ARGS, sign_in
    from tests.support import s3_server
    from tests.support.pg_server import free_port

    endpoint, stop_s3 = s3_server.start_s3_server()
    tmp = Path(tempfile.mkdtemp(prefix="candor-sizing-"))
    server = None
    try:
        bucket = f"sizing-{os.getpid()}"
        s3_server.make_bucket(endpoint, bucket)
        data = tmp / "data"
        data.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CANDOR_", "AWS_"))}
        env.update(
            CANDOR_DATA_DIR=str(data),
            CANDOR_IMAGE_STORE=f"s3://{bucket}/clinic",
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID=s3_server.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=s3_server.SECRET_KEY,
            AWS_REGION=s3_server.REGION,
            CANDOR_DEMO_PASSWORD=PASSWORD,
            CANDOR_AUDIT_KEY_FILE=str(tmp / "audit.key"),
            CANDOR_AUDIT_ANCHOR=str(tmp / "audit.anchor"),
            PYTHONPATH=str(ROOT),
        )
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "analysis", "demo", "--patients", str(args.patients)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        print(
            f"demo clinic of {args.patients} patients seeded with images in S3 in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        figures = database_figures(data / "candor.sqlite3")
        store = S3ImageStore(
            f"s3://{bucket}/clinic",
            S3Settings(
                endpoint=endpoint,
                region=s3_server.REGION,
                access_key_id=s3_server.ACCESS_KEY,
                secret_access_key=s3_server.SECRET_KEY,
                session_token=None,
            ),
            key=None,
        )
        blobs = store.names()
        blob_bytes = sum(store.stored_size(n) for n in blobs)
        print(
            f"database (SQLite): {figures['patients']} patients, {figures['photos']} photos, "
            f"{figures['audit_events']} audit events, file {figures['file_bytes'] / 1e6:.2f} MB"
        )
        print(
            f"  photos table + indexes: {figures['photo_row_bytes']:.0f} bytes per photo "
            f"-> {figures['photo_row_bytes'] * 1e5 / 1e6:.0f} MB per 100k photos"
        )
        print(f"  audit_events table + indexes: {figures['audit_event_bytes']:.0f} bytes per event")
        print(
            f"object store: {len(blobs)} blobs, {blob_bytes / max(len(blobs), 1) / 1e6:.3f} MB "
            f"per blob -> {blob_bytes / max(len(blobs), 1) * 1e5 / 1e9:.1f} GB per 100k photos "
            "(demo JPEGs; a clinic's camera files are larger)"
        )

        port = free_port()
        log = (tmp / "streamlit.log").open("w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print("streamlit did not start", file=sys.stderr)
                return 1
            time.sleep(0.3)
        time.sleep(2)
        print(f"replica RSS idle: {rss_mb(server.pid):.0f} MB")
        if not CHROMIUM.is_file():
            print("no /usr/bin/chromium: signed-in sessions not measured")
            return 0
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            pages = []
            try:
                for i in range(args.sessions):
                    context = browser.new_context()
                    page = context.new_page()
                    page.set_default_timeout(120_000)
                    t = time.perf_counter()
                    sign_in(
                        page, url, "clinician@demo.candor", password=PASSWORD, timeout_ms=120_000
                    )
                    pages.append(page)
                    time.sleep(1)
                    print(
                        f"replica RSS with {i + 1} signed-in session(s): "
                        f"{rss_mb(server.pid):.0f} MB (sign-in {time.perf_counter() - t:.1f} s)"
                    )
            finally:
                browser.close()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        stop_s3()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
