"""Sharpness of a photo: variance of the Laplacian on a face crop at a fixed eye distance.

Maths
-----
The variance of the Laplacian of the grey image (Pech-Pacheco et al., "Diatom autofocusing in
brightfield microscopy: a comparative study", ICPR 2000) is the focus measure: blur removes high
spatial frequencies and lowers it. **Higher = sharper**; units are grey levels squared (grey in
0-255, 3x3 Laplacian kernel of ``cv2.Laplacian(ksize=1)``).

The figure depends on how many pixels the face covers, so a face view is first resampled so the
distance between the eye centres is ``EYE_DISTANCE_REF_PX`` (100 px) and the measure is taken inside
the face hull shrunk by 8% of that distance (the face outline against the background is left out: it
depends on the background, not on focus). A camera-distance change therefore does not masquerade
as blur, but an image whose face is *smaller* than the reference in the original still scores
lower (its detail was never captured), which is the wanted behaviour. Without landmarks (scalp
views) the whole frame is resized to ``FRAME_REF_SIDE_PX`` on its longest side.

Figures are only comparable when produced with the same reference sizes (as in
``skimage.measure.blur_effect``'s note on parameters).
"""

from __future__ import annotations

import cv2
import numpy as np

from analysis.photos.lighting import eye_distance_px

EYE_DISTANCE_REF_PX = 100.0
FRAME_REF_SIDE_PX = 768
_ERODE_FRACTION = 0.08
_MARGIN_FRACTION = 0.15


def measure_sharpness(rgb: np.ndarray, *, landmarks_px: np.ndarray | None = None) -> float:
    """Variance of the Laplacian at a normalised scale; higher = sharper.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        sRGB image.
    landmarks_px : ndarray, shape (478, 3), optional
        FaceMesh points in ``rgb``'s pixels. When given, the face is measured at a fixed eye
        distance; when omitted, the whole frame at a fixed size.

    Returns
    -------
    float
        Variance of the Laplacian (grey levels squared, >= 0); NaN if the face lies outside the
        image.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if landmarks_px is None:
        h, w = grey.shape
        s = FRAME_REF_SIDE_PX / max(h, w)
        grey = _resize(grey, s)
        return float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=1).var())

    pts = np.asarray(landmarks_px, dtype=float)
    ipd = eye_distance_px(pts)
    if not ipd > 0:
        raise ValueError("degenerate landmarks: the eye centres coincide")
    xy = pts[:468, :2]
    margin = _MARGIN_FRACTION * ipd
    h, w = grey.shape
    x0 = int(max(0, np.floor(xy[:, 0].min() - margin)))
    y0 = int(max(0, np.floor(xy[:, 1].min() - margin)))
    x1 = int(min(w, np.ceil(xy[:, 0].max() + margin)))
    y1 = int(min(h, np.ceil(xy[:, 1].max() + margin)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return float("nan")
    s = EYE_DISTANCE_REF_PX / ipd
    crop = _resize(grey[y0:y1, x0:x1], s)
    local = (xy - [x0, y0]) * s
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(local).astype(np.int32)), 1)
    r = max(1, int(round(_ERODE_FRACTION * EYE_DISTANCE_REF_PX)))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lap = cv2.Laplacian(crop.astype(np.float32), cv2.CV_32F, ksize=1)
    values = lap[mask > 0]
    return float(values.var()) if values.size > 16 else float("nan")


def _resize(grey: np.ndarray, scale: float) -> np.ndarray:
    h, w = grey.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(grey, size, interpolation=interp)
