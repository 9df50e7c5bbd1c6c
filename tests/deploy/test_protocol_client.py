"""The websocket protocol client the load benchmark drives 50 users with
(tests/support/streamlit_ws.py) against the real app: a Streamlit upgrade that changes the
protocol, or an app change that renames what the benchmark clicks, fails here, not silently in a
benchmark that then measures error pages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.e2e.helpers import E2E_PASSWORD, seeded_env, serve_app
from tests.support.clinician_clinic import astronaut_jpeg
from tests.support.streamlit_ws import StreamlitSession

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
        signed_in, alerts = asyncio.run(_wrong_password(url))
        assert not signed_in and alerts, "a wrong password must leave the form with an error"
        seen = asyncio.run(_clinician_visit(url))
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
