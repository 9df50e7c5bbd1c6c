"""analysis.photos.resample.shrink: a box average plus a short bilinear step, close to INTER_AREA."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from analysis.photos.resample import shrink


def test_whole_factor_is_the_exact_block_mean() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    out = shrink(img, (30, 20))
    blocks = img.reshape(20, 3, 30, 3, 3).astype(float).mean(axis=(1, 3))
    assert out.shape == (20, 30, 3)
    assert np.abs(out.astype(float) - blocks).max() <= 0.5 + 1e-9  # rounding to uint8 only


@pytest.mark.parametrize("factor", [0.8, 0.55, 0.38, 0.256])
def test_fractional_factor_is_close_to_an_area_average(factor: float) -> None:
    img = np.ascontiguousarray(data.astronaut())  # a real photo: edges, skin, texture
    h, w = img.shape[:2]
    size = (round(w * factor), round(h * factor))
    ours = shrink(img, size).astype(float)
    area = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(float)
    assert ours.shape == area.shape
    # whole-image and 11 x 11 box means (what the lighting checks average) agree closely
    assert abs(ours.mean() - area.mean()) < 0.3
    boxed = [cv2.blur(x, (11, 11))[11:-11, 11:-11] for x in (ours, area)]
    assert np.median(np.abs(boxed[0] - boxed[1])) < 1.0
    # but it is a different resampler, not a copy of INTER_AREA on every pixel
    assert np.abs(ours - area).max() > 0


def test_same_size_returns_the_input_and_enlarging_is_refused() -> None:
    img = np.zeros((10, 12), np.uint8)
    assert shrink(img, (12, 10)) is img
    with pytest.raises(ValueError):
        shrink(img, (13, 10))
