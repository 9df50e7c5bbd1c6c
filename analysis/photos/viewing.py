"""Image composites for looking at two photos of one view: aligned pair, blend, wipe, difference.

All functions take and return ``uint8`` RGB arrays of shape ``(H, W, 3)``. Alignment is the
landmark similarity of :func:`analysis.photos.align.align_to_baseline` (rotation, uniform scale,
translation on the stable eye/nose landmarks); landmarks are given in the pixels of the array they
belong to (use :func:`landmarks_for` to scale original-pixel landmarks to a display copy). Without
landmarks on both photos (scalp views, no face found) the moving photo is only resized to the
reference's frame, and the result says it was not aligned.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlignedPair:
    """``reference`` and ``moving`` resampled into the reference's frame (same shape)."""

    reference: np.ndarray
    moving: np.ndarray
    aligned: bool
    note: str


def landmarks_for(
    landmarks_px: np.ndarray | None, *, original_width_px: int | None, display_width_px: int
) -> np.ndarray | None:
    """Scale original-pixel landmarks to a display copy ``display_width_px`` wide."""
    if landmarks_px is None or not original_width_px:
        return None
    factor = display_width_px / float(original_width_px)
    out = np.asarray(landmarks_px, dtype=float)[:, :2] * factor
    return out


def align_pair(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    reference_landmarks: np.ndarray | None,
    moving_landmarks: np.ndarray | None,
) -> AlignedPair:
    """Warp ``moving`` onto ``reference`` by landmarks, or resize it when landmarks are missing."""
    import cv2

    from analysis.photos.align import align_to_baseline

    h, w = reference.shape[:2]
    if reference_landmarks is not None and moving_landmarks is not None:
        try:
            warped = align_to_baseline(
                moving, moving_landmarks, reference.shape, reference_landmarks
            )
            return AlignedPair(reference, warped, True, "aligned on eye and nose landmarks")
        except ValueError as exc:
            note = f"not aligned ({exc}); shown resized"
    else:
        note = "not aligned (no face landmarks on both photos); shown resized"
    resized = cv2.resize(np.ascontiguousarray(moving), (w, h), interpolation=cv2.INTER_AREA)
    return AlignedPair(reference, resized, False, note)


def blend(a: np.ndarray, b: np.ndarray, *, alpha: float) -> np.ndarray:
    """``(1 - alpha) * a + alpha * b``; ``alpha`` in [0, 1] (0 shows ``a`` only)."""
    _same_shape(a, b)
    alpha = float(np.clip(alpha, 0.0, 1.0))
    out = (1.0 - alpha) * a.astype(np.float32) + alpha * b.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def wipe(a: np.ndarray, b: np.ndarray, *, position: float) -> np.ndarray:
    """``a`` left of the split, ``b`` right of it; ``position`` in [0, 1] of the width. A thin white
    line marks the split."""
    _same_shape(a, b)
    w = a.shape[1]
    split = int(round(np.clip(position, 0.0, 1.0) * w))
    out = b.copy()
    out[:, :split] = a[:, :split]
    if 0 < split < w:
        out[:, max(0, split - 1) : split + 1] = 255
    return out


def difference_map(a: np.ndarray, b: np.ndarray, *, gain: float = 4.0) -> np.ndarray:
    """Per-pixel absolute difference of lightness, amplified by ``gain`` and false-coloured
    (dark blue = unchanged, yellow/red = changed). Black borders from warping show as changed."""
    import cv2

    _same_shape(a, b)
    ga = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2GRAY).astype(np.float32)
    diff = np.clip(np.abs(ga - gb) * gain, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(diff, cv2.COLORMAP_INFERNO)
    out: np.ndarray = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    return out


def side_by_side(a: np.ndarray, b: np.ndarray, *, gap_px: int = 8) -> np.ndarray:
    """``a`` and ``b`` next to each other with a white gap (same height required)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"images must have the same height, got {a.shape} and {b.shape}")
    gap = np.full((a.shape[0], gap_px, 3), 255, np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def decode_for_display(data: bytes, *, max_side: int = 1024) -> np.ndarray:
    """Oriented RGB copy of stored photo bytes, longest side ``<= max_side`` (via ``read_photo``)."""
    from analysis.photos.ingest import read_photo

    return read_photo(data, max_side=max_side).rgb


def to_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="PNG")
    return out.getvalue()


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
