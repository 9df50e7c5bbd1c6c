"""``python -m analysis count-follicles --device NAME --magnification X --as EMAIL``: the scale comes
from the device calibration the medical director stored, in a real SQLite database configured the
usual way (``CANDOR_DATA_DIR``), run as a subprocess like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from analysis.services import trichoscopy
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.models import AuditEvent
from tests.conftest import PROJECT_ROOT
from tests.support.trichoscopy_synth import trichoscopy_png

MM = 0.0027


@pytest.fixture
def clinic(candor_env: Path, tmp_path: Path) -> Path:
    db.upgrade(db.get_engine())
    with db.session_scope() as s:
        ids = {u.role: u.id for u in user_admin.seed_demo_accounts(s)}
        director = Actor(
            user_id=ids["medical_director"], email="director@demo.candor", role="medical_director"
        )
        trichoscopy.set_calibration(
            s, director, device="Dermlite  T1", magnification=70, mm_per_px=MM
        )
    db.dispose_engines()
    image = tmp_path / "scalp.png"
    image.write_bytes(trichoscopy_png(9, seed=4)[0])
    return image


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", "count-follicles", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
    )


def test_stored_calibration_gives_the_same_density_as_the_explicit_scale(clinic: Path) -> None:
    stored = _cli(
        str(clinic),
        "--device",
        "dermlite t1",
        "--magnification",
        "70",
        "--as",
        "clinician@demo.candor",
    )
    assert stored.returncode == 0, stored.stderr
    (row,) = [json.loads(line) for line in stored.stdout.splitlines()]
    explicit = _cli(str(clinic), "--mm-per-px", str(MM))
    (plain,) = [json.loads(line) for line in explicit.stdout.splitlines()]
    assert row["ok"] is True and row["density_per_cm2"] > 0
    assert row["density_per_cm2"] == plain["density_per_cm2"]
    assert row["follicles"] == plain["follicles"]
    assert row["mm_per_px"] == MM
    assert row["calibration"]["device"] == "Dermlite T1"
    assert row["calibration"]["magnification"] == 70
    with db.session_scope() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "calibration.read")).one()
        assert ev.actor_email == "clinician@demo.candor"
        assert ev.details["mm_per_px"] == MM


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ("--device", "Dermlite T1", "--magnification", "20", "--as", "clinician@demo.candor"),
            "no device calibration for 'Dermlite T1' at 20x",
        ),
        (
            ("--device", "Other", "--magnification", "70", "--as", "clinician@demo.candor"),
            "stored: Dermlite T1 · 70x",
        ),
        (("--device", "Dermlite T1", "--as", "clinician@demo.candor"), "needs --magnification"),
        (("--device", "Dermlite T1", "--magnification", "70"), "needs --as EMAIL"),
        (
            ("--device", "Dermlite T1", "--magnification", "70", "--as", "nobody@x"),
            "no active Candor account",
        ),
        (
            ("--device", "Dermlite T1", "--magnification", "70", "--as", "consult@demo.candor"),
            "consult staff accounts may not photo capture",
        ),
        (
            ("--device", "Dermlite T1", "--magnification", "70", "--mm-per-px", "0.003"),
            "not both",
        ),
        (("--magnification", "70"), "needs --device"),
    ],
)
def test_no_stored_calibration_is_a_clear_error_before_counting(
    clinic: Path, args: tuple[str, ...], message: str
) -> None:
    out = _cli(str(clinic), *args)
    assert out.returncode == 2
    assert out.stdout == ""
    assert message in out.stderr and "Traceback" not in out.stderr
