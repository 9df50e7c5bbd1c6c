"""Series review of trichoscopy: automated density beside the manual one with the stated error band,
required site labels, and the same-spot check (site, scale, focus) of baseline and follow-up, on
SQLite and PostgreSQL with project-made synthetic images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from analysis.errors import FieldError
from analysis.hair import STATED_REL_ERROR
from analysis.outcomes.endpoint_library import ENDPOINTS_BY_CODE
from analysis.photos.sharpness import measure_sharpness
from analysis.services import capture, records, trichoscopy
from analysis.store import db
from analysis.store.access import PermissionDenied
from analysis.store.models import EndpointDefinition
from tests.support.photo_clinic import CLINICIAN, CONSULT, DIRECTOR, Clinic, events, make_clinic
from tests.support.trichoscopy_synth import add_trichoscopy_photo, synthetic_scalp

MM = 0.0027


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


@dataclass
class World:
    clinic: Clinic
    follow_session: int
    base_rgb: np.ndarray


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    clinic = make_clinic(db_url, tmp_path / "images")
    rgb, _ = synthetic_scalp(12, seed=21)
    with db.session_scope(clinic.engine) as s:
        follow = records.add_session(
            s, CLINICIAN, series_id=clinic.series_id, performed_on=date(2026, 3, 1)
        ).id
    yield World(clinic, follow, rgb)
    clinic.engine.dispose()


def _add(w: World, rgb: np.ndarray, *, session_id: int, site: str) -> int:
    with db.session_scope(w.clinic.engine) as s:
        return add_trichoscopy_photo(
            s,
            CLINICIAN,
            w.clinic.store,
            session_id=session_id,
            data=_png(rgb),
            site=site,
            sharpness=measure_sharpness(rgb),
        )


def _cal(w: World, device: str, mag: float, mm: float) -> int:
    with db.session_scope(w.clinic.engine) as s:
        return trichoscopy.set_calibration(
            s, DIRECTOR, device=device, magnification=mag, mm_per_px=mm
        ).calibration_id


def _count(w: World, photo_id: int, cal: int | None) -> trichoscopy.CountRecord:
    with db.session_scope(w.clinic.engine) as s:
        return trichoscopy.count_photo(
            s, CLINICIAN, photo_id, calibration_id=cal, store=w.clinic.store
        )


def _review(w: World, actor=CLINICIAN) -> trichoscopy.TrichoscopyReview:  # type: ignore[no-untyped-def]
    with db.session_scope(w.clinic.engine) as s:
        return trichoscopy.trichoscopy_review(s, actor, w.clinic.series_id, store=w.clinic.store)


def _shifted(rgb: np.ndarray, dx: int = 14, dy: int = 9) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(rgb, m, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_same_site_same_calibration_in_focus_is_comparable(world: World) -> None:
    w = world
    cal = _cal(w, "Dermlite T1", 70, MM)
    base = _add(w, w.base_rgb, session_id=w.clinic.session_id, site="vertex")
    follow = _add(w, _shifted(w.base_rgb), session_id=w.follow_session, site="vertex")
    a, b = _count(w, base, cal), _count(w, follow, cal)
    with db.session_scope(w.clinic.engine) as s:
        s.add(EndpointDefinition(**ENDPOINTS_BY_CODE["hair_density"].row()))
        s.flush()
        records.record_measurement(
            s, CLINICIAN, session_id=w.clinic.session_id, endpoint_code="hair_density", value=150
        )
        trichoscopy.confirm_count(s, CLINICIAN, follow, b.auto_count + 3)
    review = _review(w)
    d = review.densities.set_index("photo_id")
    assert d.loc[base, "auto_density"] == pytest.approx(a.density_per_cm2)
    assert d.loc[base, "band_high"] == pytest.approx(a.density_per_cm2 * (1 + STATED_REL_ERROR))
    assert d.loc[base, "band_low"] == pytest.approx(a.density_per_cm2 * (1 - STATED_REL_ERROR))
    # the follow-up's recorded density is the corrected one; the automated one is kept beside it
    assert d.loc[follow, "auto_density"] == pytest.approx(b.density_per_cm2)
    assert d.loc[follow, "recorded_density"] > d.loc[follow, "auto_density"]
    assert d.loc[follow, "confirmed_count"] == b.auto_count + 3
    assert review.manual.to_dict("records") == [{"session_number": 1, "value": 150.0}]
    assert review.rel_error == STATED_REL_ERROR
    (c,) = review.comparisons
    assert (c.site, c.baseline_photo_id, c.followup_photo_id) == ("vertex", base, follow)
    assert c.verdict == "pass", c.reasons
    assert [k.status for k in c.checks] == ["pass", "pass", "pass"]
    assert c.followup_density == pytest.approx(d.loc[follow, "recorded_density"])
    assert c.change_pct is not None and c.baseline_density is not None
    assert c.followup_density is not None
    (ev,) = events(w.clinic.engine, "trichoscopy.view")
    assert ev.details == {"photos": 2, "comparisons": 1}


def test_different_magnification_and_a_blurred_follow_up_are_flagged(world: World) -> None:
    w = world
    c70 = _cal(w, "Dermlite T1", 70, MM)
    c20 = _cal(w, "Dermlite T1", 20, MM * 3.5)
    base = _add(w, w.base_rgb, session_id=w.clinic.session_id, site="vertex")
    blurred = cv2.GaussianBlur(w.base_rgb, (0, 0), 5)
    follow = _add(w, blurred, session_id=w.follow_session, site="vertex")
    _count(w, base, c70)
    _count(w, follow, c20)
    (c,) = _review(w).comparisons
    assert c.verdict == "fail"
    checks = {k.name: k for k in c.checks}
    assert checks["scale"].status == "fail" and "70x vs Dermlite T1 20x" in checks["scale"].message
    assert checks["focus"].status == "fail" and "out of focus" in checks["focus"].message
    assert len(c.reasons) == 2


def test_sites_pair_photos_and_a_missing_label_fails(world: World) -> None:
    w = world
    _add(w, w.base_rgb, session_id=w.clinic.session_id, site="vertex")
    _add(w, w.base_rgb, session_id=w.clinic.session_id, site="occipital")
    # a follow-up of the vertex only: the occipital has no follow-up, so one comparison
    _add(w, _shifted(w.base_rgb), session_id=w.follow_session, site="vertex")
    review = _review(w)
    assert [c.site for c in review.comparisons] == ["vertex"]
    # photos without a site label cannot be told to show the same spot
    _add(w, w.base_rgb, session_id=w.clinic.session_id, site="")
    _add(w, w.base_rgb, session_id=w.follow_session, site="")
    unlabelled = [c for c in _review(w).comparisons if c.site == ""]
    assert len(unlabelled) == 1 and unlabelled[0].verdict == "fail"
    assert "no site label" in unlabelled[0].reasons[0]


def test_without_calibrations_the_scale_is_measured_by_registration(world: World) -> None:
    w = world
    base = _add(w, w.base_rgb, session_id=w.clinic.session_id, site="frontal")
    _add(w, _shifted(w.base_rgb), session_id=w.follow_session, site="frontal")
    (same,) = _review(w).comparisons
    scale = {k.name: k for k in same.checks}["scale"]
    assert scale.status == "pass" and "measured scale" in scale.message, scale.message
    # a 25 % zoomed follow-up: measured, and flagged
    h, wd = w.base_rgb.shape[:2]
    zoom = cv2.resize(w.base_rgb, None, fx=1.25, fy=1.25)[:h, :wd]
    other = records_session(w)
    _add(w, zoom, session_id=other, site="frontal")
    zoomed = [c for c in _review(w).comparisons if c.followup_session == 3]
    (z,) = zoomed
    scale = {k.name: k for k in z.checks}["scale"]
    assert scale.status == "fail" and "1.2" in scale.message, scale.message
    assert base == z.baseline_photo_id


def records_session(w: World) -> int:
    with db.session_scope(w.clinic.engine) as s:
        return records.add_session(
            s, CLINICIAN, series_id=w.clinic.series_id, performed_on=date(2026, 4, 1)
        ).id


def test_review_roles_and_site_labels(world: World) -> None:
    w = world
    with pytest.raises(PermissionDenied):
        _review(w, CONSULT)
    pid = _add(w, w.base_rgb, session_id=w.clinic.session_id, site="")
    with db.session_scope(w.clinic.engine) as s:
        assert trichoscopy.set_site(s, CLINICIAN, pid, "  Mid-scalp  ") == "mid-scalp"
    (ev,) = events(w.clinic.engine, "photo.site")
    assert ev.details == {"site": "mid-scalp", "previous_site": ""}
    for bad in ("", "   ", "x" * 65):
        with pytest.raises(FieldError) as err:
            with db.session_scope(w.clinic.engine) as s:
                trichoscopy.set_site(s, CLINICIAN, pid, bad)
        assert err.value.field == "site"
    with pytest.raises(FieldError, match="not a trichoscopy"):
        with db.session_scope(w.clinic.engine) as s:
            trichoscopy.set_site(s, CLINICIAN, w.clinic.photo_id, "vertex")
    with pytest.raises(PermissionDenied):
        with db.session_scope(w.clinic.engine) as s:
            trichoscopy.set_site(s, CONSULT, pid, "vertex")


def test_save_capture_requires_a_site_for_trichoscopy(world: World) -> None:
    w = world
    data = _png(w.base_rgb)
    a = capture.assess_upload(data, view="scalp_trichoscopy")
    with pytest.raises(FieldError) as err:
        with db.session_scope(w.clinic.engine) as s:
            capture.save_capture(
                s,
                CLINICIAN,
                session_id=w.clinic.session_id,
                data=data,
                assessment=a,
                store=w.clinic.store,
            )
    assert err.value.field == "site"
    with db.session_scope(w.clinic.engine) as s:
        pid = capture.save_capture(
            s,
            CLINICIAN,
            session_id=w.clinic.session_id,
            data=data,
            assessment=a,
            store=w.clinic.store,
            site="Vertex",
        )
    with db.session_scope(w.clinic.engine) as s:
        assert capture.stored_photo(s, CLINICIAN, photo_id=pid).site == "vertex"


@pytest.mark.parametrize(
    "baseline,followup,within,change",
    [(100.0, 110.0, True, 10.0), (100.0, 125.0, False, 25.0), (100.0, 80.0, False, -20.0)],
)
def test_a_change_is_within_the_stated_error_when_the_two_bands_overlap(
    baseline: float, followup: float, within: bool, change: float
) -> None:
    # bands ±10 % (STATED_REL_ERROR): 100 -> [90, 110]; 110 -> [99, 121]; 125 -> [112.5, 137.5];
    # 80 -> [72, 88]
    assert trichoscopy_error() == pytest.approx(0.10)
    c = trichoscopy.SiteComparison("vertex", 1, 2, 1, 2, (), baseline, followup)
    assert c.within_stated_error is within
    assert c.change_pct == pytest.approx(change)
    assert c.verdict == "pass" and c.reasons == []


def trichoscopy_error() -> float:
    from analysis.hair import STATED_REL_ERROR

    return STATED_REL_ERROR
