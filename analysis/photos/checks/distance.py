"""Distance check: the face-size change (yaw-corrected inter-pupillary distances), or for scalp
views the registration scale, against ``Tolerances.distance_{warn,fail}_pct``; faces are graded on
their range (``analysis.photos.uncertainty.distance_sd_pct``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.photos import uncertainty
from analysis.photos.checks.common import _grade, _missing, _na, _num
from analysis.photos.types import Check, PhotoMeasurement, Status

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances
    from analysis.photos.scalp import Registration


def _distance_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    reason = _missing("distance", "inter-pupillary distance", b.ipd_px, f.ipd_px)
    if reason:
        return _na("distance", reason)
    details: dict[str, Any] = {"ipd_baseline_px": b.ipd_px, "ipd_followup_px": f.ipd_px}
    ratio = float(f.ipd_px) / float(b.ipd_px)  # type: ignore[arg-type]
    note = ""
    if b.width_px and f.width_px and (b.width_px, b.height_px) != (f.width_px, f.height_px):
        ratio *= b.width_px / f.width_px
        note = (
            f" (resolutions differ, {b.width_px}x{b.height_px} vs {f.width_px}x{f.height_px}: "
            "face sizes compared as a share of image width)"
        )
        details["normalised_by"] = "image width"
        details["resolution_note"] = note.strip(" ()")
    if _num(b.distance_mm) is not None and _num(f.distance_mm) is not None:
        details["distance_baseline_mm"] = b.distance_mm
        details["distance_followup_mm"] = f.distance_mm
    details["ipd_ratio"] = ratio
    pct = (ratio - 1.0) * 100.0
    b_ipd, f_ipd = float(b.ipd_px), float(f.ipd_px)  # type: ignore[arg-type]
    if b.width_px and f.width_px and note:
        f_ipd *= b.width_px / f.width_px  # the follow-up's jitter in the baseline's pixel scale
    sd = uncertainty.distance_sd_pct(b_ipd, f_ipd) * ratio
    details["sd_pct"] = sd
    status = uncertainty.grade(abs(pct), sd, tol.distance_warn_pct, tol.distance_fail_pct)
    zoom = _zoom_note(b, f)
    if zoom:
        details["focal_note"] = zoom
    message = _size_message(pct, status, "face") + note
    if status == "warn":
        message = (
            f"borderline: face size {pct:+.1f}% ± {uncertainty.Z_ONE_SIDED * sd:.1f}% "
            "straddles the tolerance — " + message
        )
    if zoom and status != "pass":
        message += f" — {zoom}"
    return Check(
        "distance",
        status,
        pct,
        "%",
        tol.distance_warn_pct,
        tol.distance_fail_pct,
        message,
        details,
        sd,
    )


def _size_message(pct: float, status: Status, what: str) -> str:
    ratio = 1.0 + pct / 100.0
    if status == "pass":
        return f"{what} size matches the baseline ({pct:+.1f}%)"
    if pct > 0:
        closer = (1.0 - 1.0 / ratio) * 100.0
        return (
            f"{what} ~{pct:.0f}% larger than baseline: camera ~{closer:.0f}% closer (or zoomed "
            f"in) — step back ~{pct:.0f}%"
        )
    return (
        f"{what} ~{-pct:.0f}% smaller than baseline: camera ~{1.0 / ratio * 100 - 100:.0f}% "
        f"farther (or zoomed out) — move ~{-pct:.0f}% closer"
    )


def _zoom_note(b: PhotoMeasurement, f: PhotoMeasurement) -> str:
    fb, ff = _num(b.focal_length_35mm), _num(f.focal_length_35mm)
    if fb is None or ff is None or abs(ff / fb - 1.0) < 0.05:
        return ""
    return f"focal length differs ({ff:.0f} vs {fb:.0f} mm equiv.): use the baseline's zoom"


def _scalp_distance_check(reg: Registration | None, tol: Tolerances) -> Check:
    if reg is None:
        return _na("distance", "scalp scale needs the thumbnails of both photos")
    if not reg.ok:
        return _na(
            "distance",
            f"could not register the two scalp photos: {reg.reason}",
            n_inliers=reg.n_inliers,
        )
    pct = (reg.scale_ratio - 1.0) * 100.0
    status = _grade(abs(pct), tol.distance_warn_pct, tol.distance_fail_pct)
    return Check(
        "distance",
        status,
        pct,
        "%",
        tol.distance_warn_pct,
        tol.distance_fail_pct,
        _size_message(pct, status, "scalp area"),
        {
            "scale_ratio": reg.scale_ratio,
            "n_inliers": reg.n_inliers,
            "inlier_share": reg.inlier_share,
        },
    )
