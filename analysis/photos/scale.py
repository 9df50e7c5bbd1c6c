"""Camera distance proxies: inter-pupillary distance in pixels and iris-based distance in millimetres.

* ``ipd_px`` is the distance between the two iris centres (FaceMesh landmarks 468 and 473) in the
  **original file's pixels**, divided by ``cos(yaw)`` so a turned head is not mistaken for a farther
  one. The ratio of two photos' ``ipd_px`` is their relative magnification (zoom / distance change).
* :func:`iris_distance_mm` gives the camera-to-eye distance from the iris diameter, which varies
  little between adults (horizontal visible iris diameter 11.7 +/- 0.5 mm; Caroline & Andre 2002,
  "The effect of corneal diameter on soft lens fitting"; the value MediaPipe's iris model uses), and the
  pinhole relation ``Z = f_px * 11.7 mm / d_px``.
"""

from __future__ import annotations

import numpy as np

IRIS_CENTRES: tuple[int, int] = (468, 473)
# (left, top, right, bottom) ring points of each iris: 469..472 around 468, 474..477 around 473
IRIS_RINGS: tuple[tuple[int, int, int, int], ...] = ((469, 470, 471, 472), (474, 475, 476, 477))
IRIS_DIAMETER_MM = 11.7
IRIS_DIAMETER_SD_MM = 0.5
MAX_YAW_CORRECTION_DEG = 60.0


def _check(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[0] != 478 or pts.shape[1] not in (2, 3):
        raise ValueError(
            f"iris measures need the 478 FaceMesh landmarks (478, 2|3), got shape {pts.shape}"
        )
    return pts


def ipd_px(points: np.ndarray, *, scale: float = 1.0, yaw_deg: float | None = None) -> float:
    """Inter-pupillary distance in original pixels, corrected for yaw.

    Parameters
    ----------
    points : ndarray, shape (478, 2) or (478, 3)
        FaceMesh landmarks with iris points, x/y in analysis pixels.
    scale : float, optional
        Analysis pixels per original pixel (``IngestedPhoto.scale``, <= 1); the result is divided by it.
    yaw_deg : float, optional
        Head yaw; the 2D distance is divided by ``cos(yaw)`` (yaw clipped to +/- 60 degrees). Roll needs
        no correction (in-plane); pitch barely shortens a horizontal segment.

    Returns
    -------
    float
        Distance in original pixels.
    """
    pts = _check(points)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    a, b = IRIS_CENTRES
    dist = float(np.hypot(*(pts[a, :2] - pts[b, :2]))) / scale
    if yaw_deg is not None and np.isfinite(yaw_deg):
        dist /= np.cos(np.radians(min(abs(yaw_deg), MAX_YAW_CORRECTION_DEG)))
    return dist


def iris_diameter_px(points: np.ndarray) -> float:
    """Mean iris diameter in the landmarks' pixels: the larger of each iris's two ring spans, averaged.

    The larger span is used because turning (or a lid covering the top of the iris) only shortens one.
    """
    pts = _check(points)
    spans = []
    for left, top, right, bottom in IRIS_RINGS:
        horizontal = np.hypot(*(pts[left, :2] - pts[right, :2]))
        vertical = np.hypot(*(pts[top, :2] - pts[bottom, :2]))
        spans.append(max(horizontal, vertical))
    return float(np.mean(spans))


def iris_distance_mm(
    points: np.ndarray, *, focal_px: float, landmark_sd_fraction: float = 0.03
) -> tuple[float, float]:
    """Camera-to-iris distance and its standard deviation, both in millimetres.

    Parameters
    ----------
    points : ndarray, shape (478, 2) or (478, 3)
        FaceMesh landmarks, in the same pixels as ``focal_px``.
    focal_px : float
        Focal length in those pixels (see :func:`analysis.photos.pose.focal_length_px`; needs the EXIF
        35 mm-equivalent focal length to be meaningful).
    landmark_sd_fraction : float, optional
        Assumed relative error of the measured iris diameter (landmark noise); combined in quadrature
        with the population spread of the true diameter (0.5 / 11.7 = 4.3 %).

    Returns
    -------
    distance_mm, sd_mm : float
    """
    if not (np.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"focal_px must be a positive number, got {focal_px}")
    diameter = iris_diameter_px(points)
    if not diameter > 0:
        raise ValueError("iris diameter is zero: the iris landmarks are degenerate")
    distance = focal_px * IRIS_DIAMETER_MM / diameter
    rel_sd = np.hypot(IRIS_DIAMETER_SD_MM / IRIS_DIAMETER_MM, landmark_sd_fraction)
    return float(distance), float(distance * rel_sd)
