"""Trichoscopy counts in the clinician's flow (analysis.services.trichoscopy), on SQLite and
PostgreSQL (``db_url``), with project-made synthetic images whose shafts are known."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from analysis.errors import FieldError
from analysis.hair.count import METHOD, VERSION
from analysis.services import records, trichoscopy
from analysis.services.photo_access import ConsentMissing
from analysis.store import db
from analysis.store.access import PermissionDenied
from analysis.store.models import EndpointDefinition, EndpointMeasurement, PhotoFollicleCount
from tests.support.photo_clinic import CLINICIAN, CONSULT, DIRECTOR, Clinic, events, make_clinic
from tests.support.trichoscopy_synth import add_trichoscopy_photo, trichoscopy_png

N = 12
MM_PER_PX = 0.0027  # about a 70x trichoscope: 1280 px = 3.46 mm


@dataclass(frozen=True)
class World:
    clinic: Clinic
    photo_id: int
    centres: list[tuple[float, float]]


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    clinic = make_clinic(db_url, tmp_path / "images")
    data, centres = trichoscopy_png(N, seed=3)
    with db.session_scope(clinic.engine) as s:
        photo_id = add_trichoscopy_photo(
            s, CLINICIAN, clinic.store, session_id=clinic.session_id, data=data
        )
    yield World(clinic, photo_id, centres)
    clinic.engine.dispose()


def _count(w: World, **kw: object) -> trichoscopy.CountRecord:
    with db.session_scope(w.clinic.engine) as s:
        return trichoscopy.count_photo(s, CLINICIAN, w.photo_id, store=w.clinic.store, **kw)  # type: ignore[arg-type]


def _calibrate(w: World, mm: float = MM_PER_PX) -> int:
    with db.session_scope(w.clinic.engine) as s:
        return trichoscopy.set_calibration(
            s, DIRECTOR, device="Dermlite T1", magnification=70, mm_per_px=mm
        ).calibration_id


def _density_values(w: World) -> list[float]:
    with db.session_scope(w.clinic.engine) as s:
        return [
            float(v or 0.0)
            for v in s.scalars(
                select(EndpointMeasurement.value_num)
                .join(EndpointDefinition)
                .where(
                    EndpointDefinition.code == "follicle_density_auto",
                    EndpointMeasurement.session_id == w.clinic.session_id,
                )
            )
        ]


def test_count_is_stored_beside_the_photo_with_points_method_and_version(world: World) -> None:
    got = _count(world)
    assert abs(got.auto_count - N) <= 0.2 * N
    assert len(got.points_px) == got.auto_count
    # every detected point lies on one of the drawn shafts (half-length <= 80 px)
    for x, y in got.points_px:
        assert min(np.hypot(x - cx, y - cy) for cx, cy in world.centres) < 90
    assert (got.method, got.version) == (METHOD, VERSION) == ("shaft-components+mlp", VERSION)
    assert got.density_per_cm2 is None and not got.confirmed
    with db.session_scope(world.clinic.engine) as s:
        row = s.scalar(
            select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == world.photo_id)
        )
        assert row is not None and row.auto_count == got.auto_count and row.mm_per_px is None
    assert _density_values(world) == []  # no calibration, no density endpoint
    (view,) = events(world.clinic.engine, "photo.view")  # read through the audited door
    assert view.outcome == "success" and view.object_id == str(world.photo_id)
    (event,) = events(world.clinic.engine, "follicle.count")
    assert event.details["follicles"] == got.auto_count
    assert event.patient_id == world.clinic.patient_id


def test_calibrated_count_records_the_automated_density_endpoint_once(world: World) -> None:
    cal = _calibrate(world)
    got = _count(world, calibration_id=cal)
    assert got.mm_per_px == MM_PER_PX and got.calibration_id == cal
    full_cm2 = 1280 * 1024 * (MM_PER_PX / 10) ** 2
    assert got.density_per_cm2 is not None
    assert got.density_per_cm2 >= got.auto_count / full_cm2 - 0.01  # overlays only shrink the area
    assert got.density_per_cm2 == pytest.approx(got.auto_count / full_cm2, rel=0.1)
    assert _density_values(world) == [pytest.approx(got.density_per_cm2)]
    with db.session_scope(world.clinic.engine) as s:
        d = s.scalar(
            select(EndpointDefinition).where(EndpointDefinition.code == "follicle_density_auto")
        )
        assert d is not None and (d.name, d.unit) == ("Follicle density, automated", "hairs/cm²")
    # counting again replaces the value; a new scale gives a new density
    again = _count(world, calibration_id=_calibrate(world, mm=MM_PER_PX * 2))
    assert again.density_per_cm2 == pytest.approx(got.density_per_cm2 / 4, rel=0.01)
    assert _density_values(world) == [pytest.approx(again.density_per_cm2)]


def test_confirm_or_correct_is_stored_beside_the_automatic_count(world: World) -> None:
    auto = _count(world).auto_count
    with db.session_scope(world.clinic.engine) as s:
        confirmed = trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, None)
    assert confirmed.confirmed_count == auto and not confirmed.corrected
    assert confirmed.confirmed_at is not None
    with db.session_scope(world.clinic.engine) as s:
        corrected = trichoscopy.confirm_count(s, DIRECTOR, world.photo_id, auto + 3)
    assert (corrected.auto_count, corrected.confirmed_count) == (auto, auto + 3)
    assert corrected.corrected
    with db.session_scope(world.clinic.engine) as s:
        stored = trichoscopy.photo_count(s, CLINICIAN, world.photo_id)
    assert stored is not None and (stored.auto_count, stored.confirmed_count) == (auto, auto + 3)
    first, second = events(world.clinic.engine, "follicle.confirm")
    assert (first.actor_email, first.details["corrected"]) == ("clin@test", False)
    assert (second.actor_email, second.details["confirmed_count"], second.details["corrected"]) == (
        "md@test",
        auto + 3,
        True,
    )
    for bad in (-1, trichoscopy.MAX_COUNT + 1):
        with pytest.raises(FieldError) as err:
            with db.session_scope(world.clinic.engine) as s:
                trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, bad)
        assert err.value.field == "corrected"
    # a recount clears the confirmation, which was of the old count
    assert not _count(world).confirmed


def test_a_corrected_count_becomes_the_density_endpoint_value_beside_the_automatic_one(
    world: World,
) -> None:
    cal = _calibrate(world)
    auto = _count(world, calibration_id=cal)
    assert auto.density_per_cm2 is not None and auto.area_cm2 is not None
    assert auto.density_per_cm2 == pytest.approx(auto.auto_count / auto.area_cm2, rel=1e-3)
    assert auto.recorded_density_per_cm2 == auto.density_per_cm2
    with db.session_scope(world.clinic.engine) as s:
        fixed = trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, auto.auto_count + 4)
    want = (auto.auto_count + 4) / auto.area_cm2
    assert fixed.confirmed_density_per_cm2 == pytest.approx(want, abs=0.01)
    assert fixed.recorded_density_per_cm2 == fixed.confirmed_density_per_cm2
    # the automatic count and density stay, with method and version
    assert (fixed.auto_count, fixed.density_per_cm2) == (auto.auto_count, auto.density_per_cm2)
    assert (fixed.method, fixed.version) == (auto.method, auto.version)
    # one endpoint value, now the corrected density
    assert _density_values(world) == [pytest.approx(want, abs=0.01)]
    (ev,) = events(world.clinic.engine, "follicle.confirm")
    assert ev.details["measurement_value_before"] == pytest.approx(auto.density_per_cm2)
    assert ev.details["measurement_value_after"] == pytest.approx(want, abs=0.01)
    # confirming the automatic count again puts the automatic density back
    with db.session_scope(world.clinic.engine) as s:
        back = trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, None)
    assert back.confirmed_density_per_cm2 == pytest.approx(auto.density_per_cm2, abs=0.01)
    assert _density_values(world) == [pytest.approx(auto.density_per_cm2, abs=0.01)]
    # a count whose density falls outside the endpoint's range (0-1000) is refused, nothing changes
    big = int(1001 * auto.area_cm2) + 1
    with pytest.raises(FieldError) as err:
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, big)
    assert err.value.field == "corrected" and "range" in str(err.value)
    assert _density_values(world) == [pytest.approx(auto.density_per_cm2, abs=0.01)]


def test_an_uncalibrated_correction_has_no_density(world: World) -> None:
    auto = _count(world)
    with db.session_scope(world.clinic.engine) as s:
        fixed = trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, auto.auto_count + 1)
    assert fixed.confirmed_density_per_cm2 is None and fixed.recorded_density_per_cm2 is None
    assert _density_values(world) == []


def test_confirm_before_counting_and_counting_a_face_photo_are_clear_errors(world: World) -> None:
    with pytest.raises(FieldError, match="count it first"):
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.confirm_count(s, CLINICIAN, world.photo_id, 5)
    with pytest.raises(FieldError, match="not a trichoscopy close-up"):
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.count_photo(s, CLINICIAN, world.clinic.photo_id, store=world.clinic.store)
    with pytest.raises(FieldError) as err:
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.count_photo(
                s, CLINICIAN, world.photo_id, calibration_id=999, store=world.clinic.store
            )
    assert err.value.field == "calibration_id"


def test_roles_and_consent_hold(world: World) -> None:
    with pytest.raises(PermissionDenied):
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.count_photo(s, CONSULT, world.photo_id, store=world.clinic.store)
    with pytest.raises(PermissionDenied):
        with db.session_scope(world.clinic.engine) as s:
            trichoscopy.set_calibration(s, CLINICIAN, device="X", magnification=20, mm_per_px=0.01)
    denied = [e for e in events(world.clinic.engine) if e.outcome == "denied"]
    assert [e.action for e in denied] == ["visit.record", "protocol.write"]
    with db.session_scope(world.clinic.engine) as s:
        records.withdraw_consent(
            s, CLINICIAN, patient_id=world.clinic.patient_id, scope="clinical_record"
        )
    with pytest.raises(ConsentMissing):
        _count(world)
    with db.session_scope(world.clinic.engine) as s:
        assert s.scalar(select(PhotoFollicleCount.id)) is None


def test_calibrations_are_validated_listed_and_replaced(world: World) -> None:
    for field, kw in (
        ("device", {"device": " "}),
        ("magnification", {"magnification": 0}),
        ("mm_per_px", {"mm_per_px": -0.1}),
        ("mm_per_px", {"mm_per_px": float("nan")}),
    ):
        args: dict[str, object] = {"device": "Dermlite", "magnification": 70, "mm_per_px": 0.0027}
        args.update(kw)
        with pytest.raises(FieldError) as err:
            with db.session_scope(world.clinic.engine) as s:
                trichoscopy.set_calibration(s, DIRECTOR, **args)  # type: ignore[arg-type]
        assert err.value.field == field
    first = _calibrate(world)
    second = _calibrate(world, mm=0.003)  # same device and magnification: replaced, not added
    assert first == second
    with db.session_scope(world.clinic.engine) as s:
        (cal,) = trichoscopy.calibrations(s, CLINICIAN)
    assert (cal.device, cal.magnification, cal.mm_per_px) == ("Dermlite T1", 70.0, 0.003)
    assert [
        e.details["previous_mm_per_px"] for e in events(world.clinic.engine, "calibration.set")
    ] == [None, MM_PER_PX]


def test_draw_points_marks_the_points() -> None:
    data, _ = trichoscopy_png(4, seed=1)
    plain = trichoscopy.draw_points(data, [], max_side=640)
    marked = trichoscopy.draw_points(data, [(640.0, 512.0)], max_side=640)
    assert plain.shape == marked.shape == (512, 640, 3)
    diff = np.abs(marked.astype(int) - plain.astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert diff.any() and abs(xs.mean() - 320) < 3 and abs(ys.mean() - 256) < 3


def test_an_implausible_calibration_gives_a_clear_error_and_stores_nothing(world: World) -> None:
    cal = _calibrate(world, mm=0.00001)  # 1280 px = 13 µm: densities far beyond any scalp
    with pytest.raises(FieldError, match="check the device calibration") as err:
        _count(world, calibration_id=cal)
    assert err.value.field == "calibration_id"
    with db.session_scope(world.clinic.engine) as s:
        assert s.scalar(select(PhotoFollicleCount.id)) is None
    assert _density_values(world) == []
    assert events(world.clinic.engine, "follicle.count") == []
