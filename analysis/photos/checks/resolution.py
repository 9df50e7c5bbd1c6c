"""Resolution check: pixels across the face (or frame) against
``Tolerances.resolution_{warn,fail}_ratio`` and the absolute floor ``Tolerances.min_ipd_px``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from analysis.photos.checks.common import _grade, _missing, _na
from analysis.photos.types import Check, PhotoMeasurement

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _resolution_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
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
            return Check(
                "resolution",
                "fail",
                fs / bs,
                "x",
                warn,
                fail,
                f"the face is too small in the photo ({unit_text}; at least "
                f"{tol.min_ipd_px:.0f} px needed) — move closer or use full resolution",
                {"ipd_baseline_px": bs, "ipd_followup_px": fs},
            )
    ratio = fs / bs
    status = _grade(1.0 / ratio, 1.0 / warn, 1.0 / fail)
    details = {"pixels_baseline": bs, "pixels_followup": fs}
    if status == "pass":
        message = f"resolution {what} is comparable to the baseline ({unit_text})"
    else:
        message = (
            f"follow-up has ~{1.0 / ratio:.1f}x fewer pixels {what} than baseline "
            f"({unit_text}) — use the camera's full resolution, and do not send photos "
            "through apps that shrink them"
        )
    return Check("resolution", status, ratio, "x", warn, fail, message, details)
