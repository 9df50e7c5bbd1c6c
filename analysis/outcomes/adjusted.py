"""Model-based protocol comparison: a linear mixed model on repeated measurements.

Model (statsmodels ``MixedLM``, REML), on every measurement after baseline (session >= 2)::

    change_ij = b0 + b1 * [protocol_b] + b2 * baseline_i + b3 * session_number_ij + a_i + e_ij
    a_i ~ Normal(0, s_a^2)  (random intercept per patient),  e_ij ~ Normal(0, s_e^2)

``b1`` is the adjusted difference in change from baseline, protocol B minus protocol A, in the
endpoint's units (raw sign: ``change = value - baseline``). Fit problems are reported, never
hidden: ``converged`` is False when the optimiser did not converge or the fit failed, with the
messages in ``warnings``.
"""

from __future__ import annotations

import math
import warnings as _warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.outcomes.endpoints import EndpointInfo, endpoint_info
from analysis.outcomes.frames import ClinicFrames


@dataclass(frozen=True)
class ModelResult:
    """The adjusted protocol effect (B minus A) and everything needed to judge it."""

    endpoint: str
    unit: str
    higher_is_better: bool
    protocol_a: str
    protocol_b: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_patients: int
    n_observations: int
    converged: bool
    warnings: list[str] = field(default_factory=list)
    formula: str = "change ~ protocol_b + baseline + session_number, random intercept per patient"

    @property
    def caveat(self) -> str:
        """Plain-language reading of the result, computed from its numbers."""
        return caveat(self)


def caveat(r: ModelResult) -> str:
    """Plain-language caveat for ``r`` (what the number means and what it cannot say)."""
    base = (
        "Observational clinic data, not a trial: patients were not randomised to protocols, "
        "so differences may reflect who was offered which protocol. Adjusted for baseline "
        "severity and repeated measures (session number, patient)"
    )
    if not r.converged or r.estimate is None:
        why = "; ".join(r.warnings) or "the model could not be fitted"
        return (
            f"{base}. The model did not give a usable estimate ({why}); do not read a "
            f"difference from it."
        )
    direction_better = (r.estimate > 0) == r.higher_is_better
    lead = r.protocol_b if direction_better else r.protocol_a
    size = f"{abs(r.estimate):.2g} {r.unit}".strip()
    if r.ci_low is not None and r.ci_high is not None and r.ci_low <= 0 <= r.ci_high:
        verdict = (
            f"the data are compatible with no difference between {r.protocol_a} and "
            f"{r.protocol_b} (95% CI {r.ci_low:.2g} to {r.ci_high:.2g} {r.unit})"
        )
    else:
        verdict = (
            f"{lead} showed a larger improvement by about {size} "
            f"(95% CI {r.ci_low:.2g} to {r.ci_high:.2g} {r.unit}, B minus A)"
        )
    small = " Few patients: treat as a hint, not a finding." if r.n_patients < 20 else ""
    return (
        f"{base}; {verdict}; based on {r.n_patients} patients and {r.n_observations} "
        f"measurements.{small}"
    )


def _fail(
    info: EndpointInfo, a: str, b: str, n_pat: int, n_obs: int, msgs: list[str]
) -> ModelResult:
    return ModelResult(
        endpoint=info.code,
        unit=info.unit,
        higher_is_better=info.higher_is_better,
        protocol_a=a,
        protocol_b=b,
        estimate=None,
        ci_low=None,
        ci_high=None,
        p_value=None,
        n_patients=n_pat,
        n_observations=n_obs,
        converged=False,
        warnings=msgs,
    )


def adjusted_protocol_effect(
    frames: ClinicFrames,
    *,
    endpoint: str,
    protocol_a: int,
    protocol_b: int,
    series_ids: Iterable[int] | None = None,
) -> ModelResult:
    """Fit the mixed model of the module docstring to series of ``protocol_a`` and ``protocol_b``
    (optionally only ``series_ids``, e.g. from :func:`analysis.outcomes.filters.select_series`).

    Returns
    -------
    ModelResult
        ``estimate`` is B minus A in the endpoint's units (raw change sign). With fewer than two
        patients per protocol, a singular design or a failed optimiser, ``converged`` is False and
        the reason is in ``warnings``.
    """
    import statsmodels.formula.api as smf  # heavy import, only when a model is fitted

    info = endpoint_info(frames.endpoints, endpoint)
    names = frames.protocols.set_index("protocol_id")["name"]
    for pid in (protocol_a, protocol_b):
        if pid not in names.index:
            raise ValueError(f"unknown protocol id {pid}")
    if protocol_a == protocol_b:
        raise ValueError("choose two different protocols")
    a, b = str(names[protocol_a]), str(names[protocol_b])
    s = frames.series[frames.series["protocol_id"].isin([protocol_a, protocol_b])]
    if series_ids is not None:
        s = s[s["series_id"].isin(list(series_ids))]
    m = frames.measurements
    m = m[(m["endpoint_code"] == endpoint) & (m["session_number"] > 1) & m["change"].notna()]
    d = m.merge(s[["series_id", "patient_id", "protocol_id"]], on="series_id", how="inner")
    d = pd.DataFrame(
        {
            "change": d["change"].astype(float),
            "baseline": d["baseline"].astype(float),
            "session_number": d["session_number"].astype(float),
            "protocol_b": (d["protocol_id"] == protocol_b).astype(float),
            "patient": d["patient_id"].astype(int),
        }
    )
    n_pat, n_obs = int(d["patient"].nunique()), int(len(d))
    per_arm = d.groupby("protocol_b")["patient"].nunique()
    if len(per_arm) < 2 or int(per_arm.min()) < 2:
        return _fail(
            info,
            a,
            b,
            n_pat,
            n_obs,
            ["each protocol needs at least 2 patients with measurements after baseline"],
        )
    caught: list[str] = []
    try:
        with _warnings.catch_warnings(record=True) as w:
            _warnings.simplefilter("always")
            model = smf.mixedlm(
                "change ~ protocol_b + baseline + session_number", d, groups=d["patient"]
            )
            fit = model.fit(reml=True)
        caught = sorted({f"{x.category.__name__}: {x.message}" for x in w})
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
        return _fail(info, a, b, n_pat, n_obs, caught + [f"fit failed: {exc}"])
    est = float(fit.params.get("protocol_b", math.nan))
    ci = fit.conf_int().loc["protocol_b"] if "protocol_b" in fit.params else [math.nan, math.nan]
    p = float(fit.pvalues.get("protocol_b", math.nan))
    converged = bool(getattr(fit, "converged", False))
    finite = all(math.isfinite(v) for v in (est, float(ci[0]), float(ci[1]), p))
    if not converged and not any("onverg" in c for c in caught):
        caught.append("the optimiser reported no convergence")
    if not finite:
        caught.append("the estimate or its standard error is not finite (degenerate data)")
        converged = False
    return ModelResult(
        endpoint=endpoint,
        unit=info.unit,
        higher_is_better=info.higher_is_better,
        protocol_a=a,
        protocol_b=b,
        estimate=est if math.isfinite(est) else None,
        ci_low=float(ci[0]) if finite else None,
        ci_high=float(ci[1]) if finite else None,
        p_value=p if finite else None,
        n_patients=n_pat,
        n_observations=n_obs,
        converged=converged,
        warnings=caught,
    )
