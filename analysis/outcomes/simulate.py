"""Simulated clinic frames with a known truth, for tests and benchmarks of the outcome statistics.

Model, for series *i* of protocol *p* at session *k* (1 = baseline)::

    baseline_i  ~ Normal(baseline_mean, baseline_sd)
    value_ik    = baseline_i + offset_p + slope_p * (k - 1) + u_i + e_ik     (k >= 2)
    u_i ~ Normal(0, patient_sd),  e_ik ~ Normal(0, noise_sd)

so the true mean change from baseline at session *k* is ``offset_p + slope_p * (k - 1)`` and the
true protocol effect (B minus A, same session) is
``offset_B - offset_A + (slope_B - slope_A) * (k - 1)``.
No photos, treatments or reactions are generated. Nothing here is patient data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from analysis.outcomes.frames import ClinicFrames, build_frames, frame

ENDPOINT = "score"


@dataclass(frozen=True)
class ProtocolSpec:
    """A simulated protocol: ``n_series`` courses of ``sessions`` visits ``interval_days`` apart."""

    name: str
    n_series: int
    offset: float = 0.0
    slope: float = 1.0
    sessions: int = 4
    interval_days: int = 28


def simulate_frames(
    specs: Sequence[ProtocolSpec],
    *,
    seed: int = 0,
    baseline_mean: float = 50.0,
    baseline_sd: float = 10.0,
    patient_sd: float = 1.0,
    noise_sd: float = 2.0,
    mcid: float = 3.0,
    higher_is_better: bool = True,
    start: date = date(2025, 1, 6),
) -> ClinicFrames:
    """Frames with one numeric endpoint ``"score"`` (see the module docstring for the model)."""
    rng = np.random.default_rng(seed)
    protocols: list[tuple[object, ...]] = []
    series: list[tuple[object, ...]] = []
    sessions: list[tuple[object, ...]] = []
    raw: list[tuple[object, ...]] = []
    patients: list[tuple[object, ...]] = []
    sid = vid = 0
    for pid, spec in enumerate(specs, start=1):
        protocols.append(
            (
                pid,
                spec.name,
                "sim",
                "face",
                spec.sessions,
                spec.interval_days,
                [],
                [ENDPOINT],
                ENDPOINT,
                {},
            )
        )
        for _ in range(spec.n_series):
            sid += 1
            started = start + timedelta(days=int(rng.integers(0, 60)))
            patients.append((sid, 1980, "female", 3))
            series.append((sid, sid, pid, "", "completed", started))
            base = rng.normal(baseline_mean, baseline_sd)
            u = rng.normal(0.0, patient_sd)
            sign = 1.0 if higher_is_better else -1.0
            for k in range(1, spec.sessions + 1):
                vid += 1
                on = started + timedelta(days=spec.interval_days * (k - 1))
                sessions.append((vid, sid, k, on, None))
                if k == 1:
                    value = base
                else:
                    value = base + sign * (
                        spec.offset + spec.slope * (k - 1) + u + rng.normal(0.0, noise_sd)
                    )
                raw.append((sid, vid, ENDPOINT, float(value)))
    endpoints = frame(
        [
            (
                ENDPOINT,
                "Simulated score",
                "numeric",
                "points",
                higher_is_better,
                mcid,
                noise_sd,
                None,
                None,
                None,
            )
        ],
        "endpoints",
    )
    return build_frames(
        patients=frame(patients, "patients"),
        protocols=frame(protocols, "protocols"),
        endpoints=endpoints,
        series=frame(series, "series"),
        sessions=pd.DataFrame(
            sessions, columns=["session_id", "series_id", "number", "performed_on", "operator_id"]
        ),
        raw_measurements=frame(raw, "raw_measurements"),
    )
