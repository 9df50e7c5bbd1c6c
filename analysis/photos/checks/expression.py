"""Expression check: eye opening, mouth opening and smile differences against
``Tolerances.{eye_open,mouth_open,smile}_{warn,fail}``, each graded on its range ``|delta| -/+
1.645 sd`` (the photos' ``eye_open_sd`` / ``mouth_open_sd`` / ``smile_sd`` in quadrature,
:mod:`analysis.photos.expression`; the plain thresholds for records without them); the worst part
is reported, with its s.d. as the check's uncertainty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.photos.checks.common import _ORDER, _borderline, _grade_sd, _missing, _na, _pair_sd
from analysis.photos.types import Check, PhotoMeasurement, Status

if TYPE_CHECKING:
    from analysis.photos.compare import Tolerances


def _expression_check(
    b: PhotoMeasurement, f: PhotoMeasurement, tol: Tolerances, scalp: bool
) -> Check:
    if scalp:
        return _na("expression", "expression is not assessed on scalp views")
    sds = {
        "eye_open": _pair_sd(b.eye_open_sd, f.eye_open_sd),
        "mouth_open": _pair_sd(b.mouth_open_sd, f.mouth_open_sd),
        "smile": _pair_sd(b.smile_sd, f.smile_sd),
    }
    parts = (
        (
            "eye_open",
            b.eye_open,
            f.eye_open,
            tol.eye_open_warn,
            tol.eye_open_fail,
            (
                "eyes wider open than baseline — ask for relaxed, naturally open eyes",
                "eyes more closed than baseline — ask the patient to open the eyes naturally",
            ),
        ),
        (
            "mouth_open",
            b.mouth_open,
            f.mouth_open,
            tol.mouth_open_warn,
            tol.mouth_open_fail,
            (
                "mouth more open than baseline — ask them to close the lips gently",
                "mouth more closed than baseline — match the baseline's relaxed lips",
            ),
        ),
        (
            "smile",
            b.smile,
            f.smile,
            tol.smile_warn,
            tol.smile_fail,
            (
                "smiling more than baseline — ask for the baseline's neutral expression",
                "less smile than baseline — match the baseline's expression",
            ),
        ),
    )
    graded: list[tuple[Status, float, str, float, float, float, str]] = []
    missing: list[str] = []
    details: dict[str, Any] = {}
    for name, bv, fv, warn, fail, texts in parts:
        reason = _missing(name, name.replace("_", " "), bv, fv)
        if reason or fv is None or bv is None:
            missing.append(reason or f"{name} not measured")
            continue
        delta = float(fv) - float(bv)
        details[f"delta_{name}"] = delta
        if sds[name] is not None:
            details[f"sd_{name}"] = sds[name]
        graded.append(
            (
                _grade_sd(abs(delta), sds[name], warn, fail),
                abs(delta) / warn,
                name,
                delta,
                warn,
                fail,
                texts[0] if delta > 0 else texts[1],
            )
        )
    if not graded:
        return _na("expression", "; ".join(missing))
    graded.sort(key=lambda g: (_ORDER[g[0]], g[1]), reverse=True)
    status, _, name, delta, warn, fail, _ = graded[0]
    advice = [g[6] for g in graded if g[0] != "pass"]
    message = "; ".join(advice) or "expression matches the baseline"
    if missing:
        message += " (" + "; ".join(missing) + ")"
    details["worst"] = name
    sd = sds[name]
    if status == "warn" and sd is not None:
        message = _borderline(f"Δ{name.replace('_', ' ')}", delta, sd, "", 3) + message
    return Check("expression", status, delta, "ratio", warn, fail, message, details, sd)
