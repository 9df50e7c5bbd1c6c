"""Trichoscopy follicle counts in the clinician's flow, and the director's device calibrations.

* :func:`count_photo` reads a stored ``scalp_trichoscopy`` photo through the audited door
  (:func:`analysis.services.photo_access.photo_bytes`: role, current consent, one ``photo.view``
  event), runs :func:`analysis.hair.count.count_follicles` and stores the automatic count, its
  points, method and version beside the photo (``follicle_counts``). With a device calibration the
  density per cm² is also recorded as the session's ``follicle_density_auto`` endpoint value
  ("Follicle density, automated", hairs/cm²), next to any manually entered ``hair_density``.
* :func:`confirm_count` stores the clinician's confirmed (``corrected=None``) or corrected count
  beside the automatic one, with who and when; the automatic count is never overwritten. With a
  calibration the corrected count's density becomes the endpoint value (the automatic density
  stays beside it, with method and version).
* :func:`set_calibration` / :func:`calibrations`: mm per pixel per device and magnification, set
  by the medical director (``protocol.write``); :func:`calibration_for` looks one up by device
  and magnification (``python -m analysis count-follicles --device … --magnification …``).

Counting and confirming need ``visit.record`` (they record a measurement); listing the
calibrations needs ``photo.capture`` (a clinician picks the device when counting). Every change
writes one audit event.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from analysis.errors import FieldError
from analysis.hair import STATED_ERROR_VERSION, STATED_REL_ERROR
from analysis.hair.count import SCALE, candidates, count_follicles
from analysis.outcomes.endpoint_library import ENDPOINTS_BY_CODE
from analysis.photos.compare import Tolerances
from analysis.photos.scalp import Registration, register
from analysis.photos.types import is_trichoscopy_view
from analysis.services.photo_access import photo_bytes
from analysis.services.records import record_measurement
from analysis.store import audit, blinding
from analysis.store.access import Actor, require
from analysis.store.images import ImageStore
from analysis.store.models import (
    DeviceCalibration,
    EndpointDefinition,
    EndpointMeasurement,
    Photo,
    PhotoFollicleCount,
    Protocol,
    Series,
    Session,
    utcnow,
)

DENSITY_CODE = "follicle_density_auto"
MAX_COUNT = 10_000  # a corrected count above this is a typing error, not a scalp
MAX_PIXELS = 40_000_000  # refuse to decode anything larger (a decompression bomb)


@dataclass(frozen=True)
class Calibration:
    calibration_id: int
    device: str
    magnification: float
    mm_per_px: float
    set_at: datetime

    @property
    def label(self) -> str:
        return f"{self.device} · {self.magnification:g}x · {self.mm_per_px:.5g} mm/px"


@dataclass(frozen=True)
class CountRecord:
    """A photo's stored count as the page shows it."""

    photo_id: int
    auto_count: int
    points_px: tuple[tuple[float, float], ...]
    density_per_cm2: float | None
    mm_per_px: float | None
    calibration_id: int | None
    method: str
    version: str
    counted_at: datetime
    confirmed_count: int | None
    confirmed_by_id: int | None
    confirmed_at: datetime | None
    area_cm2: float | None = None
    confirmed_density_per_cm2: float | None = None

    @property
    def recorded_density_per_cm2(self) -> float | None:
        """The density recorded as the ``follicle_density_auto`` endpoint value: the confirmed
        (or corrected) count's once confirmed, else the automatic one."""
        if self.confirmed_density_per_cm2 is not None:
            return self.confirmed_density_per_cm2
        return self.density_per_cm2

    @property
    def confirmed(self) -> bool:
        return self.confirmed_count is not None

    @property
    def corrected(self) -> bool:
        return self.confirmed_count is not None and self.confirmed_count != self.auto_count


def _record(row: PhotoFollicleCount) -> CountRecord:
    return CountRecord(
        photo_id=row.photo_id,
        auto_count=row.auto_count,
        points_px=tuple((float(p[0]), float(p[1])) for p in row.points_px),
        density_per_cm2=row.density_per_cm2,
        mm_per_px=row.mm_per_px,
        calibration_id=row.calibration_id,
        method=row.method,
        version=row.version,
        counted_at=row.counted_at,
        confirmed_count=row.confirmed_count,
        confirmed_by_id=row.confirmed_by_id,
        confirmed_at=row.confirmed_at,
        area_cm2=row.area_cm2,
        confirmed_density_per_cm2=row.confirmed_density_per_cm2,
    )


def _area_cm2(row: PhotoFollicleCount) -> float | None:
    """The area a count was made over; rows counted before migration 0010 derive it from their
    automatic density (impossible for a zero count, which then has no corrected density)."""
    if row.area_cm2 is not None:
        return float(row.area_cm2)
    if row.density_per_cm2 and row.auto_count:
        return row.auto_count / float(row.density_per_cm2)
    return None


def _calibration(row: DeviceCalibration) -> Calibration:
    return Calibration(
        calibration_id=row.id,
        device=row.device,
        magnification=float(row.magnification),
        mm_per_px=float(row.mm_per_px),
        set_at=row.set_at,
    )


def _patient_of(session: DbSession, session_id: int) -> int:
    patient_id = session.scalar(
        select(Series.patient_id)
        .join(Session, Session.series_id == Series.id)
        .where(Session.id == session_id)
    )
    assert patient_id is not None  # a photo's session always belongs to a series
    return int(patient_id)


# ------------------------------------------------------------------------------ calibrations


def calibrations(session: DbSession, actor: Actor) -> list[Calibration]:
    """Every device calibration, by device then magnification."""
    require(actor, "photo.capture", session)
    rows = session.scalars(
        select(DeviceCalibration).order_by(
            DeviceCalibration.device, DeviceCalibration.magnification
        )
    )
    return [_calibration(r) for r in rows]


def calibration_for(
    session: DbSession, actor: Actor, *, device: str, magnification: float
) -> Calibration:
    """The stored calibration of ``device`` at ``magnification`` (device names match with spaces
    collapsed, case-insensitively), for counting outside the clinic record (the command line).
    One ``calibration.read`` audit event. Raises :class:`FieldError` (``device``) naming the
    calibrations that do exist when there is none."""
    require(actor, "photo.capture", session)
    name = " ".join(device.split())
    rows = list(session.scalars(select(DeviceCalibration)))
    found = [
        r
        for r in rows
        if r.device.casefold() == name.casefold()
        and math.isclose(float(r.magnification), float(magnification), rel_tol=1e-9)
    ]
    if not found:
        have = ", ".join(_calibration(r).label for r in rows) or "none is set"
        raise FieldError(
            "device",
            f"no device calibration for {name!r} at {magnification:g}x "
            f"(the medical director sets them on Protocol setup; stored: {have})",
        )
    cal = _calibration(found[0])
    audit.record(
        session,
        actor,
        "calibration.read",
        object_type="device_calibration",
        object_id=cal.calibration_id,
        details={
            "device": cal.device,
            "magnification": cal.magnification,
            "mm_per_px": cal.mm_per_px,
            "purpose": "count-follicles command line",
        },
    )
    return cal


def set_calibration(
    session: DbSession, actor: Actor, *, device: str, magnification: float, mm_per_px: float
) -> Calibration:
    """Set (add or replace) the pixel pitch of ``device`` at ``magnification``.

    Raises :class:`FieldError` naming ``device``, ``magnification`` or ``mm_per_px`` for bad input.
    Counts already stored keep the scale they were counted with (``follicle_counts.mm_per_px``).
    """
    require(actor, "protocol.write", session)
    name = " ".join(device.split())
    if not name or len(name) > 80:
        raise FieldError("device", "name the device (at most 80 characters)")
    if not (
        isinstance(magnification, (int, float))
        and math.isfinite(magnification)
        and 0 < magnification <= 10_000
    ):
        raise FieldError("magnification", "give the magnification as a positive number (e.g. 70)")
    if not (
        isinstance(mm_per_px, (int, float)) and math.isfinite(mm_per_px) and 0 < mm_per_px <= 1.0
    ):
        raise FieldError(
            "mm_per_px",
            "give millimetres per pixel as a positive number at most 1 (e.g. 0.0027 for 70x)",
        )
    row = session.scalar(
        select(DeviceCalibration).where(
            DeviceCalibration.device == name,
            DeviceCalibration.magnification == float(magnification),
        )
    )
    before = None if row is None else row.mm_per_px
    if row is None:
        row = DeviceCalibration(
            device=name,
            magnification=float(magnification),
            mm_per_px=float(mm_per_px),
            set_by_id=actor.user_id,
        )
        session.add(row)
    else:
        row.mm_per_px, row.set_by_id, row.set_at = float(mm_per_px), actor.user_id, utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "calibration.set",
        object_type="device_calibration",
        object_id=row.id,
        details={
            "device": name,
            "magnification": float(magnification),
            "mm_per_px": float(mm_per_px),
            "previous_mm_per_px": before,
        },
    )
    return _calibration(row)


# ------------------------------------------------------------------------------------ counts


def _decode_rgb(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise FieldError("photo", "the stored photo is too large to count")
            return np.asarray(image.convert("RGB"))
    except (OSError, Image.DecompressionBombError) as exc:
        raise FieldError("photo", f"the stored photo cannot be decoded: {exc}") from None


def _density_endpoint(session: DbSession, actor: Actor) -> None:
    """The standard ``follicle_density_auto`` definition, added (audited) if the clinic lacks it."""
    if session.scalar(select(EndpointDefinition.id).where(EndpointDefinition.code == DENSITY_CODE)):
        return
    session.add(EndpointDefinition(**ENDPOINTS_BY_CODE[DENSITY_CODE].row()))
    session.flush()
    audit.record(
        session,
        actor,
        "endpoint.create",
        object_type="endpoint",
        details={"codes": [DENSITY_CODE], "source": "standard library (automated count)"},
    )


def count_photo(
    session: DbSession,
    actor: Actor,
    photo_id: int,
    *,
    calibration_id: int | None = None,
    store: ImageStore | None = None,
) -> CountRecord:
    """Count the follicles on a stored trichoscopy photo and store the result beside it.

    ``calibration_id`` names the device calibration the photo was taken with; without one the count
    has no density and no endpoint value is recorded. Counting again replaces the automatic count
    (and the density value it recorded) and clears an earlier confirmation, which was of the old
    count.

    Raises :class:`PermissionDenied` (role, or the patient's consent, via the audited photo door),
    ``PhotoNotFound``, and :class:`FieldError` (field ``photo`` for a photo that is not a
    trichoscopy view or cannot be decoded, ``calibration_id`` for an unknown calibration).
    """
    require(actor, "visit.record", session, object_type="photo", object_id=photo_id)
    calibration = None
    if calibration_id is not None:
        calibration = session.get(DeviceCalibration, calibration_id)
        if calibration is None:
            raise FieldError("calibration_id", f"there is no device calibration {calibration_id}")
    photo = session.get(Photo, photo_id)
    if photo is not None and not is_trichoscopy_view(photo.view):
        raise FieldError(
            "photo",
            f"photo {photo_id} is not a trichoscopy close-up "
            f"(its view is {photo.view}); only those are counted",
        )
    mm_per_px = None if calibration is None else float(calibration.mm_per_px)
    data = photo_bytes(session, actor, photo_id=photo_id, store=store)  # audited; commits
    rgb = _decode_rgb(data)
    result = count_follicles(rgb, mm_per_px=mm_per_px)
    area_cm2 = None
    if mm_per_px is not None:
        if result.follicles and result.density_per_cm2:
            area_cm2 = result.follicles / float(result.density_per_cm2)
        else:  # no follicle to divide by: the engine's own counted area (overlays masked)
            keep = candidates(rgb).keep
            area_cm2 = float(keep.sum()) * SCALE * SCALE * (mm_per_px / 10.0) ** 2 or None
    photo = session.get(Photo, photo_id)
    assert photo is not None  # photo_bytes raised PhotoNotFound otherwise
    patient_id = _patient_of(session, photo.session_id)
    row = session.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == photo_id))
    if row is None:
        row = PhotoFollicleCount(photo_id=photo_id)
        session.add(row)
    old_measurement = row.measurement_id
    row.auto_count = result.follicles
    row.points_px = [[round(x, 1), round(y, 1)] for x, y in result.points_px]
    row.density_per_cm2 = (
        None if result.density_per_cm2 is None else round(float(result.density_per_cm2), 2)
    )
    row.mm_per_px, row.calibration_id = mm_per_px, calibration_id
    row.area_cm2 = None if area_cm2 is None else round(area_cm2, 6)
    row.confirmed_density_per_cm2 = None
    row.method, row.version = result.method, result.version
    row.counted_by_id, row.counted_at = actor.user_id, utcnow()
    row.confirmed_count, row.confirmed_by_id, row.confirmed_at = None, None, None
    row.measurement_id = None
    session.flush()
    if old_measurement is not None:  # the value of the earlier count, replaced by this one
        old = session.get(EndpointMeasurement, old_measurement)
        if old is not None:
            session.delete(old)
            session.flush()
    if row.density_per_cm2 is not None:
        _density_endpoint(session, actor)
        try:
            m = record_measurement(
                session,
                actor,
                session_id=photo.session_id,
                endpoint_code=DENSITY_CODE,
                value=row.density_per_cm2,
                site=f"trichoscopy photo {photo_id}",
                rater_id=None,
            )
        except FieldError as exc:  # outside the endpoint's range: a wrong calibration, likely
            raise FieldError(
                "calibration_id",
                f"{exc} (the count gave "
                f"{row.density_per_cm2:g} hairs/cm² at {mm_per_px:g} mm/px): "
                "check the device calibration",
            ) from None
        row.measurement_id = m.id
        session.flush()
    audit.record(
        session,
        actor,
        "follicle.count",
        patient_id=patient_id,
        object_type="photo",
        object_id=photo_id,
        details={
            "follicles": row.auto_count,
            "density_per_cm2": row.density_per_cm2,
            "mm_per_px": mm_per_px,
            "calibration_id": calibration_id,
            "method": row.method,
            "version": row.version,
            "replaced_measurement_id": old_measurement,
        },
    )
    return _record(row)


def confirm_count(
    session: DbSession, actor: Actor, photo_id: int, corrected: int | None
) -> CountRecord:
    """Confirm the automatic count (``corrected=None``) or store the clinician's correction beside
    it, with who and when.

    With a calibrated count, the density of the confirmed count (over the same area) is stored as
    ``confirmed_density_per_cm2`` and becomes the value of the ``follicle_density_auto`` endpoint
    measurement; the automatic count and density stay beside it, with method and version.

    Raises :class:`FieldError` (``photo``: not counted yet; ``corrected``: not a whole number from 0
    to :data:`MAX_COUNT`, or a density outside the endpoint's range)."""
    require(actor, "visit.record", session, object_type="photo", object_id=photo_id)
    row = session.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == photo_id))
    if row is None:
        raise FieldError("photo", f"photo {photo_id} has no automatic count yet: count it first")
    if corrected is not None and (
        isinstance(corrected, bool)
        or not isinstance(corrected, int)
        or not 0 <= corrected <= MAX_COUNT
    ):
        raise FieldError("corrected", f"give the count as a whole number from 0 to {MAX_COUNT}")
    photo = session.get(Photo, photo_id)
    assert photo is not None  # the count's foreign key
    previous = row.confirmed_count
    confirmed = row.auto_count if corrected is None else int(corrected)
    area = _area_cm2(row)
    density = None if area is None or area <= 0 else round(confirmed / area, 2)
    measurement = (
        None if row.measurement_id is None else session.get(EndpointMeasurement, row.measurement_id)
    )
    value_before = None if measurement is None else measurement.value_num
    if measurement is not None and density is not None:
        _check_range(session, measurement, density, confirmed)
        measurement.value_num = density  # the endpoint carries the clinician's count
    row.confirmed_count = confirmed
    row.confirmed_density_per_cm2 = density
    row.confirmed_by_id, row.confirmed_at = actor.user_id, utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "follicle.confirm",
        patient_id=_patient_of(session, photo.session_id),
        object_type="photo",
        object_id=photo_id,
        details={
            "auto_count": row.auto_count,
            "confirmed_count": row.confirmed_count,
            "corrected": row.confirmed_count != row.auto_count,
            "previous_confirmed_count": previous,
            "auto_density_per_cm2": row.density_per_cm2,
            "confirmed_density_per_cm2": density,
            "measurement_id": row.measurement_id,
            "measurement_value_before": value_before,
            "measurement_value_after": None if measurement is None else measurement.value_num,
            "method": row.method,
            "version": row.version,
        },
    )
    return _record(row)


def _check_range(
    session: DbSession, measurement: EndpointMeasurement, density: float, count: int
) -> None:
    endpoint = session.get(EndpointDefinition, measurement.endpoint_id)
    assert endpoint is not None  # the measurement's foreign key
    lo, hi = endpoint.scale_min, endpoint.scale_max
    if (lo is not None and density < lo) or (hi is not None and density > hi):
        raise FieldError(
            "corrected",
            f"{count} follicles over this photo's area is {density:g} hairs/cm², outside "
            f"{endpoint.name}'s range: check the count",
        )


def photo_count(session: DbSession, actor: Actor, photo_id: int) -> CountRecord | None:
    """The stored count of a photo, or None when it has not been counted."""
    require(actor, "photo.view", session, object_type="photo", object_id=photo_id)
    row = session.scalar(select(PhotoFollicleCount).where(PhotoFollicleCount.photo_id == photo_id))
    return None if row is None else _record(row)


def draw_points(
    data: bytes,
    points_px: tuple[tuple[float, float], ...] | list[tuple[float, float]],
    *,
    max_side: int = 1280,
) -> np.ndarray:
    """The image ``data`` (RGB, at most ``max_side`` px on its longer side) with a ring drawn at
    every point (full-resolution ``(x, y)`` pixels). Pure: no database, no audit (the bytes were
    read through the audited door)."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    scale = min(1.0, max_side / max(rgb.size))
    if scale < 1.0:
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
            Image.Resampling.LANCZOS,
        )
    draw = ImageDraw.Draw(rgb)
    r = max(4, round(max(rgb.size) / 90))
    width = max(2, r // 3)
    for x, y in points_px:
        cx, cy = x * scale, y * scale
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(0, 230, 255), width=width)
    return np.asarray(rgb)


# ------------------------------------------------------------------------------------- sites

#: Suggested scalp sites of a trichoscopy close-up; any other label (at most 64 characters) is
#: allowed, e.g. "vertex, 2 cm left of the tattoo dot".
SITES: tuple[str, ...] = (
    "vertex",
    "frontal",
    "mid-scalp",
    "occipital",
    "temporal left",
    "temporal right",
)
SITE_MAX = 64


def clean_site(site: str) -> str:
    """The stored form of a site label (spaces collapsed, lower case); raises :class:`FieldError`
    (``site``) when it is empty or longer than :data:`SITE_MAX`."""
    label = " ".join(str(site or "").split()).lower()
    if not label:
        raise FieldError(
            "site",
            "name the scalp site of this trichoscopy photo (e.g. vertex, frontal, mid-scalp, "
            "occipital): follow-up counts are only comparable at the same spot",
        )
    if len(label) > SITE_MAX:
        raise FieldError("site", f"the site label is at most {SITE_MAX} characters")
    return label


def set_site(session: DbSession, actor: Actor, photo_id: int, site: str) -> str:
    """Label (or relabel) the scalp site of a stored trichoscopy photo; one ``photo.site`` event."""
    require(actor, "photo.capture", session, object_type="photo", object_id=photo_id)
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise FieldError("photo", f"there is no photo {photo_id}")
    if not is_trichoscopy_view(photo.view):
        raise FieldError("photo", f"photo {photo_id} is not a trichoscopy close-up")
    label = clean_site(site)
    before = photo.site
    photo.site = label
    session.flush()
    audit.record(
        session,
        actor,
        "photo.site",
        patient_id=_patient_of(session, photo.session_id),
        object_type="photo",
        object_id=photo_id,
        details={"site": label, "previous_site": before},
    )
    return label


# ------------------------------------------------------------------- series review and same spot

MANUAL_DENSITY_CODE = "hair_density"
Status = Literal["pass", "warn", "fail", "not_assessed"]
_RANK = {"pass": 0, "not_assessed": 1, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class SiteCheck:
    name: str  # "site", "scale" or "focus"
    status: Status
    message: str


@dataclass(frozen=True)
class SiteComparison:
    """A follow-up trichoscopy photo against the baseline (earliest) photo of the same site.

    ``verdict`` is the worst check (a check that could not be made warns): ``fail`` means a
    density change between the two is not evidence of a treatment effect."""

    site: str
    baseline_photo_id: int
    followup_photo_id: int
    baseline_session: int
    followup_session: int
    checks: tuple[SiteCheck, ...]
    baseline_density: float | None
    followup_density: float | None

    @property
    def verdict(self) -> Literal["pass", "warn", "fail"]:
        worst = max((_RANK[c.status] for c in self.checks), default=0)
        return ("pass", "warn", "fail")[worst]

    @property
    def reasons(self) -> list[str]:
        return [c.message for c in self.checks if c.status != "pass"]

    @property
    def change_pct(self) -> float | None:
        b, f = self.baseline_density, self.followup_density
        if b is None or f is None or b <= 0:
            return None
        return 100.0 * (f / b - 1.0)

    @property
    def within_stated_error(self) -> bool | None:
        """Whether the two densities' stated error bands (±``STATED_REL_ERROR``) overlap."""
        b, f = self.baseline_density, self.followup_density
        if b is None or f is None:
            return None
        return f * (1 - STATED_REL_ERROR) <= b * (1 + STATED_REL_ERROR) and b * (
            1 - STATED_REL_ERROR
        ) <= f * (1 + STATED_REL_ERROR)


@dataclass(frozen=True)
class TrichoscopyReview:
    """The trichoscopy part of a series review.

    * ``densities``: one row per trichoscopy photo: ``session_number, performed_on, photo_id, site,
      auto_count, confirmed_count, auto_density, recorded_density, band_low, band_high, method,
      version, calibration`` (densities hairs/cm², None without a calibrated count; the band is
      ``auto_density × (1 ± rel_error)``).
    * ``manual``: ``session_number, value`` of the manually entered ``hair_density`` endpoint.
    * ``comparisons``: every follow-up photo against its site's baseline.
    """

    densities: pd.DataFrame
    manual: pd.DataFrame
    comparisons: list[SiteComparison]
    rel_error: float = STATED_REL_ERROR
    error_version: str = STATED_ERROR_VERSION
    manual_name: str = "Hair density (manual)"


def _scale_check(
    b: PhotoFollicleCount | None,
    f: PhotoFollicleCount | None,
    cals: dict[int, DeviceCalibration],
    measured: Registration | str | None,
    tol: Tolerances,
) -> SiteCheck:
    bc = None if b is None or b.calibration_id is None else cals.get(b.calibration_id)
    fc = None if f is None or f.calibration_id is None else cals.get(f.calibration_id)
    if bc is not None and fc is not None and b is not None and f is not None:
        bm, fm = float(b.mm_per_px or bc.mm_per_px), float(f.mm_per_px or fc.mm_per_px)
        pct = 100.0 * (fm / bm - 1.0)
        same = bc.id == fc.id or (
            bc.device == fc.device and float(bc.magnification) == float(fc.magnification)
        )
        where = f"{bc.device} {bc.magnification:g}x vs {fc.device} {fc.magnification:g}x"
        if same and abs(pct) <= tol.distance_warn_pct:
            return SiteCheck("scale", "pass", f"same device calibration ({where})")
        status: Status = "fail" if abs(pct) > tol.distance_fail_pct else "warn"
        return SiteCheck(
            "scale",
            status,
            f"different scale: {where}, {bm:.5g} vs {fm:.5g} mm/px ({pct:+.0f} %) — "
            "fine hairs are resolved differently at a different scale; use the baseline's "
            "device and magnification",
        )
    if isinstance(measured, Registration) and measured.ok:
        pct = 100.0 * (measured.scale_ratio - 1.0)
        grade: Status = (
            "pass"
            if abs(pct) <= tol.distance_warn_pct
            else "warn"
            if abs(pct) <= tol.distance_fail_pct
            else "fail"
        )
        return SiteCheck(
            "scale",
            grade,
            f"measured scale (image registration, {measured.n_inliers} matched points): the "
            f"follow-up shows the area {measured.scale_ratio:.2f}× as large ({pct:+.0f} %)",
        )
    why = (
        measured
        if isinstance(measured, str)
        else f"the two images could not be matched ({measured.reason})"
        if isinstance(measured, Registration)
        else "not measured"
    )
    return SiteCheck(
        "scale",
        "warn",
        "scale not checked: count both photos with a device calibration "
        f"(measured scale: {why}); the two may not show the same spot at the same scale",
    )


def _focus_check(b: Photo, f: Photo, tol: Tolerances) -> SiteCheck:
    bs, fs = (p.measurements.get("sharpness") if p.measurements else None for p in (b, f))
    if bs is None or fs is None or not bs or not fs:
        return SiteCheck("focus", "not_assessed", "focus not checked: sharpness was not measured")
    ratio = float(fs) / float(bs)
    if ratio < tol.sharpness_fail_ratio or ratio < tol.sharpness_warn_ratio:
        status: Status = "fail" if ratio < tol.sharpness_fail_ratio else "warn"
        return SiteCheck(
            "focus",
            status,
            f"the follow-up is out of focus (×{ratio:.2f} of the baseline's sharpness): blurred "
            "shafts are missed, so its count reads low — retake it in focus",
        )
    if ratio > 1.0 / tol.sharpness_warn_ratio:
        return SiteCheck(
            "focus",
            "warn",
            f"the baseline is much blurrier than the follow-up (×{ratio:.1f}): its count may "
            "read low, exaggerating any increase",
        )
    return SiteCheck("focus", "pass", f"focus matches the baseline (×{ratio:.2f})")


def _measure_scale(
    session: DbSession, actor: Actor, b: Photo, f: Photo, store: ImageStore | None
) -> Registration | str:
    try:
        pair = [
            _decode_rgb(
                photo_bytes(
                    session, actor, photo_id=p.id, thumbnail=True, max_side=512, store=store
                )
            )
            for p in (b, f)
        ]
    except Exception as exc:  # consent withdrawn, a missing blob...: the check says so
        return f"the photos could not be read ({exc})"
    return register(pair[0], pair[1])


def trichoscopy_review(
    session: DbSession,
    actor: Actor,
    series_id: int,
    *,
    measure_scale: bool = True,
    store: ImageStore | None = None,
) -> TrichoscopyReview:
    """Automated and manual densities of a series, and the same-spot check of every follow-up.

    Needs ``series.read`` (and not a blinded rater of the series); one ``trichoscopy.view``
    event. With ``measure_scale``, a pair without device calibrations on both sides is registered
    (the two photos are read through the audited door) to measure its scale.
    Raises ``LookupError`` when there is no such series.
    """
    require(actor, "series.read", session)
    blinding.require_not_blinded(session, actor, series_id=series_id, action="trichoscopy.view")
    series = session.get(Series, series_id)
    if series is None:
        raise LookupError(f"no series with id {series_id}")
    visits = {
        v.id: v for v in session.scalars(select(Session).where(Session.series_id == series_id))
    }
    photos = sorted(
        (
            p
            for p in session.scalars(select(Photo).where(Photo.session_id.in_(list(visits))))
            if is_trichoscopy_view(p.view)
        ),
        key=lambda p: (visits[p.session_id].number, p.id),
    )
    counts = {
        c.photo_id: c
        for c in session.scalars(
            select(PhotoFollicleCount).where(
                PhotoFollicleCount.photo_id.in_([p.id for p in photos])
            )
        )
    }
    cals = {c.id: c for c in session.scalars(select(DeviceCalibration))}
    rows = []
    for p in photos:
        c = counts.get(p.id)
        auto = None if c is None else c.density_per_cm2
        rec = None if c is None else _record(c).recorded_density_per_cm2
        cal = None if c is None or c.calibration_id is None else cals.get(c.calibration_id)
        rows.append(
            (
                visits[p.session_id].number,
                visits[p.session_id].performed_on,
                p.id,
                p.site or "",
                None if c is None else c.auto_count,
                None if c is None else c.confirmed_count,
                auto,
                rec,
                None if auto is None else auto * (1 - STATED_REL_ERROR),
                None if auto is None else auto * (1 + STATED_REL_ERROR),
                None if c is None else c.method,
                None if c is None else c.version,
                "" if cal is None else _calibration(cal).label,
            )
        )
    densities = pd.DataFrame(
        rows,
        columns=[
            "session_number",
            "performed_on",
            "photo_id",
            "site",
            "auto_count",
            "confirmed_count",
            "auto_density",
            "recorded_density",
            "band_low",
            "band_high",
            "method",
            "version",
            "calibration",
        ],
    )
    manual_def = session.scalar(
        select(EndpointDefinition).where(EndpointDefinition.code == MANUAL_DENSITY_CODE)
    )
    manual_rows = []
    if manual_def is not None:
        for m in session.scalars(
            select(EndpointMeasurement).where(
                EndpointMeasurement.endpoint_id == manual_def.id,
                EndpointMeasurement.session_id.in_(list(visits)),
            )
        ):
            if m.value_num is not None:
                manual_rows.append((visits[m.session_id].number, float(m.value_num)))
    manual = pd.DataFrame(sorted(manual_rows), columns=["session_number", "value"])
    protocol = session.get(Protocol, series.protocol_id)
    tol = Tolerances.from_dict(dict(protocol.tolerances or {}) if protocol else None)
    comparisons: list[SiteComparison] = []
    by_site: dict[str, list[Photo]] = {}
    for p in photos:
        by_site.setdefault(p.site or "", []).append(p)
    for site, group in by_site.items():
        base = group[0]
        for follow in group[1:]:
            if visits[follow.session_id].number == visits[base.session_id].number:
                continue  # a second photo of the baseline session is not a follow-up
            b, f = counts.get(base.id), counts.get(follow.id)
            calibrated = (
                b is not None
                and f is not None
                and b.calibration_id is not None
                and f.calibration_id is not None
            )
            measured = (
                _measure_scale(session, actor, base, follow, store)
                if measure_scale and not calibrated
                else None
            )
            site_check = (
                SiteCheck("site", "pass", f"same site label ({site})")
                if site
                else SiteCheck(
                    "site",
                    "fail",
                    "no site label on these photos: it cannot be told that they show the "
                    "same spot — label them on Capture",
                )
            )
            comparisons.append(
                SiteComparison(
                    site=site,
                    baseline_photo_id=base.id,
                    followup_photo_id=follow.id,
                    baseline_session=visits[base.session_id].number,
                    followup_session=visits[follow.session_id].number,
                    checks=(
                        site_check,
                        _scale_check(b, f, cals, measured, tol),
                        _focus_check(base, follow, tol),
                    ),
                    baseline_density=None if b is None else _record(b).recorded_density_per_cm2,
                    followup_density=None if f is None else _record(f).recorded_density_per_cm2,
                )
            )
    audit.record(
        session,
        actor,
        "trichoscopy.view",
        patient_id=series.patient_id,
        object_type="series",
        object_id=series_id,
        details={"photos": len(photos), "comparisons": len(comparisons)},
    )
    return TrichoscopyReview(
        densities=densities,
        manual=manual,
        comparisons=comparisons,
        manual_name=manual_def.name if manual_def is not None else "Hair density (manual)",
    )
