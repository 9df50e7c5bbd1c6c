"""Sharpness check: follow-up / baseline sharpness ratio against
``Tolerances.sharpness_{warn,fail}_ratio`` (a much sharper follow-up only warns), graded on its
range: the ratio's relative s.d. is the photos' relative ``sharpness_sd`` in quadrature
(:mod:`analysis.photos.sharpness`); records without it get the plain thresholds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from analysis.photos import uncertainty
from analysis.photos.checks.common import _borderline, _grade_sd, _missing, _na, _num
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _sharpness_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    reason = _missing("sharpness", "sharpness", b.sharpness, f.sharpness)
    if reason:
        return _na("sharpness", reason)
    bs, fs = float(b.sharpness), float(f.sharpness)  # type: ignore[arg-type]
    if bs <= 0 or fs <= 0:
        return _na("sharpness", "sharpness is zero on a photo (blank image?)")
    ratio = fs / bs
    rel = [
        v / x for v, x in ((_num(b.sharpness_sd), bs), (_num(f.sharpness_sd), fs)) if v is not None
    ]
    rel_sd = (math.hypot(*rel) if len(rel) == 2 else rel[0] * math.sqrt(2.0)) if rel else None
    blur = 1.0 / ratio  # graded: how many times blurrier the follow-up is
    status = _grade_sd(
        blur,
        None if rel_sd is None else blur * rel_sd,
        1.0 / tol.sharpness_warn_ratio,
        1.0 / tol.sharpness_fail_ratio,
    )
    sd = None if rel_sd is None else ratio * rel_sd  # of the ratio, the check's value
    details: dict[str, float] = {"sharpness_baseline": bs, "sharpness_followup": fs}
    if sd is not None:
        details["sd_ratio"] = sd
    sharper_beyond_doubt = ratio - (0.0 if sd is None else uncertainty.Z_ONE_SIDED * sd)
    if status != "pass":
        message = (
            f"follow-up is blurrier than baseline (×{ratio:.2f} of its sharpness) — hold "
            "still, focus on the face/scalp, use more light"
        )
        if status == "warn" and sd is not None:
            message = _borderline("sharpness ratio", ratio, sd, "", 2) + message
    elif sharper_beyond_doubt > 1.0 / tol.sharpness_warn_ratio:
        status = "warn"
        message = (
            f"follow-up is much sharper than baseline (×{ratio:.1f}) — fine texture will "
            "look different; match the baseline's camera and focus"
        )
    else:
        message = f"sharpness matches the baseline (×{ratio:.2f})"
    return Check(
        "sharpness",
        status,
        ratio,
        "x",
        tol.sharpness_warn_ratio,
        tol.sharpness_fail_ratio,
        message,
        details,
        sd,
    )
