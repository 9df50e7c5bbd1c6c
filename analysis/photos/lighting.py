"""Exposure, clipping, colour and light direction of a photo.

Maths
-----
Pixels are converted from sRGB (D65) to CIE L*a*b* (``skimage.color.rgb2lab``). On a face view the
statistics are taken over the *skin region*: the convex hull of the 478 FaceMesh points minus the eyes,
eyebrows and lips (dilated by a fraction of the inter-ocular distance), so that eye colour, make-up
and an open mouth do not move the figures. Without landmarks (scalp views) the whole frame is used.

* ``exposure_l``  = median L* (0-100) of the region.
* ``clipped_share`` = share of region pixels with any channel <= 2 or >= 253 (0-1).
* ``lab_median``  = per-channel medians (L*, a*, b*); a colour cast moves a*/b*.
* ``light_side``  = ``(R - L) / (R + L)`` where R and L are the mean L* of the region's pixels on
  the image-right and image-left side of the face's own midline (a line fitted through the FaceMesh
  midline points, so a turned or tilted head is split correctly). In ``[-1, 1]``; ``> 0`` when the
  image-right half is brighter (light from the patient's left for a patient facing the camera).
  Without landmarks the frame is split at its vertical centre line. The mean (not the median) is
  used because under strong side or back light most of a half sits in near-black shadow, where the
  median is dominated by noise and can take the wrong sign; the mean keeps the lit rim's weight.

This "half-face shading asymmetry" is the classic cue of side lighting (the nose and cheek cast and
attached shadows on the far half; cf. Georghiades et al., TPAMI 2001, whose Extended Yale B set is
used in ``benchmarks/lighting_accuracy.py`` to set the thresholds of the comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.color import rgb2lab

# FaceMesh (468/478-point) indices. Contours from mediapipe's face_mesh_connections (Apache-2.0).
MIDLINE_IDX: tuple[int, ...] = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14, 15, 16, 17, 18,
    200, 199, 175, 152,
)
RIGHT_EYE_IDX: tuple[int, ...] = (  # the patient's right eye (image left when facing the camera)
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
)
LEFT_EYE_IDX: tuple[int, ...] = (
    362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398,
)
RIGHT_BROW_IDX: tuple[int, ...] = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW_IDX: tuple[int, ...] = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
LIPS_OUTER_IDX: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)
# eye corners used for the inter-ocular distance (outer, inner) of each eye
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)

CLIP_LOW = 2
CLIP_HIGH = 253
_MAX_SAMPLES = 200_000  # pixels used for the Lab medians (a deterministic stride sample)
_WHOLE_FRAME_SIDE_PX = 1024  # whole-frame statistics are taken on a copy this size at most


@dataclass(frozen=True)
class LightingMeasure:
    """Lighting of one photo (see the module docstring for definitions and signs)."""

    exposure_l: float
    clipped_share: float
    lab_median: tuple[float, float, float]
    light_side: float
    region_px: int  # number of pixels the figures were taken over (0 -> figures are NaN)


def eye_distance_px(landmarks_px: np.ndarray) -> float:
    """Distance between the two eye centres (mean of each eye's corners), in the landmarks' pixels."""
    pts = _check_landmarks(landmarks_px)[:, :2]
    right = pts[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left = pts[list(LEFT_EYE_CORNERS)].mean(axis=0)
    return float(np.linalg.norm(left - right))


def face_skin_mask(shape: tuple[int, ...], landmarks_px: np.ndarray) -> np.ndarray:
    """Boolean mask ``(H, W)`` of the face's skin: hull of the mesh minus eyes, brows and lips.

    Parameters
    ----------
    shape : tuple
        Image shape; only ``(H, W)`` are used.
    landmarks_px : ndarray, shape (468 or 478, 2 or 3)
        FaceMesh points, x/y in the image's pixels. Points outside the image are allowed.
    """
    pts = _check_landmarks(landmarks_px)[:, :2]
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(pts[:468]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    holes = np.zeros_like(mask)
    for idx in (RIGHT_EYE_IDX, LEFT_EYE_IDX, RIGHT_BROW_IDX, LEFT_BROW_IDX, LIPS_OUTER_IDX):
        poly = cv2.convexHull(np.round(pts[list(idx)]).astype(np.int32))
        cv2.fillConvexPoly(holes, poly, 1)
    radius = max(1, int(round(0.08 * eye_distance_px(landmarks_px))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    holes = cv2.dilate(holes, kernel)
    return (mask > 0) & (holes == 0)


def face_side(shape: tuple[int, ...], landmarks_px: np.ndarray) -> np.ndarray:
    """Signed pixel offset ``(H, W)`` from the face's midline: ``> 0`` on the image-right side.

    The midline is the least-squares line ``x = a*y + b`` through the FaceMesh midline points
    (forehead, nose bridge, philtrum, lips, chin), so roll and moderate yaw are handled.
    """
    pts = _check_landmarks(landmarks_px)[:, :2]
    mid = pts[list(MIDLINE_IDX)]
    a, b = np.polyfit(mid[:, 1], mid[:, 0], 1)
    h, w = int(shape[0]), int(shape[1])
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - (a * yy + b)) / np.hypot(1.0, a)


def measure_lighting(rgb: np.ndarray, *, landmarks_px: np.ndarray | None) -> LightingMeasure:
    """Exposure, clipping, median Lab colour and left-right light balance of a photo.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        sRGB image.
    landmarks_px : ndarray, shape (478, 3) or None
        FaceMesh points in ``rgb``'s pixels; ``None`` measures the whole frame (scalp views).

    Returns
    -------
    LightingMeasure
        ``exposure_l`` in L* (0-100), ``clipped_share`` in 0-1, ``lab_median`` (L*, a*, b*),
        ``light_side`` in [-1, 1] (> 0: image-right half brighter). NaN figures (and
        ``region_px == 0``) when the face region lies outside the image.
    """
    rgb = _check_rgb(rgb)
    if landmarks_px is None:
        small = _shrink(rgb, _WHOLE_FRAME_SIDE_PX)
        h, w = small.shape[:2]
        mask = np.ones((h, w), bool)
        side = np.broadcast_to(np.arange(w) - (w - 1) / 2.0, (h, w))
        pixels_rgb = small[mask]
        clipped = _clipped(pixels_rgb)
    else:
        mask = face_skin_mask(rgb.shape, landmarks_px)
        side = face_side(rgb.shape, landmarks_px)
        clipped = _clipped(rgb[mask])
        pixels_rgb = rgb[mask]
    n = int(mask.sum())
    if n == 0:
        nan = float("nan")
        return LightingMeasure(nan, nan, (nan, nan, nan), nan, 0)
    side = side[mask]
    stride = max(1, n // _MAX_SAMPLES)
    lab = rgb2lab(pixels_rgb[::stride].reshape(-1, 1, 3)).reshape(-1, 3)
    side = side[::stride]
    lab_median = tuple(float(v) for v in np.median(lab, axis=0))
    right = lab[side > 0, 0]
    left = lab[side < 0, 0]
    if right.size == 0 or left.size == 0:
        light_side = float("nan")
    else:
        r, l = float(np.mean(right)), float(np.mean(left))
        light_side = (r - l) / (r + l) if (r + l) > 0 else 0.0
    return LightingMeasure(
        exposure_l=lab_median[0],
        clipped_share=float(clipped),
        lab_median=lab_median,  # type: ignore[arg-type]
        light_side=float(light_side),
        region_px=n,
    )


def _clipped(pixels_rgb: np.ndarray) -> float:
    if pixels_rgb.size == 0:
        return float("nan")
    bad = (pixels_rgb <= CLIP_LOW) | (pixels_rgb >= CLIP_HIGH)
    return float(bad.any(axis=-1).mean())


def _shrink(rgb: np.ndarray, max_side_px: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side_px / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"image too small: {rgb.shape}")
    return rgb


def _check_landmarks(landmarks_px: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks_px, dtype=float)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh landmarks of shape (478, 3), got {pts.shape}")
    if not np.isfinite(pts[:, :2]).all():
        raise ValueError("landmarks contain non-finite coordinates")
    return pts
