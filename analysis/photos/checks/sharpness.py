"""Sharpness check: follow-up / baseline sharpness ratio against
``Tolerances.sharpness_{warn,fail}_ratio`` (a much sharper follow-up only warns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.photos.checks.common import _grade, _missing, _na
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
    status = _grade(1.0 / ratio, 1.0 / tol.sharpness_warn_ratio, 1.0 / tol.sharpness_fail_ratio)
    details = {"sharpness_baseline": bs, "sharpness_followup": fs}
    if status != "pass":
        message = (
            f"follow-up is blurrier than baseline (×{ratio:.2f} of its sharpness) — hold "
            "still, focus on the face/scalp, use more light"
        )
    elif ratio > 1.0 / tol.sharpness_warn_ratio:
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
    )
