"""Two replicas, one PostgreSQL, one bucket, behind the shipped nginx (issue #18 part 2, first
test): two Chromium browsers, each kept by its cookie on a different replica, sign in and move
between pages in turn, then fail sign-ins against one shared account in turn. Afterwards the audit
chain both replicas wrote into verifies, each browser action left exactly the events it should
(none lost, none twice), the lockout counter counted the failures of both replicas, and the
shared audit anchor verifies."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from tests.conftest import PROJECT_ROOT, S3Images
from tests.e2e.helpers import E2E_PASSWORD, serve_app, sign_in
from tests.support.nginx_proxy import nginx_prefix, routes_to, serve_nginx

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.s3]

SEED = (
    "from pathlib import Path; from tests.support.clinician_clinic import seed_clinician_clinic; "
    "seed_clinician_clinic(Path({data!r}))"
)


def _fresh_database(server_url: str, name: str) -> str:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.replace("/candor?", f"/{name}?")


def _go(page: object, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role(  # type: ignore[attr-defined]
        "link", name=title, exact=True
    ).click()
    page.get_by_role("heading", name=title).first.wait_for()  # type: ignore[attr-defined]


def _fail_sign_in(page: object, base: str, email: str) -> None:
    page.goto(base)  # type: ignore[attr-defined]
    page.get_by_role("textbox", name="Email").fill(email)  # type: ignore[attr-defined]
    page.get_by_role("textbox", name="Password").fill("not-the-password")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.get_by_text("Email or password is not right").wait_for()  # type: ignore[attr-defined]


def _wait_for(condition: object, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_browsers_on_two_replicas_keep_one_audit_chain(
    postgres_server_url: str, s3_images: S3Images, browser: object, tmp_path: Path
) -> None:
    from analysis.store import anchor, audit, db
    from analysis.store.models import AuditEvent

    url = _fresh_database(postgres_server_url, "candor_two_replicas")
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env.update(
        CANDOR_DATA_DIR=str(data),
        CANDOR_DATABASE_URL=url,
        CANDOR_IMAGE_STORE=s3_images.url,
        CANDOR_DEMO_PASSWORD=E2E_PASSWORD,
        CANDOR_AUDIT_ANCHOR=str(tmp_path / "audit.anchor"),
        CANDOR_AUDIT_KEY_FILE=os.environ["CANDOR_AUDIT_KEY_FILE"],
        CANDOR_TRUSTED_PROXY_HEADER="X-Forwarded-For",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", SEED.format(data=str(data))],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    engine = db.make_engine(url)

    def events_after(first_id: int) -> list[AuditEvent]:
        with db.session_scope(engine) as session:
            rows = list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.id > first_id).order_by(AuditEvent.id)
                )
            )
            session.expunge_all()
            return rows

    with db.session_scope(engine) as session:
        start = int(session.scalar(select(func.max(AuditEvent.id))) or 0)

    with ExitStack() as stack:
        urls = [stack.enter_context(serve_app(env, tmp_path / f"replica-{i}.log")) for i in (1, 2)]
        ports = [int(u.rsplit(":", 1)[1]) for u in urls]
        proxy = stack.enter_context(serve_nginx(nginx_prefix(tmp_path / "nginx", ports)))
        base = f"https://127.0.0.1:{proxy.https}"
        routes = routes_to(proxy, ports)
        tabs = []
        for port in ports:
            context = browser.new_context(  # type: ignore[attr-defined]
                ignore_https_errors=True, viewport={"width": 1400, "height": 1600}
            )
            context.set_default_timeout(60_000)
            context.add_cookies([{"name": "candor_route", "value": routes[port], "url": base}])
            stack.callback(context.close)
            tabs.append(context.new_page())
        a, b = tabs

        # interleaved: sign in on both, then move between pages in turn
        sign_in(a, base, "clinician@demo.candor", timeout_ms=60_000)
        sign_in(b, base, "director@demo.candor", timeout_ms=60_000)

        def reads() -> int:
            return sum(1 for e in events_after(start) if e.action == "audit.read")

        for round_ in range(2):
            _go(a, "Patients")
            _go(b, "Audit log")  # the first visit reads the log; later ones show that result
            _go(a, "Series review")
            b.get_by_role("button", name="Refresh").click()  # ...unless refreshed: one more read
            _wait_for(lambda r=round_: reads() >= r + 2)  # 1 + one per refresh
            _go(b, "Patients")
        signed_in = events_after(start)
        # each browser's requests stayed on its replica
        for port, route in routes.items():
            used = {ln["upstream"] for ln in proxy.log_lines() if ln["route"] == route}
            assert used == {f"127.0.0.1:{port}"}, (port, used)

        for tab in (a, b):
            tab.get_by_role("button", name="Sign out").click()
            tab.get_by_role("button", name="Sign in").wait_for()
        mark = signed_in[-1].id if signed_in else start
        wrong = 4  # below the lockout limit of 5: every attempt is judged on its password
        for i in range(wrong):
            _fail_sign_in((a, b)[i % 2], base, "admin@demo.candor")
        after = events_after(mark)

    events = events_after(start)
    with db.session_scope(engine) as session:
        assert audit.verify_chain(session) == []
        assert anchor.verify_anchor(session) == []
        failures = (
            session.execute(
                text("SELECT failures FROM sign_in_throttle WHERE key LIKE :k"),
                {"k": "%admin@demo.candor%"},
            )
            .scalars()
            .all()
        )
    engine.dispose()

    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids) and len({e.hash for e in events}) == len(events)
    assert len({e.prev_hash for e in events}) == len(events)  # no fork: one successor each
    sign_ins = [(e.actor_email, e.outcome) for e in events if e.action == "auth.sign_in"]
    assert sorted(sign_ins[:2]) == [
        ("clinician@demo.candor", "success"),
        ("director@demo.candor", "success"),
    ]
    assert [(e.actor_email, e.outcome) for e in after if e.action == "auth.sign_in"] == [
        ("admin@demo.candor", "failure")
    ] * wrong
    reads = [e for e in signed_in if e.action == "audit.read"]
    assert [e.actor_email for e in reads] == ["director@demo.candor"] * 3  # none lost or doubled
    assert max(failures) == wrong  # the counter saw the failures of both replicas
