"""Framing check: where the face (or the registered scalp area) sits in the frame, against
``Tolerances.framing_{warn,fail}_frac`` (and ``scalp_rotation_*`` for scalp views).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analysis.photos.checks.common import _grade, _na, _worst
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances
    from analysis.photos.scalp import Registration


def _face_framing_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    warn, fail = tol.framing_warn_frac, tol.framing_fail_frac
    if f.face_in_frame is False:
        return Check(
            "framing",
            "fail",
            None,
            "frame",
            warn,
            fail,
            "the face is cut off by the frame edge — step back or re-centre the face",
        )
    if (
        b.face_box is None
        or f.face_box is None
        or not (b.width_px and f.width_px and b.height_px and f.height_px)
    ):
        return _na("framing", "face position not measured on both photos")
    cb = _centre_frac(b.face_box, b.width_px, b.height_px)
    cf = _centre_frac(f.face_box, f.width_px, f.height_px)
    dx, dy = cf[0] - cb[0], cf[1] - cb[1]
    shift = float(np.hypot(dx, dy))
    status = _grade(shift, warn, fail)
    details = {"shift_x_frac": dx, "shift_y_frac": dy}
    if status == "pass":
        message = f"face position matches the baseline (shift {shift:.0%} of the frame)"
    else:
        message = f"face sits {_where(dx, dy)} in the frame than in the baseline — re-centre it"
    return Check("framing", status, shift, "frame", warn, fail, message, details)


def _centre_frac(box: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2.0 / w, (y0 + y1) / 2.0 / h


def _where(dx: float, dy: float) -> str:
    parts = []
    if abs(dx) >= 0.02:
        parts.append(f"~{abs(dx):.0%} of the frame further {'right' if dx > 0 else 'left'}")
    if abs(dy) >= 0.02:
        parts.append(f"~{abs(dy):.0%} {'lower' if dy > 0 else 'higher'}")
    return " and ".join(parts) or "slightly elsewhere"


def _register_thumbs(b: PhotoMeasurement, f: PhotoMeasurement) -> Registration | None:
    from analysis.photos.scalp import register

    if b.thumb is None or f.thumb is None:
        return None
    return register(b.thumb, f.thumb)


def _scalp_framing_check(reg: Registration | None, tol: Tolerances) -> Check:
    if reg is None:
        return _na("framing", "scalp framing needs the thumbnails of both photos")
    if not reg.ok:
        return _na(
            "framing",
            f"could not register the two scalp photos: {reg.reason}",
            n_inliers=reg.n_inliers,
        )
    shift = float(np.hypot(reg.shift_x, reg.shift_y))
    s_shift = _grade(shift, tol.framing_warn_frac, tol.framing_fail_frac)
    s_rot = _grade(abs(reg.rotation_deg), tol.scalp_rotation_warn_deg, tol.scalp_rotation_fail_deg)
    status = _worst([s_shift, s_rot])
    advice = []
    if s_shift != "pass":
        advice.append(
            f"the scalp area sits {_where(reg.shift_x, reg.shift_y)} in the frame "
            "than in the baseline — re-aim the camera"
        )
    if s_rot != "pass":
        turn = "clockwise" if reg.rotation_deg > 0 else "counter-clockwise"
        advice.append(
            f"the photo is rotated ~{abs(reg.rotation_deg):.0f}° {turn} relative to "
            "the baseline — hold the camera as in the baseline"
        )
    message = "; ".join(advice) or (
        f"framing matches the baseline (shift {shift:.0%}, rotation {reg.rotation_deg:+.0f}°)"
    )
    return Check(
        "framing",
        status,
        shift,
        "frame",
        tol.framing_warn_frac,
        tol.framing_fail_frac,
        message,
        {
            "shift_x_frac": reg.shift_x,
            "shift_y_frac": reg.shift_y,
            "rotation_deg": reg.rotation_deg,
            "n_inliers": reg.n_inliers,
        },
    )
