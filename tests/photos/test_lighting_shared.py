"""The lighting check on real photos with known light directions (shared test sets).

* Extended Yale B crops (subjects yaleB01-yaleB05 here; the benchmark covers all): azimuth > 0 is a
  light on the subject's right, so the image's left half is lit and ``light_side`` must fall; the
  message must name the patient's right. The crops are padded with a 30% black border for FaceMesh
  (see the set's README) and measured unpadded.
* Yale faces: ``leftlight`` lights the image's left side (the patient's right).
* The lighting uncertainty (``analysis.photos.lighting``, "Uncertainty") on pairs whose light
  direction did not change (same azimuth, elevation +-20 deg): of the right size for the scatter.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from analysis.photos.compare import compare
from analysis.photos.lighting import measure_lighting
from analysis.photos.types import PhotoMeasurement
from tests.conftest import SHARED_DATASETS

if TYPE_CHECKING:
    from analysis.photos.landmarks import FaceLandmarks

pytestmark = pytest.mark.shared

YALEB_SUBJECTS = ("yaleB01", "yaleB02", "yaleB03", "yaleB04", "yaleB05")
YALEFACES_SUBJECTS = tuple(f"subject{n:02d}" for n in range(1, 16))


def _detect() -> Callable[[np.ndarray], FaceLandmarks | None]:
    try:
        from analysis.photos.landmarks import detect_face_landmarks
    except ImportError:
        pytest.skip("analysis.photos.landmarks is not available")
    return detect_face_landmarks


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _measure(path: Path, *, pad: float) -> PhotoMeasurement:
    rgb = _rgb(path)
    h, w = rgb.shape[:2]
    py, px = round(pad * h), round(pad * w)
    found = _detect()(np.pad(rgb, ((py, py), (px, px), (0, 0))))
    if found is None:
        return PhotoMeasurement(path=str(path), ok=True, view="face_frontal", face_found=False)
    lm = np.asarray(found.points_px, float) - [px, py, 0]
    light = measure_lighting(rgb, landmarks_px=lm)
    return PhotoMeasurement(
        path=str(path),
        ok=True,
        view="face_frontal",
        face_found=True,
        width_px=w,
        height_px=h,
        exposure_l=light.exposure_l,
        clipped_share=light.clipped_share,
        lab_median=light.lab_median,
        light_side=light.light_side,
        light_side_sd=light.light_side_sd,
        exposure_sd_l=light.exposure_sd_l,
        color_sd_ab=light.color_sd_ab,
    )


def _light_side(subject: str, azimuth: int) -> float:
    side = _yaleb(subject, azimuth, 0).light_side
    assert side is not None, (subject, azimuth)
    return side


def _yaleb(subject: str, azimuth: int, elevation: int) -> PhotoMeasurement:
    assert SHARED_DATASETS is not None
    name = f"{subject}_P00A{azimuth:+04d}E{elevation:+03d}.pgm"
    m = _measure(SHARED_DATASETS / "extended_yaleb_cropped" / subject / name, pad=0.3)
    assert m.face_found, f"no face on {name}"
    return m


@pytest.mark.parametrize("subject", YALEB_SUBJECTS)
def test_yaleb_side_light_is_flagged_and_named_from_the_patients_side(subject: str) -> None:
    base = _yaleb(subject, 0, 0)
    from_right = compare(base, _yaleb(subject, +50, 0)).check("lighting")  # image left lit
    from_left = compare(base, _yaleb(subject, -50, 0)).check("lighting")  # image right lit
    assert (
        from_right.status in ("warn", "fail")
        and from_right.value is not None
        and from_right.value < 0
    )
    assert "patient's right (image left)" in from_right.message
    assert (
        from_left.status in ("warn", "fail") and from_left.value is not None and from_left.value > 0
    )
    assert "patient's left (image right)" in from_left.message


@pytest.mark.parametrize("subject", YALEB_SUBJECTS)
def test_yaleb_light_side_falls_steadily_as_the_light_moves_to_the_subjects_right(
    subject: str,
) -> None:
    """Monotonic up to 25 deg; beyond, the linear fit saturates (attached shadows) but stays far
    from the frontal value."""
    values = [_light_side(subject, az) for az in (-25, -10, 0, 10, 25)]
    assert all(a > b for a, b in pairwise(values)), values
    frontal = values[2]
    for az in (-70, -50, 50, 70):
        value = _light_side(subject, az)
        assert np.sign(value - frontal) == -np.sign(az) and abs(value - frontal) > 0.3, (az, value)


@pytest.mark.parametrize("subject", YALEB_SUBJECTS)
def test_yaleb_near_frontal_light_passes(subject: str) -> None:
    base = _yaleb(subject, 0, 0)
    for az, el in ((5, -10), (-5, 10), (5, 10), (-5, -10)):
        check = compare(base, _yaleb(subject, az, el)).check("lighting")
        assert check.status == "pass", (az, el, check.message)


def _yaleface(subject: str, condition: str) -> PhotoMeasurement:
    assert SHARED_DATASETS is not None
    m = _measure(SHARED_DATASETS / "yalefaces" / f"{subject}.{condition}.jpeg", pad=0.0)
    assert m.face_found, f"no face on {subject}.{condition}"
    return m


def test_yalefaces_left_and_right_light_are_flagged_with_the_right_side() -> None:
    wrong = []
    for subject in YALEFACES_SUBJECTS:
        base = _yaleface(subject, "centerlight")
        left = compare(base, _yaleface(subject, "leftlight")).check("lighting")
        right = compare(base, _yaleface(subject, "rightlight")).check("lighting")
        if left.status == "pass" or "patient's right (image left)" not in left.message:
            wrong.append((subject, "leftlight", left.message))
        if right.status == "pass" or "patient's left (image right)" not in right.message:
            wrong.append((subject, "rightlight", right.message))
    assert not wrong, wrong


def test_yaleb_same_azimuth_pairs_pass_and_their_uncertainty_fits_their_scatter() -> None:
    z, sds = [], []
    for subject in YALEB_SUBJECTS:
        base = _yaleb(subject, 0, 0)
        for el in (20, -20):
            check = compare(base, _yaleb(subject, 0, el)).check("lighting")
            assert check.status == "pass", (subject, el, check.message)
            assert check.uncertainty is not None and check.uncertainty > 0
            assert check.value is not None
            z.append(check.value / check.uncertainty)
            sds.append(check.uncertainty)
    rms = float(np.sqrt(np.mean(np.square(z))))
    assert 0.3 < rms < 3.0, (rms, z)  # a model off by a factor of three or more fails this
    assert max(sds) < 0.1  # and it never swamps the 0.22 tolerance


@pytest.mark.parametrize("subject", YALEB_SUBJECTS)
def test_yaleb_strong_side_light_is_beyond_the_tolerance_beyond_doubt(subject: str) -> None:
    base = _yaleb(subject, 0, 0)
    for az in (-50, 50):
        check = compare(base, _yaleb(subject, az, 0)).check("lighting")
        low, high = check.to_json_dict()["range"]
        assert check.status in ("warn", "fail")
        assert min(abs(low), abs(high)) > check.warn_at, (az, low, high)
