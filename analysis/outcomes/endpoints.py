"""Change from baseline, responder status and expected courses for one endpoint.

Sign convention: ``improvement`` (see :mod:`analysis.outcomes.frames`) is the change from the
session-1 baseline (or, for a rating made against the baseline, from its "no change" anchor)
signed so that positive is better, in the endpoint's units. A series is a
**responder** when its improvement at its last measured session after baseline is at least the
endpoint's ``mcid`` (:data:`RESPONDER_DEFINITION`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

RESPONDER_DEFINITION = (
    "Responder: improvement from the session-1 baseline of at least the endpoint's minimal "
    "clinically important difference (MCID), in the better direction, at the last session with a "
    "measurement after baseline. A rating made against the baseline (GAIS, global photographic "
    "score, satisfaction) counts from its 'no change' anchor, so GAIS 'improved' or better is a "
    "response. Series without a baseline or without any later measurement are not counted."
)


@dataclass(frozen=True)
class EndpointInfo:
    """What the figures need from an endpoint definition (units in ``unit``)."""

    code: str
    name: str
    unit: str
    higher_is_better: bool
    mcid: float | None
    noise_sd: float | None

    @property
    def noise_band(self) -> float | None:
        """Half-width of the measurement-noise band around zero change: ``2 * noise_sd``."""
        return None if self.noise_sd is None else 2.0 * self.noise_sd


def endpoint_info(endpoints: pd.DataFrame, code: str) -> EndpointInfo:
    """Look up ``code`` in the ``endpoints`` frame; ``ValueError`` naming it when unknown."""
    rows = endpoints[endpoints["endpoint_code"] == code]
    if rows.empty:
        raise ValueError(f"unknown endpoint {code!r}")
    r = rows.iloc[0]

    def opt(v: Any) -> float | None:
        return None if v is None or pd.isna(v) else float(v)

    unit = r["unit"]
    return EndpointInfo(
        code=code,
        name=str(r["name"]),
        unit="" if unit is None or pd.isna(unit) else str(unit),
        higher_is_better=bool(r["higher_is_better"]),
        mcid=opt(r["mcid"]),
        noise_sd=opt(r["noise_sd"]),
    )


def last_improvement(measurements: pd.DataFrame, *, endpoint_code: str) -> pd.DataFrame:
    """Per series: the improvement at its last measured session after baseline.

    Returns columns ``series_id, session_number, improvement, change, baseline`` (one row per
    series that has a baseline and at least one later measurement of ``endpoint_code``).
    """
    m = measurements[
        (measurements["endpoint_code"] == endpoint_code)
        & (measurements["session_number"] > 1)
        & measurements["improvement"].notna()
    ]
    if m.empty:
        return pd.DataFrame(
            columns=["series_id", "session_number", "improvement", "change", "baseline"]
        )
    last = m.sort_values("session_number").groupby("series_id", as_index=False).tail(1)
    return (
        last[["series_id", "session_number", "improvement", "change", "baseline"]]
        .sort_values("series_id")
        .reset_index(drop=True)
    )


def responders(measurements: pd.DataFrame, *, endpoint_code: str, mcid: float) -> pd.DataFrame:
    """:func:`last_improvement` plus a boolean ``responder`` column (improvement >= ``mcid``)."""
    if mcid is None or not mcid > 0:
        raise ValueError(f"endpoint {endpoint_code!r} has no positive MCID; responders undefined")
    last = last_improvement(measurements, endpoint_code=endpoint_code)
    last["responder"] = last["improvement"].astype(float) >= mcid
    return last


def expected_change(
    expected_course: Mapping[str, Any] | None, *, endpoint_code: str
) -> dict[int, float]:
    """Session number -> expected change from baseline for ``endpoint_code`` (may be empty).

    Accepts the protocol's ``expected_course`` as ``{code: {"2": 1.5, "3": 3.0}}`` (session
    numbers as JSON keys) or ``{code: [0, 1.5, 3.0]}`` (index 0 = session 1).
    """
    if not expected_course:
        return {}
    course = expected_course.get(endpoint_code)
    if course is None:
        return {}
    if isinstance(course, Mapping):
        return {int(k): float(v) for k, v in course.items() if v is not None}
    if isinstance(course, (list, tuple)):
        return {i + 1: float(v) for i, v in enumerate(course) if v is not None}
    raise ValueError(f"expected_course[{endpoint_code!r}] must be a mapping or a list")
