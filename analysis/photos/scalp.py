"""Registration of two scalp photos of the same area (no face to measure, so framing is compared).

Maths
-----
ORB key points (Rublee et al., ICCV 2011) are matched between the two grey images by Hamming
distance with Lowe's ratio test (0.8), and a 4-degree-of-freedom similarity (scale, rotation,
translation) mapping *baseline* pixel coordinates to *follow-up* ones is fitted by RANSAC
(``cv2.estimateAffinePartial2D``, reprojection threshold 1.5% of the image diagonal) and refined on
the inliers. From ``x_f = s R(theta) x_b + t``:

* ``scale_ratio`` = ``s`` (follow-up / baseline): ``> 1`` when the same area appears larger in the
  follow-up (camera closer or zoomed in);
* ``rotation_deg`` = ``theta``, ``> 0`` clockwise as seen in the image (y points down);
* ``shift_x`` / ``shift_y`` = where the baseline's frame centre lands in the follow-up, minus the
  follow-up's centre, as a fraction of the follow-up's width / height (``> 0``: content moved to
  the image right / down).

Both images are first resized so their longest side is ``work_side_px`` (default 384, the size of
``PhotoMeasurement.thumb``); the figures are resolution-free. Pose is not assessed on scalp views.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_RATIO_TEST = 0.8
_MIN_MATCHES = 8
_MIN_SCALE = 0.4


@dataclass(frozen=True)
class Registration:
    """Similarity from the baseline to the follow-up photo (see module docstring for signs).

    ``ok`` is False when too few consistent matches were found; the figures are then NaN and
    ``reason`` says why. ``inlier_share`` = RANSAC inliers / ratio-test matches (0-1) and
    ``n_inliers`` together are the confidence.
    """

    ok: bool
    scale_ratio: float
    rotation_deg: float
    shift_x: float
    shift_y: float
    n_matches: int
    n_inliers: int
    inlier_share: float
    reason: str = ""


def register(
    baseline_rgb: np.ndarray,
    followup_rgb: np.ndarray,
    *,
    work_side_px: int = 384,
    min_inliers: int = 12,
    min_inlier_share: float = 0.3,
    n_features: int = 2000,
) -> Registration:
    """Similarity transform taking the baseline photo onto the follow-up photo.

    Parameters
    ----------
    baseline_rgb, followup_rgb : ndarray, shape (H, W, 3), uint8
        The two photos (typically the small ``thumb`` copies; any size works).
    work_side_px : int
        Both images are resized to this longest side before matching.
    min_inliers : int
        Fewer RANSAC inliers than this -> ``ok=False``.
    min_inlier_share : float
        Fewer inliers than this share of the ratio-test matches -> ``ok=False`` (two different
        photos still give a few chance matches; the same area under changed light gives many).
        A scale outside [0.4, 2.5] is also rejected as implausible.
    n_features : int
        ORB features per image.

    Returns
    -------
    Registration
    """
    base = _grey(baseline_rgb, work_side_px)
    follow = _grey(followup_rgb, work_side_px)
    orb = cv2.ORB.create(
        nfeatures=n_features,
        scaleFactor=1.2,
        nlevels=8,
        edgeThreshold=15,
        patchSize=31,
        fastThreshold=10,
    )
    kb, db = orb.detectAndCompute(base, None)
    kf, df = orb.detectAndCompute(follow, None)
    if db is None or df is None or len(kb) < _MIN_MATCHES or len(kf) < _MIN_MATCHES:
        return _failed(0, 0, "too few distinctive features (blurred, blank or very dark photo?)")
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(db, df, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO_TEST * p[1].distance]
    if len(good) < _MIN_MATCHES:
        return _failed(len(good), 0, "too few matching features: is this the same scalp area?")
    src = np.array([kb[m.queryIdx].pt for m in good], np.float32)
    dst = np.array([kf[m.trainIdx].pt for m in good], np.float32)
    diag = float(np.hypot(*follow.shape))
    matrix, inliers = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=0.015 * diag,
        maxIters=5000,
        confidence=0.999,
        refineIters=20,
    )
    n_in = int(inliers.sum()) if inliers is not None else 0
    if matrix is None or n_in < min_inliers or n_in < min_inlier_share * len(good):
        return _failed(
            len(good),
            n_in,
            "matches are not geometrically consistent: is this the same scalp area?",
        )
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    scale = float(np.hypot(a, b))
    if not _MIN_SCALE <= scale <= 1.0 / _MIN_SCALE:
        return _failed(
            len(good),
            n_in,
            f"implausible scale change (x{scale:.2f}): is this the same scalp area?",
        )
    rotation = float(np.degrees(np.arctan2(b, a)))
    # baseline frame centre, in the work image's coordinates of the follow-up
    hb, wb = base.shape
    hf, wf = follow.shape
    centre = matrix @ np.array([(wb - 1) / 2.0, (hb - 1) / 2.0, 1.0])
    shift_x = float((centre[0] - (wf - 1) / 2.0) / wf)
    shift_y = float((centre[1] - (hf - 1) / 2.0) / hf)
    return Registration(True, scale, rotation, shift_x, shift_y, len(good), n_in, n_in / len(good))


def _failed(n_matches: int, n_inliers: int, reason: str) -> Registration:
    nan = float("nan")
    share = n_inliers / n_matches if n_matches else 0.0
    return Registration(False, nan, nan, nan, nan, n_matches, n_inliers, share, reason)


def _grey(rgb: np.ndarray, work_side_px: int) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"image too small to register: {rgb.shape}")
    h, w = rgb.shape[:2]
    s = work_side_px / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=interp)
