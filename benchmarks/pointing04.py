"""Pointing'04 helpers for the pose benchmark (and its shared-data test).

Dataset: N. Gourier, D. Hall, J. L. Crowley, "Estimating Face Orientation from Robust Detection of
Salient Facial Features", Pointing 2004 (ICPR workshop). Staged in ``shared/datasets/pointing04``
(see its README; never copied into the repo). File names ``person{ID}{series}{index}{tilt}{pan}.jpg``.
Label signs: pan < 0 = nose toward the image's right, so our ``yaw_deg ~ -pan``; tilt > 0 = looking up,
so our ``pitch_deg ~ tilt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATTERN = re.compile(r"person(\d\d)([12])(\d\d)([+-]\d+)([+-]\d+)\.jpg$")


@dataclass(frozen=True)
class Shot:
    path: Path
    person: int
    series: int
    tilt_deg: int
    pan_deg: int

    @property
    def yaw_truth_deg(self) -> float:
        return float(-self.pan_deg)

    @property
    def pitch_truth_deg(self) -> float:
        return float(self.tilt_deg)


def shots(
    root: Path, *, max_abs_pan: int = 45, max_abs_tilt: int = 0, people: int | None = None
) -> list[Shot]:
    """Shots with ``|pan| <= max_abs_pan`` and ``|tilt| <= max_abs_tilt``, sorted by person/series."""
    found = []
    for path in sorted(root.glob("Person*/person*.jpg")):
        match = PATTERN.search(path.name)
        if not match:
            continue
        person, series, _, tilt, pan = (int(g) for g in match.groups())
        if abs(pan) <= max_abs_pan and abs(tilt) <= max_abs_tilt:
            found.append(Shot(path, person, series, tilt, pan))
    if people is not None:
        keep = sorted({s.person for s in found})[:people]
        found = [s for s in found if s.person in keep]
    return found


def frontal(shot_list: list[Shot], person: int, series: int) -> Shot | None:
    for shot in shot_list:
        if (shot.person, shot.series, shot.tilt_deg, shot.pan_deg) == (person, series, 0, 0):
            return shot
    return None


def calibration(truth: np.ndarray, estimate: np.ndarray) -> tuple[float, float, float]:
    """Mean absolute error, least-squares slope of estimate on truth, share with the right sign."""
    truth, estimate = np.asarray(truth, float), np.asarray(estimate, float)
    mae = float(np.mean(np.abs(estimate - truth)))
    slope = float(np.polyfit(truth, estimate, 1)[0]) if np.ptp(truth) > 0 else float("nan")
    nonzero = truth != 0
    sign = (
        float(np.mean(np.sign(estimate[nonzero]) == np.sign(truth[nonzero])))
        if nonzero.any()
        else float("nan")
    )
    return mae, slope, sign
