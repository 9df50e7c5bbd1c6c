"""Shared test support (moved from test_lighting.py)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from skimage import data


@lru_cache(maxsize=1)
def _astronaut_landmarks() -> np.ndarray | None:
    try:
        from analysis.photos.landmarks import detect_face_landmarks
    except ImportError:
        return None
    found = detect_face_landmarks(np.ascontiguousarray(data.astronaut()))
    return None if found is None else np.asarray(found.points_px, float)


def astronaut_landmarks() -> np.ndarray:
    """FaceMesh points of astronaut() (skips the calling test when the backend is missing)."""
    lm = _astronaut_landmarks()
    if lm is None:
        pytest.skip("analysis.photos.landmarks is not available (or found no face on astronaut)")
    return lm.copy()


def scaled(rgb: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    return np.clip(rgb.astype(float) * factor, 0, 255).round().astype(np.uint8)


def horizontal_ramp(
    shape: tuple[int, ...], left: float, right: float, span: tuple[float, float] | None = None
) -> np.ndarray:
    """Multiplicative shading from ``left`` (image left) to ``right`` (image right).

    The ramp runs across ``span = (x0, x1)`` (the whole width by default) and is flat outside it.
    """
    x0, x1 = span if span is not None else (0, shape[1] - 1)
    t = np.clip((np.arange(shape[1]) - x0) / (x1 - x0), 0, 1)
    ramp = left + (right - left) * t
    return np.broadcast_to(ramp[None, :, None], shape)


def face_span(lm: np.ndarray) -> tuple[float, float]:
    return float(lm[:, 0].min()), float(lm[:, 0].max())
