"""The websocket protocol client the load benchmark drives 50 users with
(tests/support/streamlit_ws.py) against the real app: a Streamlit upgrade that changes the
protocol, or an app change that renames what the benchmark clicks, fails here, not silently in a
benchmark that then measures error pages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.e2e.helpers import E2E_PASSWORD, seeded_env, serve_app
from tests.support.clinician_clinic import astronaut_jpeg
from tests.support.streamlit_ws import StreamlitSession, run_clients

SEED = (
    "from pathlib import Path; import os; "
    "from tests.support.clinician_clinic import seed_clinician_clinic; "
    "seed_clinician_clinic(Path(os.environ['CANDOR_DATA_DIR']))"
)
UPLOADER = "Photos (JPEG, PNG or HEIC)"
COUNTS = (
    "import json; from sqlalchemy import func, select; from analysis.store import db; "
    "from analysis.store.models import Confounder, Photo; "
    "s = db.session_scope().__enter__(); "
    "print(json.dumps({'photos': s.scalar(select(func.count()).select_from(Photo)), "
    "'details': sorted(s.scalars(select(Confounder.details)))}))"
)


def _counts(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", COUNTS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout))


async def _wrong_password(url: str) -> tuple[bool, list[str]]:
    s = StreamlitSession(url, timeout_s=60)
    try:
        await s.open()
        run = await s.set(
            s.text("Email", "clinician@demo.candor"),
            s.text("Password", "not-the-password"),
            s.click("Sign in"),
        )
        return any(b.label == "Sign out" for b in run.widgets("button")), run.texts("alert")
    finally:
        await s.close()


async def _clinician_visit(url: str) -> dict[str, object]:
    s = StreamlitSession(url, timeout_s=120)
    seen: dict[str, object] = {}
    try:
        first = await s.open()
        seen["signed_out_buttons"] = [b.label for b in first.widgets("button")]
        run = await s.set(
            s.text("Email", "clinician@demo.candor"),
            s.text("Password", E2E_PASSWORD),
            s.click("Sign in"),
        )
        seen["signed_in_buttons"] = [b.label for b in run.widgets("button")]
        for title in ("Patients", "Series review", "Timelines"):
            run = await s.navigate(title)
            seen[title] = (run.texts("heading")[:1], run.exceptions())
        await s.navigate("Capture photos")
        run = await s.set(s.text("Find a patient", "P-0001"))
        seen["series"] = list(run.widget("selectbox", "Patient and series").options)
        run = await s.upload(UPLOADER, "protocol-client.jpg", astronaut_jpeg(shift_px=2))
        seen["analysed"] = run.texts("progress")
        run = await s.set(s.click("Save photo"))
        seen["saved"] = [t for t in run.texts("alert") if t.startswith("Saved")]
        await s.navigate("Record visit")
        run = await s.set(
            s.choose("Confounder", "hair dye"),
            s.text("Details", "written by the protocol client"),
            s.click("Save confounder"),
        )
        seen["confounder"] = run.texts("alert")
        seen["exceptions"] = run.exceptions()
    finally:
        await s.close()
    return seen


def test_the_protocol_client_signs_in_browses_uploads_and_records(tmp_path: Path) -> None:
    env = seeded_env(tmp_path / "data", SEED)
    before = _counts(env)
    with serve_app(env, tmp_path / "app.log") as url:
        signed_in, alerts = run_clients(_wrong_password(url))
        assert not signed_in and alerts, "a wrong password must leave the form with an error"
        seen = run_clients(_clinician_visit(url))
    assert "Sign in" in seen["signed_out_buttons"]  # type: ignore[operator]
    assert "Sign out" in seen["signed_in_buttons"]  # type: ignore[operator]
    for title in ("Patients", "Series review", "Timelines"):
        assert seen[title] == ([title], []), seen[title]
    assert seen["series"] and all("P-0001" in o for o in seen["series"])  # type: ignore[attr-defined]
    assert seen["analysed"] == ["Analysed 1 photo(s)"]
    assert seen["saved"] and "protocol-client.jpg" in seen["saved"][0]  # type: ignore[index]
    assert any("Confounder saved: hair dye" in t for t in seen["confounder"])  # type: ignore[attr-defined]
    assert seen["exceptions"] == []
    after = _counts(env)  # what the server wrote, read back from the database
    assert after["photos"] == before["photos"] + 1  # type: ignore[operator]
    assert after["details"] == sorted([*before["details"], "written by the protocol client"])  # type: ignore[misc]


async def _sign_in(s: StreamlitSession, email: str) -> list[str]:
    run = await s.set(s.text("Email", email), s.text("Password", E2E_PASSWORD), s.click("Sign in"))
    return [b.label for b in run.widgets("button")]


async def _first_users_after_a_restart(url: str) -> dict[str, object]:
    """What the first tabs see on a server nobody has signed in to since it started: one opened on
    a page's own URL (a bookmark), one whose form was shown before a colleague signed in."""
    seen: dict[str, object] = {}
    bookmark, early, colleague = (StreamlitSession(url, timeout_s=60) for _ in range(3))
    try:
        run = await bookmark.open(page_name="patients")
        seen["bookmark_buttons"] = [b.label for b in run.widgets("button")]
        seen["bookmark_alerts"] = run.texts("alert")
        await early.open()
        await colleague.open()
        seen["colleague"] = await _sign_in(colleague, "director@demo.candor")
        seen["early"] = await _sign_in(early, "clinician@demo.candor")
    finally:
        for s in (bookmark, early, colleague):
            await s.close()
    return seen


def test_the_first_sign_ins_after_a_restart_are_not_lost(tmp_path: Path) -> None:
    """Found by the 50-user load benchmark: Streamlit treats a ``pages/`` folder beside the main
    script as a v1 multipage app until some session calls ``st.navigation`` (a class-wide flag,
    first set when a session starts). Tabs opened before the first sign-in since the start were
    sent the v1 page list, so their sign-in click came back as a page change that drops the
    click: the form again, no message. The same mode ran a bookmarked page's file without the
    sign-in gate. The page modules live in ``views/`` so that mode never starts."""
    env = seeded_env(tmp_path / "data", SEED)
    with serve_app(env, tmp_path / "app.log") as url:
        seen = run_clients(_first_users_after_a_restart(url))
    assert "Sign in" in seen["bookmark_buttons"], seen  # type: ignore[operator]
    assert seen["bookmark_alerts"] == [], seen
    assert "Sign out" in seen["colleague"], seen  # type: ignore[operator]
    assert "Sign out" in seen["early"], seen  # type: ignore[operator]
