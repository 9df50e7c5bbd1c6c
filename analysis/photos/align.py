"""Align a follow-up photo onto its baseline for side-by-side and overlay review.

The warp is the least-squares 2D similarity (rotation, uniform scale, translation; Umeyama 1991 via
``skimage.transform.SimilarityTransform``) between the two photos' landmarks on a **stable subset**:
eye corners, nose bridge and nose tip. Mouth, jaw and brows are left out because expression moves them.
"""

from __future__ import annotations

import numpy as np

# FaceMesh indices: eye corners (33, 133 | 362, 263), nose bridge (168, 6, 197, 195), nose (5, 4, 1)
STABLE_LANDMARKS: tuple[int, ...] = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1)


def similarity_from_landmarks(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """3 x 3 homogeneous matrix of the similarity mapping ``src_pts`` onto ``dst_pts``.

    Parameters
    ----------
    src_pts, dst_pts : ndarray, shape (N, 2) or (N, 3)
        Corresponding points in pixels (only x, y are used), N >= 2.

    Returns
    -------
    ndarray, shape (3, 3)
        ``[x', y', 1]^T = M @ [x, y, 1]^T``.

    Raises
    ------
    ValueError
        If the shapes differ (naming both), there are fewer than 2 points, or the fit fails.
    """
    from skimage.transform import SimilarityTransform

    src = np.asarray(src_pts, dtype=float)
    dst = np.asarray(dst_pts, dtype=float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] not in (2, 3) or len(src) < 2:
        raise ValueError(
            f"need two matching (N, 2|3) point sets with N >= 2, got {src.shape} and {dst.shape}"
        )
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("landmarks contain NaN or infinite values")
    transform = SimilarityTransform.from_estimate(src[:, :2], dst[:, :2])
    if not transform:
        raise ValueError("could not fit a similarity between the landmark sets (degenerate points)")
    return np.asarray(transform.params, dtype=float)


def align_to_baseline(
    followup_rgb: np.ndarray,
    followup_landmarks: np.ndarray,
    baseline_shape: tuple[int, ...],
    baseline_landmarks: np.ndarray,
) -> np.ndarray:
    """Warp the follow-up image into the baseline image's frame.

    Parameters
    ----------
    followup_rgb : ndarray, shape (H1, W1, 3), uint8
        Follow-up image.
    followup_landmarks : ndarray, shape (478, 2|3)
        Its landmarks, in ``followup_rgb``'s pixels.
    baseline_shape : tuple
        ``(H0, W0)`` or ``(H0, W0, 3)`` of the baseline image the output must overlay.
    baseline_landmarks : ndarray, shape (478, 2|3)
        Baseline landmarks, in the pixels of an image of ``baseline_shape``.

    Returns
    -------
    ndarray, shape (H0, W0, 3), uint8
        The follow-up resampled (bilinear) so its stable landmarks sit on the baseline's; areas outside
        the follow-up are black.
    """
    import cv2

    idx = list(STABLE_LANDMARKS)
    follow = np.asarray(followup_landmarks, dtype=float)
    base = np.asarray(baseline_landmarks, dtype=float)
    if follow.shape != base.shape or follow.ndim != 2 or follow.shape[0] <= max(idx):
        raise ValueError(
            f"follow-up and baseline landmarks must be matching FaceMesh sets, got {follow.shape} and {base.shape}"
        )
    matrix = similarity_from_landmarks(follow[idx], base[idx])
    height, width = int(baseline_shape[0]), int(baseline_shape[1])
    image = np.ascontiguousarray(np.asarray(followup_rgb, dtype=np.uint8))
    return cv2.warpAffine(
        image, matrix[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
