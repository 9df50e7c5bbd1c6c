"""Expression figures from FaceMesh landmarks: eye opening, mouth opening, smile.

All three are ratios of distances on the same face, so they do not depend on image size or camera
distance. Distances use the 3-D landmark coordinates (x, y and FaceMesh's z, which is in the same
pixel scale), which makes them less sensitive to yaw than image-plane distances.

FaceMesh indices used ("right" = the patient's right, the image's left for a frontal photo)
---------------------------------------------------------------------------------------------
* Eye aspect ratio (Soukupova & Cech, "Real-Time Eye Blink Detection using Facial Landmarks",
  CVWW 2016): ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` with
  right eye ``p1..p6 = 33, 160, 158, 133, 153, 144`` and left eye ``362, 385, 387, 263, 373, 380``.
  ``eye_open`` is the mean of both eyes: about 0.25-0.35 open, below 0.1 closed.
* Mouth: corners 61 (right) and 291 (left); inner-lip pairs (82, 87), (13, 14), (312, 317).
  ``mouth_open`` = mean inner-lip gap / mouth width: about 0 closed, 0.3+ wide open.
* Smile: ``smile`` = lift of the mouth corners above the lip centre (midpoint of 13 and 14),
  measured along the face's "up" direction (perpendicular to the line between the eye centres,
  pointing from the mouth toward the eyes, so head roll cancels), divided by the mouth width.
  ``> 0`` when the corners sit above the lip centre (smiling), ``< 0`` when they droop. Pitch
  changes it slightly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EAR_IDX: tuple[int, ...] = (33, 160, 158, 133, 153, 144)
LEFT_EAR_IDX: tuple[int, ...] = (362, 385, 387, 263, 373, 380)
MOUTH_CORNERS: tuple[int, int] = (61, 291)
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((82, 87), (13, 14), (312, 317))
LIP_CENTRE_PAIR: tuple[int, int] = (13, 14)
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)


@dataclass(frozen=True)
class ExpressionMeasure:
    """Scale-invariant expression figures (see the module docstring)."""

    eye_open: float
    mouth_open: float
    smile: float


def measure_expression(landmarks_px: np.ndarray) -> ExpressionMeasure:
    """Eye opening, mouth opening and smile of one face.

    Parameters
    ----------
    landmarks_px : ndarray, shape (478, 3) or (468, 3)
        FaceMesh points (x, y in pixels, z in the same scale). ``(N, 2)`` is accepted and then the
        figures are image-plane ratios.

    Returns
    -------
    ExpressionMeasure
        ``eye_open`` (mean eye aspect ratio), ``mouth_open`` (inner-lip gap / mouth width) and
        ``smile`` (corner lift / mouth width, > 0 smiling); all dimensionless.
    """
    pts = np.asarray(landmarks_px, dtype=float)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh landmarks of shape (478, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks contain non-finite coordinates")

    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(pts[i] - pts[j]))

    def ear(idx: tuple[int, ...]) -> float:
        p1, p2, p3, p4, p5, p6 = idx
        width = dist(p1, p4)
        return (dist(p2, p6) + dist(p3, p5)) / (2.0 * width) if width > 0 else float("nan")

    eye_open = (ear(RIGHT_EAR_IDX) + ear(LEFT_EAR_IDX)) / 2.0
    width = dist(*MOUTH_CORNERS)
    if width <= 0:
        nan = float("nan")
        return ExpressionMeasure(float(eye_open), nan, nan)
    mouth_open = float(np.mean([dist(i, j) for i, j in INNER_LIP_PAIRS])) / width

    xy = pts[:, :2]
    right_eye = xy[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left_eye = xy[list(LEFT_EYE_CORNERS)].mean(axis=0)
    across = left_eye - right_eye  # patient's right -> left, i.e. image left -> right if frontal
    norm = float(np.linalg.norm(across))
    if norm == 0:
        return ExpressionMeasure(float(eye_open), float(mouth_open), float("nan"))
    across /= norm
    centre = xy[list(LIP_CENTRE_PAIR)].mean(axis=0)
    corners = xy[list(MOUTH_CORNERS)].mean(axis=0)
    # "up" on the face: perpendicular to the eye line, pointing from the mouth toward the eyes
    up = np.array([across[1], -across[0]])
    if float(((right_eye + left_eye) / 2.0 - centre) @ up) < 0:
        up = -up
    smile = float((corners - centre) @ up) / width
    return ExpressionMeasure(float(eye_open), float(mouth_open), smile)
