"""Helpers shared by the checks: grading (plain and on a measurement's range), missing figures."""

from __future__ import annotations

import math
from typing import Any

from analysis.photos import uncertainty
from analysis.photos.types import Check, Status

_ORDER = {"pass": 0, "not_assessed": 0, "warn": 1, "fail": 2}


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
    return (
        f"borderline: {what} {value:+.{digits}f}{unit} ± {k_sd:.{digits}f}{unit} straddles the "
        "tolerance — "
    )


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
