"""Lighting measures on skimage's astronaut(): metamorphic tests with known perturbations.

Landmarks come from the project's own FaceMesh backend (``analysis.photos.landmarks``), computed
once per session; the face-free tests need none.
"""

from __future__ import annotations

import warnings
from itertools import pairwise

import cv2
import numpy as np
import pytest
from skimage import data

from analysis.photos.compare import compare
from analysis.photos.lighting import face_side, face_skin_mask, measure_lighting
from analysis.photos.types import PhotoMeasurement
from tests.support.faces import astronaut_landmarks, face_span, horizontal_ramp, scaled


def mirrored_landmarks(lm: np.ndarray, width: int) -> np.ndarray:
    out = lm.copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


def measurement(rgb: np.ndarray, lm: np.ndarray | None) -> PhotoMeasurement:
    light = measure_lighting(rgb, landmarks_px=lm)
    return PhotoMeasurement(
        ok=True,
        view="face_frontal",
        face_found=True,
        exposure_l=light.exposure_l,
        clipped_share=light.clipped_share,
        lab_median=light.lab_median,
        light_side=light.light_side,
    )


def test_skin_mask_lies_on_the_face_and_leaves_out_eyes_and_mouth() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    mask = face_skin_mask(img.shape, lm)
    x0, y0 = lm[:, :2].min(axis=0)
    x1, y1 = lm[:, :2].max(axis=0)
    ys, xs = np.nonzero(mask)
    assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1
    for idx in (468, 473, 13, 14):  # iris centres and inner lips
        x, y = np.round(lm[idx, :2]).astype(int)
        assert not mask[y, x]
    assert mask.sum() > 0.3 * (x1 - x0) * (y1 - y0)


def test_face_side_is_positive_on_the_image_right_of_the_midline() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    side = face_side(img.shape, lm)
    y = int(lm[1, 1])
    nose_x = int(lm[1, 0])
    assert side[y, nose_x + 20] > 0 > side[y, nose_x - 20]


@pytest.mark.parametrize("use_landmarks", [True, False], ids=["face", "whole_frame"])
def test_darkening_lowers_exposure_monotonically(use_landmarks: bool) -> None:
    img = data.astronaut()
    lm = astronaut_landmarks() if use_landmarks else None
    values = [
        measure_lighting(scaled(img, k), landmarks_px=lm).exposure_l
        for k in (1.0, 0.8, 0.6, 0.4, 0.2)
    ]
    assert all(a > b + 2 for a, b in pairwise(values)), values


def test_overexposure_raises_the_clipped_share() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    normal = measure_lighting(img, landmarks_px=lm).clipped_share
    blown = measure_lighting(scaled(img, 2.5), landmarks_px=lm).clipped_share
    assert normal < 0.05 and blown > 0.5


def test_warm_white_balance_shift_raises_delta_e_and_is_named_warmer() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    base = measurement(img, lm)
    shifts = [
        compare(base, measurement(scaled(img, np.array([1 + k, 1.0, 1 - k])), lm)).check("color")
        for k in (0.0, 0.05, 0.12, 0.25)
    ]
    de: list[float] = []
    for c in shifts:
        assert c.value is not None, c
        de.append(c.value)
    assert de[0] == pytest.approx(0.0, abs=1e-6)
    assert de[0] < de[1] < de[2] < de[3], de
    assert shifts[0].status == "pass" and shifts[3].status == "fail"
    assert "warmer" in shifts[3].message and "white balance" in shifts[3].message


def test_darkening_alone_does_not_read_as_a_white_balance_change() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    result = compare(measurement(img, lm), measurement(scaled(img, 0.6), lm))
    assert result.check("exposure").status == "fail"
    assert result.check("color").status == "pass", result.check("color").message


def test_side_shading_sign_follows_the_bright_side_and_flips_when_mirrored() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    flat = measure_lighting(img, landmarks_px=lm).light_side
    lit_right = scaled(img, horizontal_ramp(img.shape, 0.4, 1.2, face_span(lm)))
    right = measure_lighting(lit_right, landmarks_px=lm).light_side
    mirror = measure_lighting(
        np.ascontiguousarray(lit_right[:, ::-1]), landmarks_px=mirrored_landmarks(lm, img.shape[1])
    ).light_side
    assert right > flat + 0.05
    assert mirror < -flat - 0.05
    # the face is nearly symmetric, so mirroring negates the measure up to the face's own asymmetry
    assert abs(right + mirror) < 0.1


def test_lighting_check_names_the_patients_side_of_the_light() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    base = measurement(img, lm)
    span = face_span(lm)
    lit_image_right = measurement(scaled(img, horizontal_ramp(img.shape, 0.3, 1.2, span)), lm)
    lit_image_left = measurement(scaled(img, horizontal_ramp(img.shape, 1.2, 0.3, span)), lm)
    to_right = compare(base, lit_image_right).check("lighting")
    to_left = compare(base, lit_image_left).check("lighting")
    assert to_right.status in ("warn", "fail") and to_right.value is not None and to_right.value > 0
    assert "patient's left (image right)" in to_right.message
    assert to_left.status in ("warn", "fail") and to_left.value is not None and to_left.value < 0
    assert "patient's right (image left)" in to_left.message
    assert compare(base, base).check("lighting").status == "pass"


def test_whole_frame_light_side_without_landmarks_flips_when_mirrored() -> None:
    img = scaled(data.astronaut(), horizontal_ramp(data.astronaut().shape, 1.3, 0.5))
    a = measure_lighting(img, landmarks_px=None).light_side
    b = measure_lighting(np.ascontiguousarray(img[:, ::-1]), landmarks_px=None).light_side
    assert a < -0.1 and b == pytest.approx(-a, abs=1e-6)


def test_large_images_are_measured_on_a_reduced_copy_with_the_same_result() -> None:
    img = data.astronaut()
    big = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)  # 1536 px: shrunk to 1024 inside
    a = measure_lighting(img, landmarks_px=None)
    b = measure_lighting(big, landmarks_px=None)
    assert b.exposure_l == pytest.approx(a.exposure_l, abs=1.0)
    assert b.light_side == pytest.approx(a.light_side, abs=0.01)


def test_bad_inputs_raise_clear_value_errors() -> None:
    img = data.astronaut()
    with pytest.raises(ValueError, match="RGB uint8"):
        measure_lighting(img[..., 0], landmarks_px=None)
    with pytest.raises(ValueError, match="RGB uint8"):
        measure_lighting(img.astype(float), landmarks_px=None)
    with pytest.raises(ValueError, match=r"\(478, 3\)"):
        measure_lighting(img, landmarks_px=np.zeros((68, 2)))


def test_face_outside_the_image_gives_nan_not_an_error() -> None:
    img, lm = data.astronaut(), astronaut_landmarks()
    away = lm.copy()
    away[:, 0] += 5000
    out = measure_lighting(img, landmarks_px=away)
    assert out.region_px == 0 and np.isnan(out.exposure_l) and np.isnan(out.light_side)


# ---------------------------------------------------------------- lighting fit on rendered faces


def render_lambertian(
    lm: np.ndarray, light_dir: np.ndarray, *, ambient: float = 0.0, size: int = 1024
) -> np.ndarray:
    """Paint the mesh's vertices with Lambertian shading ``ambient + max(0, l . n)`` (grey).

    ``light_dir`` points from the face toward the light, in camera axes (x right, y down, z away
    from the camera): a light beside the camera on the image's right is ``(1, 0, -1)``.
    """
    from analysis.photos.lighting import vertex_normals

    normals = vertex_normals(lm)
    light = np.asarray(light_dir, float) / np.linalg.norm(light_dir)
    shade = ambient + np.clip(normals @ light, 0, None)
    shade = 200.0 * shade / max(1.0, ambient + 1.0)
    img = np.full((size, size), 30.0, np.float32)
    radius = max(2, int(0.07 * np.linalg.norm(lm[33, :2] - lm[263, :2])))
    order = np.argsort(-lm[:468, 2])  # far vertices first, near ones painted over them
    for i in order:
        x, y = np.round(lm[i, :2]).astype(int)
        cv2.circle(img, (int(x), int(y)), radius, float(shade[i]), -1, lineType=cv2.LINE_AA)
    blurred = cv2.GaussianBlur(img, (0, 0), radius / 2)
    return np.repeat(np.clip(blurred, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def turned(lm: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Rotate the mesh about the vertical axis through its centroid (yaw > 0: nose to the right)."""
    c = lm.mean(axis=0)
    t = np.radians(yaw_deg)
    r = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    out: np.ndarray = (lm - c) @ r.T + c
    return out


def big_astronaut_mesh() -> np.ndarray:
    lm = astronaut_landmarks() * 4.0  # ~170 px between the eyes
    lm[:, :2] += 512 - lm[:, :2].mean(axis=0)
    return lm


def test_turned_mesh_helper_turns_the_nose_to_the_image_right() -> None:
    lm = big_astronaut_mesh()
    assert turned(lm, 20)[1, 0] > lm[1, 0] + 10  # nose tip (index 1)


def test_light_side_of_a_directional_light_is_close_to_sin_azimuth() -> None:
    lm = big_astronaut_mesh()
    values = []
    for az in (-60, -30, 0, 30, 60):
        t = np.radians(az)  # az > 0: light toward the image right
        rgb = render_lambertian(lm, np.array([np.sin(t), 0.0, -np.cos(t)]))
        values.append(measure_lighting(rgb, landmarks_px=lm).light_side)
    assert all(a < b for a, b in pairwise(values)), values
    assert values[2] == pytest.approx(0.0, abs=0.08)
    # close to sin(azimuth) while most of the face is lit; compressed for grazing light, where
    # attached shadows bend the shading away from the linear model
    for az, v in ((-30, values[1]), (30, values[3])):
        assert v == pytest.approx(np.sin(np.radians(az)), abs=0.08), (az, v)
    assert 0.4 < values[4] < np.sin(np.radians(60)) and -np.sin(np.radians(60)) < values[0] < -0.4


def test_ambient_light_shrinks_light_side_toward_zero() -> None:
    lm = big_astronaut_mesh()
    side = np.array([np.sin(np.radians(40)), 0.0, -np.cos(np.radians(40))])
    hard = measure_lighting(render_lambertian(lm, side), landmarks_px=lm).light_side
    soft = measure_lighting(render_lambertian(lm, side, ambient=1.5), landmarks_px=lm).light_side
    assert hard > soft > 0.05


def test_turning_the_head_under_the_same_light_barely_moves_light_side() -> None:
    """The fit uses normals that turn with the head; the half-face split does not."""
    lm = big_astronaut_mesh()
    frontal_light = np.array([0.0, 0.0, -1.0])
    base = measure_lighting(render_lambertian(lm, frontal_light), landmarks_px=lm)
    shifts, halves = [], []
    for yaw in (-25, 25):
        moved = turned(lm, yaw)
        out = measure_lighting(render_lambertian(moved, frontal_light), landmarks_px=moved)
        shifts.append(abs(out.light_side - base.light_side))
        halves.append(abs(out.half_face_asymmetry - base.half_face_asymmetry))
    assert max(shifts) < 0.1, shifts
    assert max(shifts) < max(halves), (shifts, halves)


def test_fast_lab_conversions_equal_skimage() -> None:
    """The table-driven sRGB -> L*a*b* of the lighting measures gives rgb2lab's figures."""
    from skimage.color import rgb2lab

    from analysis.photos.lighting import lab_of_pixels, lightness_of_image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    pixels[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every grey level, incl. 0 and 255
    expected = rgb2lab(pixels.reshape(-1, 1, 3)).reshape(-1, 3)
    np.testing.assert_allclose(lab_of_pixels(pixels), expected, atol=1e-8)
    image = np.ascontiguousarray(data.astronaut())
    np.testing.assert_allclose(lightness_of_image(image), rgb2lab(image)[..., 0], atol=1e-3)


def test_lab_to_srgb_equals_skimage_lab2rgb_and_the_noise_jacobian_is_unchanged() -> None:
    """``srgb_of_lab`` gives lab2rgb's figures (in gamut, out of gamut, negative z, darks), and
    the pixel noise carried into L*a*b* equals the same finite difference done with skimage."""
    from skimage.color import lab2rgb, rgb2lab

    from analysis.photos.lighting import _noise_in_lab, srgb_of_lab

    rng = np.random.default_rng(5)
    lab = np.c_[rng.uniform(0, 100, 4000), rng.uniform(-110, 110, (4000, 2))]
    lab[:3] = [[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [2.0, 40.0, -90.0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lab2rgb warns about the negative-z colours it clips
        expected = lab2rgb(lab.reshape(-1, 1, 3)).reshape(-1, 3)
    np.testing.assert_allclose(srgb_of_lab(lab), expected, atol=1e-9)
    for colour, noise in (((62.0, 14.0, 18.0), (3.0, 2.5, 4.0)), ((30.0, -5.0, 9.0), (1.0, 1, 1))):
        base = np.clip(lab2rgb(np.array(colour).reshape(1, 1, 3)).reshape(3) * 255.0, 2.0, 253.0)
        probe = np.repeat(base[None, :], 4, axis=0) + np.r_[np.zeros((1, 3)), np.eye(3)]
        jac = (lambda lab_: (lab_[1:] - lab_[0]).T)(
            rgb2lab((probe / 255.0).reshape(-1, 1, 3)).reshape(-1, 3)
        )
        want = np.sqrt((jac**2) @ (np.array(noise) ** 2))
        np.testing.assert_allclose(
            _noise_in_lab(np.array(colour), np.array(noise)), want, rtol=1e-9
        )


def test_vertex_normals_equal_the_svd_of_each_vertex_neighbourhood() -> None:
    """Normals (OpenCV float32 k-nearest, 3 x 3 eigenvectors) are the PCA normals of the 12 nearest
    mesh points, as a float64 brute-force sort and batched SVD compute them."""
    from analysis.photos.lighting import vertex_normals

    pts = astronaut_landmarks()
    p = pts[:468]
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(axis=-1)
    nn = np.argsort(d2, axis=1)[:, :12]
    patches = p[nn] - p[nn].mean(axis=1, keepdims=True)
    brute = np.linalg.svd(patches)[2][:, -1, :]
    brute[brute[:, 2] > 0] *= -1.0
    got = vertex_normals(pts)
    assert np.all(got[:, 2] < 0)
    np.testing.assert_allclose(got, brute, atol=1e-6)


def test_clipped_share_counts_pixels_with_any_channel_at_the_ends() -> None:
    from analysis.photos.lighting import CLIP_HIGH, CLIP_LOW, _clipped

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    expected = float(((pixels <= CLIP_LOW) | (pixels >= CLIP_HIGH)).any(axis=-1).mean())
    assert _clipped(pixels) == pytest.approx(expected, abs=1e-12)
    edge = np.array(
        [[CLIP_LOW, 100, 100], [CLIP_LOW + 1, 100, CLIP_HIGH - 1], [100, CLIP_HIGH, 100]], np.uint8
    )
    assert _clipped(edge) == pytest.approx(2 / 3)
