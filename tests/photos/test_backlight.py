"""The backlight check: a face darker than what is behind it (a window behind the patient).

Metamorphic, on scikit-image's astronaut(): the background beside and above the face replaced by a
bright window (and the face under-exposed against it, as a camera metering the window leaves it)
is flagged by its own named check with its own guidance; the same photo darkened or brightened as
a whole is not backlit (the exposure check speaks then).
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

import cv2
import numpy as np
import pytest
from skimage import data

from analysis.photos.compare import BACKLIGHT_FAIL_DL, BACKLIGHT_WARN_DL, compare
from analysis.photos.lighting import measure_lighting, surround_lightness
from analysis.photos.types import Comparison, PhotoMeasurement
from tests.support.faces import astronaut_landmarks, face_span, horizontal_ramp, scaled


def _photo(rgb: np.ndarray, lm: np.ndarray, view: str = "face_frontal") -> PhotoMeasurement:
    m = measure_lighting(rgb, landmarks_px=lm)
    h, w = rgb.shape[:2]
    return PhotoMeasurement(
        ok=True,
        face_found=True,
        view=view,
        width_px=w,
        height_px=h,
        ipd_px=42.0,
        exposure_l=m.exposure_l,
        clipped_share=m.clipped_share,
        lab_median=m.lab_median,
        light_side=m.light_side,
        light_side_sd=m.light_side_sd,
        exposure_sd_l=m.exposure_sd_l,
        color_sd_ab=m.color_sd_ab,
        backlight_dl=m.backlight_dl,
        backlight_sd_l=m.backlight_sd_l,
    )


def _face_mask() -> np.ndarray:
    """The face mesh's hull dilated by 35 % of the face width (face, hair, ears)."""
    pts = astronaut_landmarks()[:468, :2]
    width = float(np.ptp(pts[:, 0]))
    face = np.zeros((512, 512), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    r = int(0.35 * width)
    return cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


@lru_cache(maxsize=1)
def _scenes() -> dict[str, np.ndarray]:
    rgb = np.ascontiguousarray(data.astronaut())
    pts = astronaut_landmarks()[:468, :2]
    face = _face_mask()
    behind = face == 0
    behind[int(pts[:, 1].max()) :] = False  # the window is behind the head, not the body
    window = rgb.copy()
    window[behind] = 245
    dark_face = np.where(face[..., None] > 0, 0.55, 1.0)
    return {
        "baseline": rgb,
        "window": window,
        "window_dark_face": np.clip(window * dark_face, 0, 255).astype(np.uint8),
        "darker": np.clip(rgb * 0.5, 0, 255).astype(np.uint8),
        "brighter": np.clip(rgb * 1.3, 0, 255).astype(np.uint8),
    }


def _check(name: str) -> Comparison:
    lm = astronaut_landmarks()
    scenes = _scenes()
    return compare(_photo(scenes["baseline"], lm), _photo(scenes[name], lm))


def test_a_window_behind_an_under_exposed_face_fails_with_its_own_guidance() -> None:
    result = _check("window_dark_face")
    check = result.check("backlight")
    assert check.status == "fail"
    assert check.value is not None and check.value > BACKLIGHT_FAIL_DL
    assert "turn the patient away from the window" in check.message
    assert result.verdict == "fail"
    assert any("window" in r for r in result.reasons)


def test_a_bright_window_alone_is_flagged_and_its_range_is_shown() -> None:
    check = _check("window").check("backlight")
    assert check.status in ("warn", "fail")
    assert check.uncertainty is not None and check.uncertainty > 0
    low, high = check.to_json_dict()["range"]
    assert low < check.value < high


@pytest.mark.parametrize("name", ["darker", "brighter"])
def test_the_whole_photo_darker_or_brighter_is_not_backlight(name: str) -> None:
    result = _check(name)
    assert result.check("backlight").status == "pass", result.check("backlight").message
    assert result.check("exposure").status != "pass"


def test_a_lamp_beside_the_patient_is_the_light_direction_check_not_backlight() -> None:
    lm = astronaut_landmarks()
    rgb = _scenes()["baseline"]
    # the face's image-left half in shadow, the background as it was: the face's median drops
    # well below the background, but its lit half does not
    x0, x1 = face_span(lm)
    ramp = horizontal_ramp(rgb.shape, 0.2, 1.0, span=(x0, (x0 + x1) / 2))
    side_lit = np.where(_face_mask()[..., None] > 0, scaled(rgb, ramp), rgb).astype(np.uint8)
    lit = measure_lighting(side_lit, landmarks_px=lm)
    assert lit.background_l - lit.exposure_l > BACKLIGHT_WARN_DL  # a whole-face median would flag
    result = compare(_photo(rgb, lm), _photo(side_lit, lm))
    assert result.check("lighting").status != "pass"
    assert result.check("backlight").status == "pass", result.check("backlight").message


def test_the_same_photo_passes_and_backlight_figures_reach_the_json() -> None:
    result = _check("baseline")
    check = result.check("backlight")
    assert check.status == "pass" and check.value == pytest.approx(0.0)
    out = json.loads(json.dumps(result.to_json_dict()))
    names = [c["name"] for c in out["checks"]]
    assert names.index("backlight") == names.index("lighting") + 1
    photo = _photo(_scenes()["baseline"], astronaut_landmarks()).to_json_dict()
    assert photo["backlight_dl"] is not None and photo["backlight_sd_l"] > 0


def test_not_assessed_on_scalp_views_or_without_a_visible_background() -> None:
    lm = astronaut_landmarks()
    base = _photo(_scenes()["baseline"], lm)
    scalp = replace(base, view="scalp_vertex")
    assert compare(scalp, scalp).check("backlight").status == "not_assessed"
    older = replace(base, backlight_dl=None, backlight_sd_l=None)
    check = compare(older, base).check("backlight")
    assert check.status == "not_assessed" and "baseline" in check.message
    # a face filling the whole frame leaves no background to measure
    pts = lm[:468, :2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    tight = np.ascontiguousarray(_scenes()["baseline"][y0:y1, x0:x1])
    assert np.isnan(surround_lightness(tight, lm - [x0, y0, 0]))
