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

Each check's rule, tolerance and message live in its own module of :mod:`analysis.photos.checks`
(pose, distance, framing, light (direction and backlight), exposure, color, expression, sharpness,
resolution); this module holds the :class:`Tolerances` and runs the checks in order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from analysis.photos.checks.color import _color_check, _match_luminance
from analysis.photos.checks.common import _na, _worst
from analysis.photos.checks.distance import _distance_check, _scalp_distance_check
from analysis.photos.checks.exposure import _exposure_check
from analysis.photos.checks.expression import _expression_check
from analysis.photos.checks.framing import (
    _face_framing_check,
    _register_thumbs,
    _scalp_framing_check,
)
from analysis.photos.checks.light import (
    BACKLIGHT_FAIL_DL,
    BACKLIGHT_WARN_DL,
    _backlight_check,
    _lighting_check,
)
from analysis.photos.checks.pose import _pose_check
from analysis.photos.checks.resolution import _resolution_check
from analysis.photos.checks.sharpness import _sharpness_check
from analysis.photos.types import Check, Comparison, PhotoMeasurement, is_scalp_view

__all__ = ["BACKLIGHT_FAIL_DL", "BACKLIGHT_WARN_DL", "Tolerances", "compare", "_match_luminance"]


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
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not (math.isfinite(value) and value > 0)
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
    def from_dict(cls, overrides: Mapping[str, Any] | None) -> Tolerances:
        """Defaults with a protocol's overrides; unknown keys raise ``ValueError`` naming them."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown tolerance(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(
            **{
                k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                for k, v in overrides.items()
            }
        )


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
    "view",
    "pose",
    "distance",
    "framing",
    "lighting",
    "backlight",
    "exposure",
    "color",
    "expression",
    "sharpness",
    "resolution",
)


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
        return Check(
            "view",
            "fail",
            None,
            "",
            None,
            None,
            f"follow-up is a {f.view} view but the baseline is {b.view} — retake the "
            "baseline's view",
            {"baseline": b.view, "followup": f.view},
        )
    return Check("view", "pass", None, "", None, None, f"same view ({f.view})")


def _geometry_checks(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> list[Check]:
    if scalp:
        reg = _register_thumbs(b, f)
        return [
            _na(
                "pose",
                "pose is not assessed on scalp views (no face); framing and scale are "
                "compared by image registration instead",
            ),
            _scalp_distance_check(reg, tol),
            _scalp_framing_check(reg, tol),
        ]
    return [_pose_check(b, f, tol), _distance_check(b, f, tol), _face_framing_check(b, f, tol)]
