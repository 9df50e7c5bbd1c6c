"""Light-direction and backlight checks.

* lighting: ``Delta light_side`` against ``Tolerances.light_side_{warn,fail}`` on its range (the
  photos' ``light_side_sd``); not vouched for on a face darker than
  ``Tolerances.lighting_min_exposure_l``.
* backlight: the rise of ``backlight_dl`` (background beside/above the face minus the face's lit
  half, L*) over the baseline, against ``BACKLIGHT_WARN_DL`` / ``BACKLIGHT_FAIL_DL`` on its range;
  guidance "turn the patient away from the window".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.photos import uncertainty
from analysis.photos.checks.common import _borderline, _grade_sd, _missing, _na, _num, _pair_sd
from analysis.photos.types import Check, PhotoMeasurement

# Backlight: how much more the background beside and above the face may outshine the face than in
# the baseline, in L*. 15 is about 1 EV at the mid-tones of a face (L* 50 -> 65 doubles the
# luminance), 30 about 2 EV; below that a change of room or wall is ordinary.
BACKLIGHT_WARN_DL = 15.0
BACKLIGHT_FAIL_DL = 30.0

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _lighting_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
    if scalp:
        return _na(
            "lighting",
            "light direction is not assessed on scalp views; exposure and white balance are",
        )
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
    darkest = min(
        (v for v in (_num(b.exposure_l), _num(f.exposure_l)) if v is not None), default=None
    )
    if status == "pass" and darkest is not None and darkest < tol.lighting_min_exposure_l:
        # a near-black face (e.g. lit from behind) shows no usable shading: do not vouch for it
        status = "warn"
        message = (
            f"the face is too dark (median L* {darkest:.0f}) to confirm the light "
            "direction — light the face as in the baseline"
        )
        if (_num(f.backlight_dl) or 0.0) > BACKLIGHT_WARN_DL:
            message += " (it is darker than its background: see the backlight check)"
    elif status == "pass":
        message = f"light direction matches the baseline (Δ{delta:+.2f}" + (
            f" ± {uncertainty.Z_ONE_SIDED * sd:.2f})" if sd is not None else ")"
        )
    else:
        side, image = ("left", "right") if delta > 0 else ("right", "left")
        message = (
            f"light now comes more from the patient's {side} (image {image}) than in the "
            f"baseline (light direction {bv:+.2f} → {fv:+.2f}) — move the light or "
            "the patient to match the baseline"
        )
        if status == "warn" and sd is not None:
            message = _borderline("light direction Δ", delta, sd, "", 2) + message
    return Check(
        "lighting",
        status,
        delta,
        "light_side",
        tol.light_side_warn,
        tol.light_side_fail,
        message,
        details,
        sd,
    )


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
        message = (
            f"no backlight beyond the baseline's (background {fd:+.0f} L* against the "
            f"face, baseline {bd:+.0f})"
        )
    else:
        message = (
            f"backlit: the background is {fd:.0f} L* brighter than the face ({bd:+.0f} in "
            "the baseline), so the face is under-exposed against it — turn the patient "
            "away from the window (or close the blind), light the face from the front"
        )
        if status == "warn" and sd is not None:
            message = _borderline("backlight rise", delta, sd, " L*", 0) + message
    return Check("backlight", status, delta, "L*", warn, fail, message, details, sd)
