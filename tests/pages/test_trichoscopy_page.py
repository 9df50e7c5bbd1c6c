"""Trichoscopy counts on Capture photos and device calibrations on Protocol setup, driven through
the real router (AppTest) on a small clinic with one project-made synthetic trichoscopy photo."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from analysis.services import records
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import Actor
from analysis.store.images import default_store
from analysis.store.models import DeviceCalibration, Photo, PhotoFollicleCount, Protocol
from tests.conftest import PROJECT_ROOT
from tests.support.photo_clinic import YESTERDAY
from tests.support.trichoscopy_synth import add_trichoscopy_photo, trichoscopy_png
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def clinic(candor_env: Path) -> dict[str, int]:
    db.upgrade(db.get_engine())
    with db.session_scope() as s:
        users = user_admin.seed_demo_accounts(s)
        ids = {u.role: u.id for u in users}
        clin = Actor(user_id=ids["clinician"], email="clinician@demo.candor", role="clinician")
        protocol = Protocol(
            name="PRP, scalp",
            modality="prp",
            target_area="scalp",
            planned_sessions=3,
            interval_days=28,
            required_views=["scalp_trichoscopy"],
            endpoint_codes=[],
        )
        s.add(protocol)
        s.flush()
        patient = records.create_patient(
            s, clin, code="P-0100", birth_year=1980, sex="male", fitzpatrick=2
        )
        records.give_consent(s, clin, patient_id=patient.id, scope="clinical_record", at=YESTERDAY)
        series = records.create_series(
            s, clin, patient_id=patient.id, protocol_id=protocol.id, started_on=date(2026, 1, 5)
        )
        visit = records.add_session(s, clin, series_id=series.id, performed_on=date(2026, 1, 5))
        data, _ = trichoscopy_png(10, seed=5)
        photo_id = add_trichoscopy_photo(s, clin, default_store(), session_id=visit.id, data=data)
        return {
            "clinician": ids["clinician"],
            "director": ids["medical_director"],
            "series_id": series.id,
            "session_id": visit.id,
            "photo_id": photo_id,
        }


def _open(path: str, actor: Actor, **state: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[ACTOR_KEY] = actor
    for key, value in state.items():
        at.session_state[key] = value
    _run(at)
    at.switch_page(path)
    return _run(at)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _captions(at: AppTest) -> list[str]:
    return [c for image in at.get("image") for c in getattr(image, "captions", [])]


def _texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value)
        for kind in ("markdown", "caption", "error", "success", "info")
        for e in getattr(at, kind)
    )


def test_director_calibrates_then_clinician_counts_and_corrects(clinic: dict[str, int]) -> None:
    director = Actor(
        user_id=clinic["director"], email="director@demo.candor", role="medical_director"
    )
    at = _open("views/protocol_setup.py", director)
    at.text_input(key="tri_cal_device").input("Trichoscope A")
    at.number_input(key="tri_cal_mag").set_value(70.0)
    at.number_input(key="tri_cal_mm").set_value(0.0027)
    next(b for b in at.button if b.label == "Save calibration").click()
    _run(at)
    assert "Saved the calibration Trichoscope A · 70x" in _texts(at)
    with db.session_scope() as s:
        cal = s.scalar(select(DeviceCalibration))
        assert cal is not None and (cal.device, cal.mm_per_px, cal.set_by_id) == (
            "Trichoscope A",
            0.0027,
            clinic["director"],
        )
        cal_id = cal.id

    clinician = Actor(user_id=clinic["clinician"], email="clinician@demo.candor", role="clinician")
    at = _open(
        "views/capture_photos.py",
        clinician,
        candor_series_id=clinic["series_id"],
        capture_session_id=clinic["session_id"],
    )
    pid = clinic["photo_id"]
    assert "Not counted yet" in _captions(at)
    at.selectbox(key=f"tri_cal_{pid}").set_value(cal_id)
    next(b for b in at.button if b.key == f"tri_count_{pid}").click()
    _run(at)
    with db.session_scope() as s:
        row = s.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == pid))
        assert row is not None and row.density_per_cm2 is not None and row.calibration_id == cal_id
        auto = row.auto_count
    assert 6 <= auto <= 14  # 10 shafts drawn
    assert f"Photo {pid}: {auto} follicles counted." in _texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Automatic count"] == str(auto)
    assert metrics["Density, automated"] == f"{row.density_per_cm2:.0f} hairs/cm²"
    assert f"{auto} detected follicles marked" in _captions(at)
    (box,) = [n for n in at.number_input if (n.key or "").startswith(f"tri_value_{pid}_")]
    assert box.value == auto
    box.set_value(auto + 2)
    next(b for b in at.button if b.key == f"tri_confirm_{pid}").click()
    _run(at)
    assert f"Photo {pid}: count corrected to {auto + 2}." in _texts(at)
    assert f"**{auto + 2}** (automatic {auto})" in _texts(at)
    with db.session_scope() as s:
        row = s.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == pid))
        assert row is not None
        assert (row.auto_count, row.confirmed_count, row.confirmed_by_id) == (
            auto,
            auto + 2,
            clinic["clinician"],
        )
        assert row.confirmed_density_per_cm2 is not None and row.density_per_cm2 is not None
        assert row.confirmed_density_per_cm2 > row.density_per_cm2
        corrected_density, auto_density = row.confirmed_density_per_cm2, row.density_per_cm2
    # both densities are shown: the recorded (corrected) one and the automated one beside it
    assert (
        f"Density recorded: **{corrected_density:.0f} hairs/cm²** (corrected count) · "
        f"automated {auto_density:.0f} hairs/cm²"
    ) in _texts(at)


def _clin(clinic: dict[str, int]) -> Actor:
    return Actor(user_id=clinic["clinician"], email="clinician@demo.candor", role="clinician")


def test_a_trichoscopy_upload_is_not_saved_without_its_scalp_site(clinic: dict[str, int]) -> None:
    at = _open(
        "views/capture_photos.py",
        _clin(clinic),
        candor_series_id=clinic["series_id"],
        capture_session_id=clinic["session_id"],
    )
    data, _ = trichoscopy_png(8, seed=11)
    at.file_uploader[0].set_value(("spot.png", data, "image/png"))
    _run(at)
    (site,) = [s for s in at.selectbox if (s.key or "").startswith("site_")]
    assert site.label == "Scalp site (required)" and site.value is None
    next(b for b in at.button if b.label == "Save photo").click()
    _run(at)
    assert "Site: name the scalp site of this trichoscopy photo" in _texts(at)
    with db.session_scope() as s:
        assert len(s.scalars(select(Photo)).all()) == 1  # only the fixture's photo
    [s for s in at.selectbox if (s.key or "").startswith("site_")][0].set_value("occipital")
    next(b for b in at.button if b.label == "Save photo").click()
    _run(at)
    assert "Saved spot.png as" in _texts(at)
    with db.session_scope() as s:
        saved = s.scalars(select(Photo).order_by(Photo.id.desc())).first()
        assert saved is not None and saved.site == "occipital"
    # the fixture's photo (stored without a site) can be labelled in the count panel
    pid = clinic["photo_id"]
    assert "no site label" in _texts(at)
    at.selectbox(key=f"tri_site_{pid}").set_value("vertex")
    next(b for b in at.button if b.key == f"tri_site_save_{pid}").click()
    _run(at)
    assert f"Photo {pid}: site set to vertex." in _texts(at)
    with db.session_scope() as s:
        photo = s.get(Photo, pid)
        assert photo is not None and photo.site == "vertex"


def test_series_review_charts_density_with_its_band_and_flags_a_blurred_follow_up(
    clinic: dict[str, int],
) -> None:
    import io

    import cv2
    from PIL import Image

    from analysis.photos.sharpness import measure_sharpness
    from analysis.services import trichoscopy
    from tests.support.trichoscopy_synth import synthetic_scalp

    clin = _clin(clinic)
    director = Actor(
        user_id=clinic["director"], email="director@demo.candor", role="medical_director"
    )
    rgb, _ = synthetic_scalp(10, seed=5)
    blurred = cv2.GaussianBlur(rgb, (0, 0), 5)

    def png(a: object) -> bytes:
        out = io.BytesIO()
        Image.fromarray(a).save(out, format="PNG")  # type: ignore[arg-type]
        return out.getvalue()

    with db.session_scope() as s:
        cal = trichoscopy.set_calibration(
            s, director, device="Trichoscope A", magnification=70, mm_per_px=0.0027
        ).calibration_id
        base = clinic["photo_id"]
        photo = s.get(Photo, base)
        assert photo is not None
        photo.site, photo.measurements = "vertex", {"sharpness": measure_sharpness(rgb)}
        visit2 = records.add_session(
            s, clin, series_id=clinic["series_id"], performed_on=date(2026, 2, 2)
        )
        follow = add_trichoscopy_photo(
            s,
            clin,
            default_store(),
            session_id=visit2.id,
            data=png(blurred),
            site="vertex",
            sharpness=measure_sharpness(blurred),
        )
    for pid in (base, follow):
        with db.session_scope() as s:
            trichoscopy.count_photo(s, clin, pid, calibration_id=cal)
    at = _open(
        "views/series_review.py",
        clin,
        candor_series_id=clinic["series_id"],
        review_tab="Trichoscopy",
    )
    (chart,) = [c for c in at.get("plotly_chart") if "trichoscopy_density" in str(c.proto.id)]
    import json

    traces = {t.get("name"): t for t in json.loads(chart.proto.spec)["data"]}
    from analysis.hair import STATED_REL_ERROR as err

    label = f"vertex: stated count error ±{100 * err:.1f} %"
    assert {label, "vertex: automated"} <= set(traces)
    band = traces[label]["y"]
    auto = traces["vertex: automated"]["y"]
    assert band[0] == pytest.approx(auto[0] * (1 + err))
    assert band[-1] == pytest.approx(auto[0] * (1 - err))
    assert f"Band: the automated count's stated error, ±{100 * err:.1f} %" in _texts(at)
    errors = "\n".join(str(e.value) for e in at.error)
    assert "**Not comparable**" in errors and "out of focus" in errors
    assert f"photos {base} → {follow}" in errors
