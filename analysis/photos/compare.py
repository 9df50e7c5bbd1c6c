"""Compare a follow-up photo with its baseline and tell the photographer what to change.

Each dimension becomes a :class:`~analysis.photos.types.Check` graded against :class:`Tolerances`:
``pass`` when ``|value| <= warn``, ``warn`` when ``<= fail``, else ``fail``; ``not_assessed`` when a
figure is missing on either photo or does not apply to the view (pose and expression on scalp
views). Checks whose figures carry a measurement uncertainty (pose, distance, and the lighting
direction, exposure and colour: ``PhotoMeasurement.light_side_sd`` / ``exposure_sd_l`` /
``color_sd_ab``, see :mod:`analysis.photos.lighting`) are graded on ``|value| -/+ 1.645 sd``
instead (:func:`analysis.photos.uncertainty.grade`), with ``warn`` shown as borderline with the
figure and its range; a measurement without them (an older record) keeps the plain thresholds. The verdict is the worst status; ``not_assessed`` never fails a comparison, but a photo that
could not be measured (``ok`` False, or no face on a face view) fails it with the reason.

Signs (see ``types.py``): ``yaw > 0`` = nose toward the image right = the *patient's left* for a
patient facing the camera; ``pitch > 0`` = chin up; ``roll > 0`` = clockwise in the image = head
tilted toward the patient's left shoulder; ``light_side > 0`` = image-right half brighter = light
from the patient's left. All differences are follow-up minus baseline.

Definitions
-----------
* distance: ratio of the (yaw-corrected) inter-pupillary distances, follow-up / baseline, reported
  as the face-size change in %; ipd is divided by the image width when the resolutions differ.
  Scalp views use the registration scale ratio (``analysis.photos.scalp.register``) instead.
* exposure: Delta L* of the median skin L*, also expressed in EV via CIE Y = ((L*+16)/116)^3.
* color: CIEDE2000 (Sharma et al., 2005) between the median skin Lab colours after re-exposing the
  follow-up's colour (its CIE XYZ scaled) to the baseline's luminance, so that exposure is judged
  only once and a pure exposure change gives 0 (chromatic difference: white balance or colour
  cast). A real change of skin colour (redness) also moves it.
* sharpness: ratio of the sharpness figures (higher = sharper, see ``sharpness.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np
from skimage.color import deltaE_ciede2000, lab2xyz, xyz2lab

from analysis.photos import uncertainty
from analysis.photos.types import Check, Comparison, PhotoMeasurement, Status, is_scalp_view

_ORDER = {"pass": 0, "not_assessed": 0, "warn": 1, "fail": 2}

# Backlight: how much more the background beside and above the face may outshine the face than in
# the baseline, in L*. 15 is about 1 EV at the mid-tones of a face (L* 50 -> 65 doubles the
# luminance), 30 about 2 EV; below that a change of room or wall is ordinary.
BACKLIGHT_WARN_DL = 15.0
BACKLIGHT_FAIL_DL = 30.0


@dataclass(frozen=True)
class Tolerances:
    """Thresholds of every check. A check warns above ``*_warn`` and fails above ``*_fail``.

    Defaults follow common clinical-photography practice: pose within 5 deg (roll 3 deg), camera
    distance within 5%, and "fail" at about double. ``light_side_*`` are in the units of
    ``lighting.light_side`` (for a purely directional light, sin(azimuth) cos(elevation)): a change
    of the light's azimuth by about 13 deg warns (sin 13 deg = 0.22) and by about 26 deg fails; set
    on that principle, half-way between a 5 deg change that must pass and a 25 deg change that must
    be flagged, and checked on the Extended Yale B development subjects
    (``benchmarks/lighting_accuracy.py``). The backlight check's thresholds are the module
    constants ``BACKLIGHT_WARN_DL`` / ``BACKLIGHT_FAIL_DL`` (not yet per protocol).
    """

    yaw_warn_deg: float = 5.0
    yaw_fail_deg: float = 10.0
    pitch_warn_deg: float = 5.0
    pitch_fail_deg: float = 10.0
    roll_warn_deg: float = 3.0
    roll_fail_deg: float = 6.0
    distance_warn_pct: float = 5.0  # face-size change, %
    distance_fail_pct: float = 10.0
    framing_warn_frac: float = 0.10  # face/scalp centre shift, share of the frame
    framing_fail_frac: float = 0.20
    scalp_rotation_warn_deg: float = 10.0
    scalp_rotation_fail_deg: float = 20.0
    exposure_warn_dl: float = 6.0  # Delta L* (about 0.4 EV at mid-tones)
    exposure_fail_dl: float = 12.0  # about 0.9 EV
    clipped_warn_share: float = 0.02  # increase of the clipped share of the skin (0-1)
    clipped_fail_share: float = 0.10
    color_warn_de: float = 4.0  # CIEDE2000, chromatic
    color_fail_de: float = 8.0
    light_side_warn: float = 0.22  # Delta light_side; sin(13 deg)
    light_side_fail: float = 0.44  # sin(26 deg)
    lighting_min_exposure_l: float = 15.0  # median skin L* below which no direction is trusted
    eye_open_warn: float = 0.06  # Delta eye aspect ratio
    eye_open_fail: float = 0.12
    mouth_open_warn: float = 0.08  # Delta inner-lip gap / mouth width
    mouth_open_fail: float = 0.20
    smile_warn: float = 0.04  # Delta corner lift / mouth width
    smile_fail: float = 0.08
    sharpness_warn_ratio: float = 0.7  # follow-up / baseline below this warns (or above 1/this)
    sharpness_fail_ratio: float = 0.45  # below this fails (a sharper follow-up only warns)
    resolution_warn_ratio: float = 0.6  # follow-up / baseline pixels across the face (scalp: frame)
    resolution_fail_ratio: float = 0.35
    min_ipd_px: float = 40.0  # fewer pixels between the pupils cannot show skin or hair texture

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(f"tolerance {f.name} must be a positive number, got {value!r}")
        for f in fields(self):
            if f.name.endswith("_warn_ratio"):
                fail = getattr(self, f.name.replace("_warn_", "_fail_"))
                if not getattr(self, f.name) >= fail or getattr(self, f.name) > 1:
                    raise ValueError(f"{f.name} must be <= 1 and >= the matching fail ratio")
            elif "_warn" in f.name:
                fail_name = f.name.replace("_warn", "_fail")
                if getattr(self, f.name) > getattr(self, fail_name):
                    raise ValueError(f"{f.name} must not exceed {fail_name}")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None) -> "Tolerances":
        """Defaults with a protocol's overrides; unknown keys raise ``ValueError`` naming them."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown tolerance(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for k, v in overrides.items()})


def compare(
    baseline: PhotoMeasurement,
    followup: PhotoMeasurement,
    *,
    tolerances: Tolerances | None = None,
) -> Comparison:
    """Grade a follow-up photo against its baseline.

    Parameters
    ----------
    baseline, followup : PhotoMeasurement
        Measurements of the two photos (``analysis.photos.measure``).
    tolerances : Tolerances, optional
        Thresholds; the defaults when omitted.

    Returns
    -------
    Comparison
        Checks named ``measurement``, ``view``, ``pose``, ``distance``, ``framing``, ``lighting``,
        ``backlight``,
        ``exposure``, ``color``, ``expression``, ``sharpness``, ``resolution``; verdict = worst
        status.
    """
    tol = tolerances or Tolerances()
    view = followup.view or baseline.view
    scalp = is_scalp_view(view)
    problem = _measurement_problem(baseline, "baseline", scalp) or _measurement_problem(
        followup, "follow-up", scalp
    )
    if problem:
        checks = [Check("measurement", "fail", None, "", None, None, problem)]
        checks += [_na(name, "not assessed: " + problem) for name in _CHECK_NAMES]
        return _finish(checks)
    checks = [Check("measurement", "pass", None, "", None, None, "both photos were measured")]
    checks.append(_view_check(baseline, followup))
    checks += _geometry_checks(baseline, followup, tol, scalp)
    checks.append(_lighting_check(baseline, followup, tol, scalp))
    checks.append(_backlight_check(baseline, followup, tol, scalp))
    checks.append(_exposure_check(baseline, followup, tol))
    checks.append(_color_check(baseline, followup, tol))
    checks.append(_expression_check(baseline, followup, tol, scalp))
    checks.append(_sharpness_check(baseline, followup, tol))
    checks.append(_resolution_check(baseline, followup, tol, scalp))
    return _finish(checks)


_CHECK_NAMES = (
    "view", "pose", "distance", "framing", "lighting", "backlight", "exposure", "color", "expression",
    "sharpness", "resolution",
)


# --------------------------------------------------------------------------- helpers


def _grade(magnitude: float, warn: float, fail: float) -> Status:
    if magnitude > fail:
        return "fail"
    return "warn" if magnitude > warn else "pass"


def _pair_sd(b: Any, f: Any) -> float | None:
    """Standard deviation of a follow-up minus baseline difference: the two photos' own s.d. in
    quadrature; ``None`` (the plain thresholds) when neither photo carries one (older records)."""
    sds = [v for v in (_num(b), _num(f)) if v is not None and v >= 0]
    if not sds:
        return None
    return float(math.hypot(*sds)) if len(sds) == 2 else float(sds[0] * math.sqrt(2.0))


def _grade_sd(magnitude: float, sd: float | None, warn: float, fail: float) -> Status:
    if sd is None:
        return _grade(magnitude, warn, fail)
    return uncertainty.grade(magnitude, sd, warn, fail)


def _borderline(what: str, value: float, sd: float, unit: str, digits: int) -> str:
    k_sd = uncertainty.Z_ONE_SIDED * sd
    return (f"borderline: {what} {value:+.{digits}f}{unit} ± {k_sd:.{digits}f}{unit} straddles the "
            "tolerance — ")


def _worst(statuses: list[Status]) -> Status:
    real = [s for s in statuses if s != "not_assessed"]
    if not real:
        return "not_assessed"
    return max(real, key=lambda s: _ORDER[s])


def _na(name: str, message: str, **details: Any) -> Check:
    return Check(name, "not_assessed", None, "", None, None, message, dict(details))


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _missing(name: str, label: str, b: Any, f: Any) -> str | None:
    """Reason text when a figure is missing on either photo, else None."""
    where = [w for w, v in (("baseline", b), ("follow-up", f)) if _num(v) is None]
    if not where:
        return None
    return f"{label} not measured on the {' and '.join(where)} photo"


def _finish(checks: list[Check]) -> Comparison:
    worst = _worst([c.status for c in checks])
    verdict = "pass" if worst == "not_assessed" else worst
    by_status: dict[str, list[str]] = {}
    for c in checks:
        by_status.setdefault(c.status, []).append(c.name)
    parts = []
    if by_status.get("fail"):
        parts.append(", ".join(by_status["fail"]) + " fail")
    if by_status.get("warn"):
        parts.append(", ".join(by_status["warn"]) + " warn")
    if not parts:
        parts.append("follow-up matches the baseline")
    if by_status.get("not_assessed"):
        parts.append("not assessed: " + ", ".join(by_status["not_assessed"]))
    summary = f"{verdict.upper()}: " + "; ".join(parts)
    return Comparison(verdict=verdict, checks=checks, summary=summary)


def _measurement_problem(m: PhotoMeasurement, label: str, scalp: bool) -> str | None:
    if not m.ok:
        return f"the {label} photo could not be measured: {m.error or 'unknown error'}"
    if not scalp and not m.face_found:
        hint = " (for a scalp photo, choose a scalp view)" if m.view is None else ""
        return f"no face was found on the {label} photo{': ' + m.error if m.error else ''}{hint}"
    return None


def _view_check(b: PhotoMeasurement, f: PhotoMeasurement) -> Check:
    if b.view is None or f.view is None:
        return _na("view", "view not recorded on both photos", baseline=b.view, followup=f.view)
    if b.view != f.view:
        return Check("view", "fail", None, "", None, None,
                     f"follow-up is a {f.view} view but the baseline is {b.view} — retake the "
                     "baseline's view", {"baseline": b.view, "followup": f.view})
    return Check("view", "pass", None, "", None, None, f"same view ({f.view})")


# --------------------------------------------------------------------------- geometry


def _geometry_checks(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> list[Check]:
    if scalp:
        reg = _register_thumbs(b, f)
        return [
            _na("pose", "pose is not assessed on scalp views (no face); framing and scale are "
                "compared by image registration instead"),
            _scalp_distance_check(reg, tol),
            _scalp_framing_check(reg, tol),
        ]
    return [_pose_check(b, f, tol), _distance_check(b, f, tol), _face_framing_check(b, f, tol)]


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
        status = (uncertainty.grade(abs(delta), sd, warn, fail) if sd is not None
                  else _grade(abs(delta), warn, fail))
        graded.append((status, abs(delta) / warn, axis, delta, warn, fail))
    if not graded:
        return _na("pose", "; ".join(missing))
    graded.sort(key=lambda g: (_ORDER[g[0]], g[1]), reverse=True)
    status, _, axis, delta, warn, fail = graded[0]
    advice = [_pose_advice(a, d) for s, _, a, d, _, _ in graded if s != "pass"]
    if advice:
        message = "; ".join(advice)
    else:
        message = "pose matches the baseline (" + ", ".join(
            f"Δ{a} {d:+.1f}°" for _, _, a, d, _, _ in graded) + (
            f", ±{uncertainty.Z_ONE_SIDED * sd:.1f}°" if sd is not None else "") + ")"
    if missing:
        message += " (" + "; ".join(missing) + ")"
        details["missing"] = "; ".join(missing)
    details["worst_axis"] = axis
    if status == "warn" and sd is not None:
        message = (f"borderline: Δ{axis} {delta:+.1f}° ± {uncertainty.Z_ONE_SIDED * sd:.1f}° "
                   f"straddles the tolerance — " + message)
    return Check("pose", status, delta, "deg", warn, fail, message, details, sd)


def _pose_advice(axis: str, delta: float) -> str:
    d = abs(delta)
    if axis == "yaw":
        side, back = ("left", "right") if delta > 0 else ("right", "left")
        image = "right" if delta > 0 else "left"
        return (f"head turned ~{d:.0f}° further to the patient's {side} (nose toward the image "
                f"{image}) than baseline — ask them to turn ~{d:.0f}° to their {back}")
    if axis == "pitch":
        if delta > 0:
            return f"chin ~{d:.0f}° higher than baseline — ask them to lower the chin ~{d:.0f}°"
        return f"chin ~{d:.0f}° lower than baseline — ask them to raise the chin ~{d:.0f}°"
    shoulder, back = ("left", "right") if delta > 0 else ("right", "left")
    turn = "clockwise" if delta > 0 else "counter-clockwise"
    return (f"head tilted ~{d:.0f}° {turn} in the image (toward the patient's {shoulder} "
            f"shoulder) versus baseline — ask them to level the head, ~{d:.0f}° toward their "
            f"{back} shoulder")


def _distance_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    reason = _missing("distance", "inter-pupillary distance", b.ipd_px, f.ipd_px)
    if reason:
        return _na("distance", reason)
    details: dict[str, Any] = {"ipd_baseline_px": b.ipd_px, "ipd_followup_px": f.ipd_px}
    ratio = float(f.ipd_px) / float(b.ipd_px)  # type: ignore[arg-type]
    note = ""
    if b.width_px and f.width_px and (b.width_px, b.height_px) != (f.width_px, f.height_px):
        ratio *= b.width_px / f.width_px
        note = (f" (resolutions differ, {b.width_px}x{b.height_px} vs {f.width_px}x{f.height_px}: "
                "face sizes compared as a share of image width)")
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
        message = (f"borderline: face size {pct:+.1f}% ± {uncertainty.Z_ONE_SIDED * sd:.1f}% "
                   "straddles the tolerance — " + message)
    if zoom and status != "pass":
        message += f" — {zoom}"
    return Check("distance", status, pct, "%", tol.distance_warn_pct, tol.distance_fail_pct,
                 message, details, sd)


def _size_message(pct: float, status: Status, what: str) -> str:
    ratio = 1.0 + pct / 100.0
    if status == "pass":
        return f"{what} size matches the baseline ({pct:+.1f}%)"
    if pct > 0:
        closer = (1.0 - 1.0 / ratio) * 100.0
        return (f"{what} ~{pct:.0f}% larger than baseline: camera ~{closer:.0f}% closer (or zoomed "
                f"in) — step back ~{pct:.0f}%")
    return (f"{what} ~{-pct:.0f}% smaller than baseline: camera ~{1.0 / ratio * 100 - 100:.0f}% "
            f"farther (or zoomed out) — move ~{-pct:.0f}% closer")


def _zoom_note(b: PhotoMeasurement, f: PhotoMeasurement) -> str:
    fb, ff = _num(b.focal_length_35mm), _num(f.focal_length_35mm)
    if fb is None or ff is None or abs(ff / fb - 1.0) < 0.05:
        return ""
    return f"focal length differs ({ff:.0f} vs {fb:.0f} mm equiv.): use the baseline's zoom"


def _face_framing_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    warn, fail = tol.framing_warn_frac, tol.framing_fail_frac
    if f.face_in_frame is False:
        return Check("framing", "fail", None, "frame", warn, fail,
                     "the face is cut off by the frame edge — step back or re-centre the face")
    if b.face_box is None or f.face_box is None or not (b.width_px and f.width_px
                                                        and b.height_px and f.height_px):
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


def _register_thumbs(b: PhotoMeasurement, f: PhotoMeasurement):
    from analysis.photos.scalp import register

    if b.thumb is None or f.thumb is None:
        return None
    return register(b.thumb, f.thumb)


def _scalp_distance_check(reg, tol: Tolerances) -> Check:
    if reg is None:
        return _na("distance", "scalp scale needs the thumbnails of both photos")
    if not reg.ok:
        return _na("distance", f"could not register the two scalp photos: {reg.reason}",
                   n_inliers=reg.n_inliers)
    pct = (reg.scale_ratio - 1.0) * 100.0
    status = _grade(abs(pct), tol.distance_warn_pct, tol.distance_fail_pct)
    return Check("distance", status, pct, "%", tol.distance_warn_pct, tol.distance_fail_pct,
                 _size_message(pct, status, "scalp area"),
                 {"scale_ratio": reg.scale_ratio, "n_inliers": reg.n_inliers,
                  "inlier_share": reg.inlier_share})


def _scalp_framing_check(reg, tol: Tolerances) -> Check:
    if reg is None:
        return _na("framing", "scalp framing needs the thumbnails of both photos")
    if not reg.ok:
        return _na("framing", f"could not register the two scalp photos: {reg.reason}",
                   n_inliers=reg.n_inliers)
    shift = float(np.hypot(reg.shift_x, reg.shift_y))
    s_shift = _grade(shift, tol.framing_warn_frac, tol.framing_fail_frac)
    s_rot = _grade(abs(reg.rotation_deg), tol.scalp_rotation_warn_deg, tol.scalp_rotation_fail_deg)
    status = _worst([s_shift, s_rot])
    advice = []
    if s_shift != "pass":
        advice.append(f"the scalp area sits {_where(reg.shift_x, reg.shift_y)} in the frame "
                      "than in the baseline — re-aim the camera")
    if s_rot != "pass":
        turn = "clockwise" if reg.rotation_deg > 0 else "counter-clockwise"
        advice.append(f"the photo is rotated ~{abs(reg.rotation_deg):.0f}° {turn} relative to "
                      "the baseline — hold the camera as in the baseline")
    message = "; ".join(advice) or (
        f"framing matches the baseline (shift {shift:.0%}, rotation {reg.rotation_deg:+.0f}°)")
    return Check("framing", status, shift, "frame", tol.framing_warn_frac, tol.framing_fail_frac,
                 message, {"shift_x_frac": reg.shift_x, "shift_y_frac": reg.shift_y,
                           "rotation_deg": reg.rotation_deg, "n_inliers": reg.n_inliers})


# --------------------------------------------------------------------------- appearance


def _lighting_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
    if scalp:
        return _na("lighting", "light direction is not assessed on scalp views; exposure and "
                   "white balance are")
    reason = _missing("lighting", "light direction", b.light_side, f.light_side)
    if reason:
        return _na("lighting", reason)
    bv, fv = float(b.light_side), float(f.light_side)  # type: ignore[arg-type]
    delta = fv - bv
    sd = _pair_sd(b.light_side_sd, f.light_side_sd)
    status = _grade_sd(abs(delta), sd, tol.light_side_warn, tol.light_side_fail)
    details: dict[str, Any] = {"light_side_baseline": bv, "light_side_followup": fv}
    if sd is not None:
        details["sd_light_side"] = sd
    darkest = min((v for v in (_num(b.exposure_l), _num(f.exposure_l)) if v is not None),
                  default=None)
    if status == "pass" and darkest is not None and darkest < tol.lighting_min_exposure_l:
        # a near-black face (e.g. lit from behind) shows no usable shading: do not vouch for it
        status = "warn"
        message = (f"the face is too dark (median L* {darkest:.0f}) to confirm the light "
                   "direction — light the face as in the baseline")
        if (_num(f.backlight_dl) or 0.0) > BACKLIGHT_WARN_DL:
            message += " (it is darker than its background: see the backlight check)"
    elif status == "pass":
        message = f"light direction matches the baseline (Δ{delta:+.2f}" + (
            f" ± {uncertainty.Z_ONE_SIDED * sd:.2f})" if sd is not None else ")")
    else:
        side, image = ("left", "right") if delta > 0 else ("right", "left")
        message = (f"light now comes more from the patient's {side} (image {image}) than in the "
                   f"baseline (light direction {bv:+.2f} → {fv:+.2f}) — move the light or "
                   "the patient to match the baseline")
        if status == "warn" and sd is not None:
            message = _borderline("light direction Δ", delta, sd, "", 2) + message
    return Check("lighting", status, delta, "light_side", tol.light_side_warn,
                 tol.light_side_fail, message, details, sd)


def _backlight_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
    """A face darker than what is behind it (a window behind the patient), against the baseline.

    ``value`` = follow-up minus baseline of ``backlight_dl`` (background L* minus face L*); only a
    rise counts, and only when the follow-up's background is brighter than its face.
    """
    warn, fail = BACKLIGHT_WARN_DL, BACKLIGHT_FAIL_DL
    if scalp:
        return _na("backlight", "backlight is not assessed on scalp views")
    reason = _missing("backlight", "background beside the face", b.backlight_dl, f.backlight_dl)
    if reason:
        return _na("backlight", reason + " (the face fills the frame, or an older record)")
    bd, fd = float(b.backlight_dl), float(f.backlight_dl)  # type: ignore[arg-type]
    delta = fd - bd
    sd = _pair_sd(b.backlight_sd_l, f.backlight_sd_l)
    rise = delta if fd > 0 else 0.0
    status = _grade_sd(max(rise, 0.0), sd, warn, fail)
    details: dict[str, Any] = {"backlight_dl_baseline": bd, "backlight_dl_followup": fd}
    if sd is not None:
        details["sd_l"] = sd
    if status == "pass":
        message = (f"no backlight beyond the baseline's (background {fd:+.0f} L* against the "
                   f"face, baseline {bd:+.0f})")
    else:
        message = (f"backlit: the background is {fd:.0f} L* brighter than the face ({bd:+.0f} in "
                   "the baseline), so the face is under-exposed against it — turn the patient "
                   "away from the window (or close the blind), light the face from the front")
        if status == "warn" and sd is not None:
            message = _borderline("backlight rise", delta, sd, " L*", 0) + message
    return Check("backlight", status, delta, "L*", warn, fail, message, details, sd)


def _l_to_y(l_star: float) -> float:
    """CIE relative luminance Y (0-1) of a CIE L* value (inverse of the CIE 1976 formula)."""
    if l_star > 8.0:
        return ((l_star + 16.0) / 116.0) ** 3
    return max(l_star, 1e-3) / 903.3


def _exposure_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    reason = _missing("exposure", "exposure", b.exposure_l, f.exposure_l)
    if reason:
        return _na("exposure", reason)
    bl, fl = float(b.exposure_l), float(f.exposure_l)  # type: ignore[arg-type]
    delta = fl - bl
    ev = math.log2(_l_to_y(fl) / _l_to_y(bl))
    sd = _pair_sd(b.exposure_sd_l, f.exposure_sd_l)
    status = _grade_sd(abs(delta), sd, tol.exposure_warn_dl, tol.exposure_fail_dl)
    details: dict[str, Any] = {"exposure_l_baseline": bl, "exposure_l_followup": fl, "delta_ev": ev}
    if sd is not None:
        details["sd_l"] = sd
    advice = []
    if status != "pass":
        what = "darker" if delta < 0 else "brighter"
        fix = "add light or raise the exposure" if delta < 0 else "reduce light or exposure"
        advice.append((_borderline("ΔL*", delta, sd, "", 1) if status == "warn" and sd else "")
                      + f"photo {abs(ev):.1f} EV {what} than baseline (median L* {bl:.0f} → "
                      f"{fl:.0f}) — {fix} to match")
    cb, cf = _num(b.clipped_share), _num(f.clipped_share)
    if cb is not None and cf is not None:
        details["clipped_share_baseline"] = cb
        details["clipped_share_followup"] = cf
        s_clip = _grade(cf - cb, tol.clipped_warn_share, tol.clipped_fail_share)
        if s_clip != "pass":
            advice.append(f"{cf:.0%} of the measured area is clipped to pure white or black "
                          f"({cb:.0%} in the baseline) — avoid direct flash/over-exposure")
        status = _worst([status, s_clip])
    message = "; ".join(advice) or f"exposure matches the baseline ({ev:+.1f} EV; ΔL* {delta:+.1f}" + (
        f" ± {uncertainty.Z_ONE_SIDED * sd:.1f})" if sd is not None else ")")
    return Check("exposure", status, delta, "L*", tol.exposure_warn_dl, tol.exposure_fail_dl,
                 message, details, sd)


def _color_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    if b.lab_median is None or f.lab_median is None or not all(
        _num(v) is not None for v in (*b.lab_median, *f.lab_median)
    ):
        where = [w for w, m in (("baseline", b), ("follow-up", f)) if m.lab_median is None]
        return _na("color", f"colour not measured on the {' and '.join(where) or 'two'} photo(s)")
    lb = np.array(b.lab_median, float)
    lf = np.array(f.lab_median, float)
    de = float(deltaE_ciede2000(lb, _match_luminance(lf, lb)))
    sd_ab = _pair_sd(b.color_sd_ab, f.color_sd_ab)
    sd = None if sd_ab is None else sd_ab * _de00_per_ab(lb)
    status = _grade_sd(de, sd, tol.color_warn_de, tol.color_fail_de)
    da, db = float(lf[1] - lb[1]), float(lf[2] - lb[2])
    details: dict[str, Any] = {"delta_a": da, "delta_b": db,
                               "delta_e_full": float(deltaE_ciede2000(lb, lf))}
    if sd is not None:
        details["sd_de00"] = sd
    if status == "pass":
        message = f"colour matches the baseline (ΔE00 {de:.1f}" + (
            f" ± {uncertainty.Z_ONE_SIDED * sd:.1f})" if sd is not None else ")")
    else:
        cast = []
        if abs(db) >= 1.0:
            cast.append("warmer/yellower" if db > 0 else "cooler/bluer")
        if abs(da) >= 1.0:
            cast.append("redder/magenta" if da > 0 else "greener")
        shift = " and ".join(cast) or "shifted"
        message = (f"white balance differs (ΔE {de:.0f}; follow-up {shift})"
                   " — use the same light and white balance as the baseline (unless the skin "
                   "colour itself changed)")
        if status == "warn" and sd is not None:
            message = (f"borderline: ΔE00 {de:.1f} ± {uncertainty.Z_ONE_SIDED * sd:.1f} straddles "
                       "the tolerance — " + message)
    return Check("color", status, de, "dE00", tol.color_warn_de, tol.color_fail_de, message,
                 details, sd)


def _de00_per_ab(lab: np.ndarray) -> float:
    """CIEDE2000 per unit of a*/b* displacement at the colour ``lab`` (mean of the two axes).

    Converts the per-axis s.d. of the median a*/b* into the check's ΔE00 units (first order).
    """
    step = 0.5
    d_a = float(deltaE_ciede2000(lab, lab + [0.0, step, 0.0]))
    d_b = float(deltaE_ciede2000(lab, lab + [0.0, 0.0, step]))
    return (d_a + d_b) / (2.0 * step)


def _match_luminance(lab: np.ndarray, reference_lab: np.ndarray) -> np.ndarray:
    """``lab`` re-exposed (CIE XYZ scaled) so its luminance Y equals ``reference_lab``'s.

    A pure exposure change scales XYZ, so after this the colour difference is chromatic only.
    """
    xyz = lab2xyz(lab.reshape(1, 1, 3)).reshape(3)
    y_ref = lab2xyz(reference_lab.reshape(1, 1, 3)).reshape(3)[1]
    if xyz[1] <= 0:
        return np.array([reference_lab[0], lab[1], lab[2]])
    return xyz2lab((xyz * (y_ref / xyz[1])).reshape(1, 1, 3)).reshape(3)


def _expression_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
    if scalp:
        return _na("expression", "expression is not assessed on scalp views")
    parts = (
        ("eye_open", b.eye_open, f.eye_open, tol.eye_open_warn, tol.eye_open_fail,
         ("eyes wider open than baseline — ask for relaxed, naturally open eyes",
          "eyes more closed than baseline — ask the patient to open the eyes naturally")),
        ("mouth_open", b.mouth_open, f.mouth_open, tol.mouth_open_warn, tol.mouth_open_fail,
         ("mouth more open than baseline — ask them to close the lips gently",
          "mouth more closed than baseline — match the baseline's relaxed lips")),
        ("smile", b.smile, f.smile, tol.smile_warn, tol.smile_fail,
         ("smiling more than baseline — ask for the baseline's neutral expression",
          "less smile than baseline — match the baseline's expression")),
    )
    graded, missing, details = [], [], {}
    for name, bv, fv, warn, fail, texts in parts:
        reason = _missing(name, name.replace("_", " "), bv, fv)
        if reason:
            missing.append(reason)
            continue
        delta = float(fv) - float(bv)
        details[f"delta_{name}"] = delta
        graded.append((_grade(abs(delta), warn, fail), abs(delta) / warn, name, delta, warn,
                       fail, texts[0] if delta > 0 else texts[1]))
    if not graded:
        return _na("expression", "; ".join(missing))
    graded.sort(key=lambda g: (_ORDER[g[0]], g[1]), reverse=True)
    status, _, name, delta, warn, fail, _ = graded[0]
    advice = [g[6] for g in graded if g[0] != "pass"]
    message = "; ".join(advice) or "expression matches the baseline"
    if missing:
        message += " (" + "; ".join(missing) + ")"
    details["worst"] = name
    return Check("expression", status, delta, "ratio", warn, fail, message, details)


def _sharpness_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    reason = _missing("sharpness", "sharpness", b.sharpness, f.sharpness)
    if reason:
        return _na("sharpness", reason)
    bs, fs = float(b.sharpness), float(f.sharpness)  # type: ignore[arg-type]
    if bs <= 0 or fs <= 0:
        return _na("sharpness", "sharpness is zero on a photo (blank image?)")
    ratio = fs / bs
    status = _grade(1.0 / ratio, 1.0 / tol.sharpness_warn_ratio, 1.0 / tol.sharpness_fail_ratio)
    details = {"sharpness_baseline": bs, "sharpness_followup": fs}
    if status != "pass":
        message = (f"follow-up is blurrier than baseline (×{ratio:.2f} of its sharpness) — hold "
                   "still, focus on the face/scalp, use more light")
    elif ratio > 1.0 / tol.sharpness_warn_ratio:
        status = "warn"
        message = (f"follow-up is much sharper than baseline (×{ratio:.1f}) — fine texture will "
                   "look different; match the baseline's camera and focus")
    else:
        message = f"sharpness matches the baseline (×{ratio:.2f})"
    return Check("sharpness", status, ratio, "x", tol.sharpness_warn_ratio,
                 tol.sharpness_fail_ratio, message, details)


def _resolution_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances,
                      scalp: bool) -> Check:
    """Pixels across the face (inter-pupillary distance in each file's own pixels) or, for scalp
    views, across the frame: a follow-up with far fewer cannot show the same fine texture, whatever
    the distance (e.g. a photo shrunk by a messaging app). Also an absolute floor for faces."""
    warn, fail = tol.resolution_warn_ratio, tol.resolution_fail_ratio
    if scalp:
        if not (b.width_px and b.height_px and f.width_px and f.height_px):
            return _na("resolution", "image size not known on both photos")
        bs = math.sqrt(float(b.width_px) * float(b.height_px))
        fs = math.sqrt(float(f.width_px) * float(f.height_px))
        what = "across the frame"
        unit_text = f"{f.width_px}x{f.height_px} vs {b.width_px}x{b.height_px}"
    else:
        reason = _missing("resolution", "inter-pupillary distance", b.ipd_px, f.ipd_px)
        if reason:
            return _na("resolution", reason)
        bs, fs = float(b.ipd_px), float(f.ipd_px)  # type: ignore[arg-type]
        what, unit_text = "across the face", f"eyes {fs:.0f} px apart vs {bs:.0f} px"
        if fs < tol.min_ipd_px:
            return Check("resolution", "fail", fs / bs, "x", warn, fail,
                         f"the face is too small in the photo ({unit_text}; at least "
                         f"{tol.min_ipd_px:.0f} px needed) — move closer or use full resolution",
                         {"ipd_baseline_px": bs, "ipd_followup_px": fs})
    ratio = fs / bs
    status = _grade(1.0 / ratio, 1.0 / warn, 1.0 / fail)
    details = {"pixels_baseline": bs, "pixels_followup": fs}
    if status == "pass":
        message = f"resolution {what} is comparable to the baseline ({unit_text})"
    else:
        message = (f"follow-up has ~{1.0 / ratio:.1f}x fewer pixels {what} than baseline "
                   f"({unit_text}) — use the camera's full resolution, and do not send photos "
                   "through apps that shrink them")
    return Check("resolution", status, ratio, "x", warn, fail, message, details)
