"""Expression ratios (synthetic landmark edits, astronaut) and sharpness (blur on astronaut)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian

from analysis.photos.expression import (
    INNER_LIP_PAIRS,
    LEFT_EAR_IDX,
    MOUTH_CORNERS,
    RIGHT_EAR_IDX,
    ExpressionMeasure,
    measure_expression,
)
from analysis.photos.sharpness import measure_sharpness
from tests.support.faces import astronaut_landmarks


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return rgb
    out = gaussian(rgb, sigma=sigma, channel_axis=-1, preserve_range=True)
    blurred_rgb: np.ndarray = np.clip(out, 0, 255).round().astype(np.uint8)
    return blurred_rgb


def rotation(points: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate (x, y) about the points' centroid; z unchanged."""
    out = points.copy()
    c = points[:, :2].mean(axis=0)
    t = np.radians(angle_deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    out[:, :2] = (points[:, :2] - c) @ r.T + c
    return out


# ---------------------------------------------------------------- expression


def test_astronaut_expression_is_plausible_open_eyes_closed_mouth_smiling() -> None:
    expr = measure_expression(astronaut_landmarks())
    assert 0.2 < expr.eye_open < 0.45
    assert 0.0 <= expr.mouth_open < 0.3
    assert expr.smile > 0.03  # she is smiling: the mouth corners sit above the lip centre


def test_expression_is_invariant_to_scale_shift_and_roll() -> None:
    lm = astronaut_landmarks()
    ref = measure_expression(lm)
    for moved in (lm * 3.0, lm + [400.0, -120.0, 0.0], rotation(lm, 25.0), rotation(lm, 180.0)):
        out = measure_expression(moved)
        assert out.eye_open == pytest.approx(ref.eye_open, rel=1e-6)
        assert out.mouth_open == pytest.approx(ref.mouth_open, rel=1e-6)
        assert out.smile == pytest.approx(ref.smile, rel=1e-6, abs=1e-9)


def test_mirrored_coordinates_keep_the_smile_sign() -> None:
    lm = astronaut_landmarks()
    mirrored = lm.copy()
    mirrored[:, 0] *= -1
    assert measure_expression(mirrored).smile == pytest.approx(measure_expression(lm).smile)


def test_opening_the_mouth_raises_mouth_open() -> None:
    lm = astronaut_landmarks()
    width = np.linalg.norm(lm[MOUTH_CORNERS[0]] - lm[MOUTH_CORNERS[1]])
    values = []
    for drop in (0.0, 0.1, 0.3):
        moved = lm.copy()
        for _, lower in INNER_LIP_PAIRS:
            moved[lower, 1] += drop * width  # lower lip moves down the image
        values.append(measure_expression(moved).mouth_open)
    assert values[0] < values[1] < values[2]
    assert values[2] - values[0] == pytest.approx(0.3, abs=0.05)


def test_lifting_the_mouth_corners_raises_smile_and_closing_eyes_lowers_eye_open() -> None:
    lm = astronaut_landmarks()
    ref = measure_expression(lm)
    lifted = lm.copy()
    lifted[list(MOUTH_CORNERS), 1] -= 5.0  # up the image
    assert measure_expression(lifted).smile > ref.smile + 0.05
    closed = lm.copy()
    for _p1, p2, p3, _p4, p5, p6 in (RIGHT_EAR_IDX, LEFT_EAR_IDX):
        closed[[p2, p3]] = closed[[p6, p5]]  # upper lid onto the lower lid
    assert measure_expression(closed).eye_open < 0.05 < ref.eye_open


def test_expression_rejects_other_landmark_sets() -> None:
    with pytest.raises(ValueError, match="478"):
        measure_expression(np.zeros((68, 2)))
    bad = astronaut_landmarks()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        measure_expression(bad)


# ---------------------------------------------------------------- sharpness


@pytest.mark.parametrize("use_landmarks", [True, False], ids=["face", "whole_frame"])
def test_blurring_lowers_sharpness_monotonically(use_landmarks: bool) -> None:
    img = data.astronaut()
    lm = astronaut_landmarks() if use_landmarks else None
    b0, b1, b2 = (measure_sharpness(blurred(img, s), landmarks_px=lm) for s in (0, 1, 2))
    assert b0 > b1 > b2 > 0, (b0, b1, b2)


def test_camera_distance_does_not_masquerade_as_blur() -> None:
    """Same photo at two sizes (as if taken from 25% farther): the face figure barely moves,
    whereas the raw whole-image Laplacian variance (no normalisation) would move a lot."""
    img, lm = data.astronaut(), astronaut_landmarks()
    sizes = (4.0, 3.0)
    faces, raw = [], []
    for f in sizes:
        n = int(512 * f)
        big = cv2.resize(img, (n, n), interpolation=cv2.INTER_LANCZOS4)
        faces.append(measure_sharpness(big, landmarks_px=lm * f))
        grey = cv2.cvtColor(big, cv2.COLOR_RGB2GRAY).astype(np.float32)
        raw.append(float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1).var()))
    assert faces[1] / faces[0] == pytest.approx(1.0, abs=0.15)
    assert raw[1] / raw[0] > 1.3  # the naive figure would call the farther photo "sharper"


def test_a_darker_exposure_does_not_read_as_blur() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    darker = np.clip(img.astype(float) * 0.6, 0, 255).round().astype(np.uint8)
    ratio = measure_sharpness(darker, landmarks_px=lm) / measure_sharpness(img, landmarks_px=lm)
    assert ratio == pytest.approx(1.0, abs=0.1)


def test_sharpness_of_a_blank_image_is_zero_and_bad_input_raises() -> None:
    assert measure_sharpness(np.full((64, 64, 3), 128, np.uint8)) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="RGB uint8"):
        measure_sharpness(np.zeros((64, 64), np.uint8))


# ---------------------------------------------------------------- shared: Yale faces expressions


def _yaleface_expression(subject: str, condition: str) -> ExpressionMeasure:
    from PIL import Image

    from analysis.photos.landmarks import detect_face_landmarks
    from tests.conftest import SHARED_DATASETS

    assert SHARED_DATASETS is not None
    with Image.open(SHARED_DATASETS / "yalefaces" / f"{subject}.{condition}.jpeg") as im:
        found = detect_face_landmarks(np.asarray(im.convert("RGB")))
    assert found is not None, f"no face on {subject}.{condition}"
    return measure_expression(found.points_px)


@pytest.mark.shared
def test_yalefaces_expression_changes_are_flagged_against_normal() -> None:
    """Per subject, ``happy`` must be flagged as smiling more (or mouth more open), ``sleepy`` as
    eyes more closed and ``surprised`` as mouth more open, with the default tolerances."""
    from analysis.photos.compare import compare
    from analysis.photos.types import PhotoMeasurement

    def as_measurement(expr: ExpressionMeasure) -> PhotoMeasurement:
        return PhotoMeasurement(
            ok=True,
            view="face_frontal",
            face_found=True,
            eye_open=expr.eye_open,
            mouth_open=expr.mouth_open,
            smile=expr.smile,
        )

    wanted = {
        "happy": ("smiling more", "mouth more open"),
        "sleepy": ("eyes more closed",),
        "surprised": ("mouth more open",),
    }
    misses = []
    for n in range(1, 16):
        subject = f"subject{n:02d}"
        base = as_measurement(_yaleface_expression(subject, "normal"))
        for condition, texts in wanted.items():
            check = compare(base, as_measurement(_yaleface_expression(subject, condition)))
            expr = check.check("expression")
            if expr.status == "pass" or not any(t in expr.message for t in texts):
                misses.append((subject, condition, expr.message))
    assert not misses, misses


def test_a_smaller_face_gives_wider_expression_ranges() -> None:
    """Metamorphic: the same face at half the size in pixels has a wider s.d. on every figure
    (the landmark jitter is fixed in pixels), while the figures themselves do not change."""
    from analysis.photos.expression import expression_sd

    lm = astronaut_landmarks()
    big, small = expression_sd(lm), expression_sd(lm * 0.5)
    assert all(s > b > 0 for s, b in zip(small, big, strict=True)), (big, small)
    expr_big, expr_small = measure_expression(lm), measure_expression(lm * 0.5)
    assert expr_small.eye_open == pytest.approx(expr_big.eye_open)


def test_expression_sd_matches_a_monte_carlo_of_the_jitter() -> None:
    """The delta-method s.d. (floors aside) agrees with jittering the landmarks for real."""
    from analysis.photos import expression as ex

    lm = astronaut_landmarks()
    rng = np.random.default_rng(3)
    jitter = 0.8
    draws = np.array(
        [ex._figures_batch((lm + rng.normal(0, jitter, lm.shape))[None])[0] for _ in range(600)]
    )
    floors = np.array([ex.EYE_OPEN_FLOOR, ex.MOUTH_OPEN_FLOOR, ex.SMILE_FLOOR])
    model = np.sqrt(np.array(ex.expression_sd(lm, jitter_px=jitter)) ** 2 - floors**2)
    assert draws.std(axis=0) == pytest.approx(model, rel=0.15)


def test_a_smaller_face_gives_a_wider_relative_sharpness_range() -> None:
    """Metamorphic: astronaut() at half size (a face with a quarter of the pixels) has a larger
    relative s.d. of sharpness: it is upsampled to the reference eye distance."""
    from analysis.photos.sharpness import sharpness_sd

    img, lm = data.astronaut(), astronaut_landmarks()
    small = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
    value_big, sd_big = sharpness_sd(img, landmarks_px=lm)
    value_small, sd_small = sharpness_sd(small, landmarks_px=lm * 0.5)
    assert sd_small / value_small > sd_big / value_big > 0
    assert measure_sharpness(img, landmarks_px=lm) == value_big


def test_expression_and_sharpness_checks_are_three_state_on_their_range() -> None:
    """A difference well inside, straddling and well beyond the tolerance: pass, warn (borderline,
    with the ± range in the message) and fail; the check reports its s.d. in its own units."""
    from analysis.photos.checks.expression import _expression_check
    from analysis.photos.checks.sharpness import _sharpness_check
    from analysis.photos.compare import Tolerances
    from analysis.photos.types import PhotoMeasurement

    tol = Tolerances()
    sd = 0.02
    base = PhotoMeasurement(
        ok=True, eye_open=0.3, mouth_open=0.05, smile=0.0, **_sds(sd), sharpness=2.0
    )
    statuses = []
    reach = 1.645 * sd * np.sqrt(2)  # one-sided 95 % reach of the pair's range
    straddling = (tol.smile_warn + tol.smile_fail) / 2 + reach  # beyond warn, range reaches fail
    for delta in (tol.smile_warn + 0.5 * reach, straddling, tol.smile_fail + 2 * reach):
        follow = PhotoMeasurement(
            ok=True, eye_open=0.3, mouth_open=0.05, smile=delta, **_sds(sd), sharpness=2.0
        )
        check = _expression_check(base, follow, tol, scalp=False)
        statuses.append(check.status)
        assert check.uncertainty == pytest.approx(sd * np.sqrt(2))
        if check.status == "warn":
            assert "borderline" in check.message and "±" in check.message
    assert statuses == ["pass", "warn", "fail"]
    # without the s.d. (older records) the same borderline difference is graded on the plain rule
    old = [PhotoMeasurement(ok=True, eye_open=0.3, mouth_open=0.05, smile=s) for s in (0.0, 0.05)]
    assert _expression_check(old[0], old[1], tol, scalp=False).uncertainty is None
    # sharpness: a slight blur within its range passes, a clear one fails
    sharp = PhotoMeasurement(ok=True, sharpness=2.0, sharpness_sd=0.2)
    for ratio, expected in ((0.75, "pass"), (0.3, "fail")):
        follow = PhotoMeasurement(ok=True, sharpness=2.0 * ratio, sharpness_sd=0.2 * ratio)
        check = _sharpness_check(sharp, follow, tol)
        assert check.status == expected, (ratio, check)
        assert check.uncertainty == pytest.approx(ratio * 0.1 * np.sqrt(2))


def _sds(sd: float) -> dict[str, float]:
    return {"eye_open_sd": sd, "mouth_open_sd": sd, "smile_sd": sd}


def test_measure_photo_fills_the_expression_and_sharpness_uncertainty() -> None:
    """The figures and their s.d. reach the measurement and its JSON, beside the old keys."""
    from analysis.photos.ingest import IngestedPhoto
    from analysis.photos.measure import measure_photo

    astronaut_landmarks()  # skips without the landmark backend
    face = np.ascontiguousarray(data.astronaut())
    photo = IngestedPhoto("0" * 64, "PNG", 512, 512, face, 1.0, None, None, None, 1)
    m = measure_photo(photo, view="face_frontal")
    assert m.ok
    out = m.to_json_dict()
    for name in ("eye_open", "mouth_open", "smile", "sharpness"):
        assert out[name] is not None and out[f"{name}_sd"] is not None and out[f"{name}_sd"] > 0
