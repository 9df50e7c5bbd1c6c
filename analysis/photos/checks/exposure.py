"""Exposure check: Delta L* of the median skin L* (also in EV) against
``Tolerances.exposure_{warn,fail}_dl`` on its range (the photos' ``exposure_sd_l``), and the rise of
the clipped share against ``Tolerances.clipped_{warn,fail}_share``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis.photos import uncertainty
from analysis.photos.checks.common import (
    _borderline,
    _grade,
    _grade_sd,
    _missing,
    _na,
    _num,
    _pair_sd,
    _worst,
)
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


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
        advice.append(
            (_borderline("ΔL*", delta, sd, "", 1) if status == "warn" and sd else "")
            + f"photo {abs(ev):.1f} EV {what} than baseline (median L* {bl:.0f} → "
            f"{fl:.0f}) — {fix} to match"
        )
    cb, cf = _num(b.clipped_share), _num(f.clipped_share)
    if cb is not None and cf is not None:
        details["clipped_share_baseline"] = cb
        details["clipped_share_followup"] = cf
        s_clip = _grade(cf - cb, tol.clipped_warn_share, tol.clipped_fail_share)
        if s_clip != "pass":
            advice.append(
                f"{cf:.0%} of the measured area is clipped to pure white or black "
                f"({cb:.0%} in the baseline) — avoid direct flash/over-exposure"
            )
        status = _worst([status, s_clip])
    message = "; ".join(
        advice
    ) or f"exposure matches the baseline ({ev:+.1f} EV; ΔL* {delta:+.1f}" + (
        f" ± {uncertainty.Z_ONE_SIDED * sd:.1f})" if sd is not None else ")"
    )
    return Check(
        "exposure",
        status,
        delta,
        "L*",
        tol.exposure_warn_dl,
        tol.exposure_fail_dl,
        message,
        details,
        sd,
    )
