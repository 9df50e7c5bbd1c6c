"""Pose check: yaw, pitch and roll differences, graded on their range (landmark jitter).

Rule: each axis ``|follow-up - baseline|`` against ``Tolerances.{yaw,pitch,roll}_{warn,fail}_deg`` on
``|delta| -/+ 1.645 sd`` (``analysis.photos.uncertainty.pose_sd_deg``); the worst axis is reported,
with advice for every axis that did not pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.photos import uncertainty
from analysis.photos.checks.common import _ORDER, _grade, _missing, _na, _num
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _pose_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    axes = (
        ("yaw", b.yaw_deg, f.yaw_deg, tol.yaw_warn_deg, tol.yaw_fail_deg),
        ("pitch", b.pitch_deg, f.pitch_deg, tol.pitch_warn_deg, tol.pitch_fail_deg),
        ("roll", b.roll_deg, f.roll_deg, tol.roll_warn_deg, tol.roll_fail_deg),
    )
    details: dict[str, Any] = {}
    graded = []
    missing = []
    sd = None
    if _num(b.ipd_px) and _num(f.ipd_px) and b.ipd_px > 0 and f.ipd_px > 0:  # type: ignore[operator]
        sd = uncertainty.pose_sd_deg(float(b.ipd_px), float(f.ipd_px))  # type: ignore[arg-type]
        details["sd_deg"] = sd
    for axis, bv, fv, warn, fail in axes:
        reason = _missing(axis, axis, bv, fv)
        if reason:
            missing.append(reason)
            continue
        delta = _num(fv) - _num(bv)  # type: ignore[operator]
        details[f"delta_{axis}_deg"] = delta
        status = (
            uncertainty.grade(abs(delta), sd, warn, fail)
            if sd is not None
            else _grade(abs(delta), warn, fail)
        )
        graded.append((status, abs(delta) / warn, axis, delta, warn, fail))
    if not graded:
        return _na("pose", "; ".join(missing))
    cam_b, cam_f = _num(b.yaw_camera_deg), _num(f.yaw_camera_deg)
    if (
        cam_b is not None and cam_f is not None
    ):  # shown beside the graded yaw, not graded (see measure)
        details["delta_yaw_camera_deg"] = cam_f - cam_b
    graded.sort(key=lambda g: (_ORDER[g[0]], g[1]), reverse=True)
    status, _, axis, delta, warn, fail = graded[0]
    advice = [_pose_advice(a, d) for s, _, a, d, _, _ in graded if s != "pass"]
    if advice:
        message = "; ".join(advice)
    else:
        message = (
            "pose matches the baseline ("
            + ", ".join(f"Δ{a} {d:+.1f}°" for _, _, a, d, _, _ in graded)
            + (f", ±{uncertainty.Z_ONE_SIDED * sd:.1f}°" if sd is not None else "")
            + ")"
        )
    if missing:
        message += " (" + "; ".join(missing) + ")"
        details["missing"] = "; ".join(missing)
    details["worst_axis"] = axis
    if status == "warn" and sd is not None:
        message = (
            f"borderline: Δ{axis} {delta:+.1f}° ± {uncertainty.Z_ONE_SIDED * sd:.1f}° "
            f"straddles the tolerance — " + message
        )
    return Check("pose", status, delta, "deg", warn, fail, message, details, sd)


def _pose_advice(axis: str, delta: float) -> str:
    d = abs(delta)
    if axis == "yaw":
        side, back = ("left", "right") if delta > 0 else ("right", "left")
        image = "right" if delta > 0 else "left"
        return (
            f"head turned ~{d:.0f}° further to the patient's {side} (nose toward the image "
            f"{image}) than baseline — ask them to turn ~{d:.0f}° to their {back}"
        )
    if axis == "pitch":
        if delta > 0:
            return f"chin ~{d:.0f}° higher than baseline — ask them to lower the chin ~{d:.0f}°"
        return f"chin ~{d:.0f}° lower than baseline — ask them to raise the chin ~{d:.0f}°"
    shoulder, back = ("left", "right") if delta > 0 else ("right", "left")
    turn = "clockwise" if delta > 0 else "counter-clockwise"
    return (
        f"head tilted ~{d:.0f}° {turn} in the image (toward the patient's {shoulder} "
        f"shoulder) versus baseline — ask them to level the head, ~{d:.0f}° toward their "
        f"{back} shoulder"
    )
