"""Colour (white balance) check: CIEDE2000 between the median skin colours after matching the
follow-up's luminance to the baseline's, against ``Tolerances.color_{warn,fail}_de`` on its range
(the photos' ``color_sd_ab`` in ΔE00 units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from skimage.color import deltaE_ciede2000, lab2xyz, xyz2lab

from analysis.photos import uncertainty
from analysis.photos.checks.common import _grade_sd, _na, _num, _pair_sd
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """skimage's CIEDE2000 colour difference, typed."""
    out: np.ndarray = deltaE_ciede2000(lab1, lab2)
    return out


def _color_check(b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances) -> Check:
    if (
        b.lab_median is None
        or f.lab_median is None
        or not all(_num(v) is not None for v in (*b.lab_median, *f.lab_median))
    ):
        where = [w for w, m in (("baseline", b), ("follow-up", f)) if m.lab_median is None]
        return _na("color", f"colour not measured on the {' and '.join(where) or 'two'} photo(s)")
    lb = np.array(b.lab_median, float)
    lf = np.array(f.lab_median, float)
    de = float(_ciede2000(lb, _match_luminance(lf, lb)))
    sd_ab = _pair_sd(b.color_sd_ab, f.color_sd_ab)
    sd = None if sd_ab is None else sd_ab * _de00_per_ab(lb)
    status = _grade_sd(de, sd, tol.color_warn_de, tol.color_fail_de)
    da, db = float(lf[1] - lb[1]), float(lf[2] - lb[2])
    details: dict[str, Any] = {
        "delta_a": da,
        "delta_b": db,
        "delta_e_full": float(_ciede2000(lb, lf)),
    }
    if sd is not None:
        details["sd_de00"] = sd
    if status == "pass":
        message = f"colour matches the baseline (ΔE00 {de:.1f}" + (
            f" ± {uncertainty.Z_ONE_SIDED * sd:.1f})" if sd is not None else ")"
        )
    else:
        cast = []
        if abs(db) >= 1.0:
            cast.append("warmer/yellower" if db > 0 else "cooler/bluer")
        if abs(da) >= 1.0:
            cast.append("redder/magenta" if da > 0 else "greener")
        shift = " and ".join(cast) or "shifted"
        message = (
            f"white balance differs (ΔE {de:.0f}; follow-up {shift})"
            " — use the same light and white balance as the baseline (unless the skin "
            "colour itself changed)"
        )
        if status == "warn" and sd is not None:
            message = (
                f"borderline: ΔE00 {de:.1f} ± {uncertainty.Z_ONE_SIDED * sd:.1f} straddles "
                "the tolerance — " + message
            )
    return Check(
        "color", status, de, "dE00", tol.color_warn_de, tol.color_fail_de, message, details, sd
    )


def _de00_per_ab(lab: np.ndarray) -> float:
    """CIEDE2000 per unit of a*/b* displacement at the colour ``lab`` (mean of the two axes).

    Converts the per-axis s.d. of the median a*/b* into the check's ΔE00 units (first order).
    """
    step = 0.5
    d_a = float(_ciede2000(lab, lab + [0.0, step, 0.0]))
    d_b = float(_ciede2000(lab, lab + [0.0, 0.0, step]))
    return (d_a + d_b) / (2.0 * step)


def _match_luminance(lab: np.ndarray, reference_lab: np.ndarray) -> np.ndarray:
    """``lab`` re-exposed (CIE XYZ scaled) so its luminance Y equals ``reference_lab``'s.

    A pure exposure change scales XYZ, so after this the colour difference is chromatic only.
    """
    xyz = lab2xyz(lab.reshape(1, 1, 3)).reshape(3)
    y_ref = lab2xyz(reference_lab.reshape(1, 1, 3)).reshape(3)[1]
    if xyz[1] <= 0:
        return np.array([reference_lab[0], lab[1], lab[2]])
    out: np.ndarray = xyz2lab((xyz * (y_ref / xyz[1])).reshape(1, 1, 3)).reshape(3)
    return out
