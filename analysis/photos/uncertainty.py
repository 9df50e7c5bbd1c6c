"""Measurement uncertainty of the geometric checks and the three-state verdict that uses it.

Maths
-----
Every landmark FaceMesh returns is taken to carry an independent isotropic position error of
``LANDMARK_JITTER_PX`` pixels (one standard deviation, per coordinate, original-file pixels).

* distance: ``ipd_px`` is the distance between two landmarks, so its standard deviation is
  ``sqrt(2) * s`` px and its relative s.d. is ``sqrt(2) * s / ipd_px``. The follow-up/baseline
  ratio adds both photos in quadrature: ``sd_pct = 100 * sqrt(2) * s * sqrt(1/ipd_b^2 + 1/ipd_f^2)``.
* pose: an angle read off two landmarks one inter-pupillary distance apart (the roll of the eye
  line; yaw and pitch come from a fit over the whole mesh and are no noisier) moves by
  ``sqrt(2) * s / ipd_px`` radians, so ``sd_deg = degrees(sqrt(2) * s / ipd_px)`` per photo, both
  photos added in quadrature for the difference.

A smaller face (fewer pixels between the pupils) therefore always gives a wider range; that is the
metamorphic property ``tests/photos/test_uncertainty.py`` holds.

Verdict
-------
With ``m`` the magnitude of the difference, ``sd`` its standard deviation and ``k = Z_ONE_SIDED``
(1.645, a one-sided 95 % bound), the range is ``[m - k sd, m + k sd]`` and

* ``pass`` when ``m - k sd <= warn_at``: the change is not beyond the tolerance beyond doubt, so
  noise alone never raises an alarm (an identical re-shoot always passes, however small the face);
* ``fail`` when ``m - k sd > fail_at`` (beyond the fail tolerance beyond doubt);
* ``warn`` (borderline) otherwise: beyond the warn tolerance, but the range still reaches below
  the fail tolerance.

With ``sd = 0`` this reduces exactly to the earlier rule (pass ``<= warn_at``, fail ``> fail_at``).

Calibration
-----------
``LANDMARK_JITTER_PX`` was fitted on synthetic zooms of real faces: the first 30 (sorted by file
name) of ``../shared/datasets/deepface_identities``, downscaled to 640 px on the longest side and
zoomed about the face centre by 1.00, 1.02, 1.05 and 1.08 (120 pairs). The RMS of the measured
size-change error over ``100 sqrt(2) hypot(1/ipd_b, 1/ipd_f)`` was 0.23 px (90th percentile of
``|z|`` 0.29), rounded up to 0.25 px. ``benchmarks/pose_accuracy.py`` reports the verdicts on the
other 31 photos. The pose s.d. uses the same jitter; it was not fitted separately on repeat shots
or Yale B. The lighting checks (direction, exposure, colour, backlight) carry their own
uncertainty, modelled and calibrated in :mod:`analysis.photos.lighting` (section "Uncertainty"),
as do expression (:mod:`analysis.photos.expression`: this jitter by the delta method plus re-shoot
floors) and sharpness (:mod:`analysis.photos.sharpness`); all are graded by the same :func:`grade`.

Pixels: ``compare`` feeds ``ipd_px`` in the *original file's* pixels, while FaceMesh ran on the
analysis copy (at most 1280 px a side; a 12 MP JPEG at 1/4 scale). The calibration photos were 640 px,
so there the two coincide; for a large photo the jitter in original pixels is larger than 0.25 px by
up to the downscale factor, and the distance and pose ranges of such photos are narrower than this
model would give in analysis pixels (not re-fitted: no repeat set of 12 MP photos is in
``../shared/datasets``). Expression uses the analysis copy's pixels.
"""

from __future__ import annotations

import math

from analysis.photos.types import Status

LANDMARK_JITTER_PX = 0.25
Z_ONE_SIDED = 1.645


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of pixels, got {value!r}")
    return value


def distance_sd_pct(
    ipd_baseline_px: float, ipd_followup_px: float, *, jitter_px: float = LANDMARK_JITTER_PX
) -> float:
    """Standard deviation (percentage points) of the face-size change from landmark jitter."""
    b = _positive("ipd_baseline_px", ipd_baseline_px)
    f = _positive("ipd_followup_px", ipd_followup_px)
    return 100.0 * math.sqrt(2.0) * jitter_px * math.hypot(1.0 / b, 1.0 / f)


def pose_sd_deg(
    ipd_baseline_px: float, ipd_followup_px: float, *, jitter_px: float = LANDMARK_JITTER_PX
) -> float:
    """Standard deviation (degrees) of a pose-angle difference from landmark jitter."""
    b = _positive("ipd_baseline_px", ipd_baseline_px)
    f = _positive("ipd_followup_px", ipd_followup_px)
    return math.degrees(math.sqrt(2.0) * jitter_px * math.hypot(1.0 / b, 1.0 / f))


def grade(magnitude: float, sd: float, warn_at: float, fail_at: float) -> Status:
    """Three-state verdict of ``magnitude`` with standard deviation ``sd`` (same units)."""
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite number >= 0, got {sd!r}")
    low = magnitude - Z_ONE_SIDED * sd
    if low > fail_at:
        return "fail"
    if low <= warn_at:
        return "pass"
    return "warn"


def value_range(value: float, sd: float) -> tuple[float, float]:
    """The ``value -/+ k sd`` range that :func:`grade` judges, in the value's units."""
    return value - Z_ONE_SIDED * sd, value + Z_ONE_SIDED * sd
