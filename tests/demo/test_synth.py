"""Synthetic demo photos do what their perturbations say (metamorphic tests on astronaut() and on
procedural scalps; the landmark detector and scalp registration are the real ones)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from skimage.transform import rotate

from analysis.demo.scalp_synth import SCALP_FRAME_PX, ScalpScene, scalp_scene, synth_scalp
from analysis.demo.synth import (
    FACE_FRAME_PX,
    FacePerturbation,
    base_face,
    base_landmarks,
    encode_jpeg,
    face_geometry,
    linear_to_srgb_u8,
    srgb_to_linear,
    synth_face,
)

LEFT_EYE = [33, 133]  # image-left eye corners (FaceMesh indices)
RIGHT_EYE = [362, 263]
NOSE_TIP = 1


def _face_box_mask() -> np.ndarray:
    pts = base_landmarks()
    w, h = FACE_FRAME_PX
    mask = np.zeros((h, w), bool)
    x0, y0 = pts[:, :2].min(axis=0).astype(int)
    x1, y1 = pts[:, :2].max(axis=0).astype(int)
    mask[y0:y1, x0:x1] = True
    return mask


def _landmarks(rgb: np.ndarray) -> np.ndarray:
    from analysis.photos.landmarks import detect_face_landmarks

    found = detect_face_landmarks(rgb)
    assert found is not None, "the detector lost the synthetic face"
    return found.points_px


def _eye_line_deg(pts: np.ndarray) -> float:
    a = pts[LEFT_EYE, :2].mean(axis=0)
    b = pts[RIGHT_EYE, :2].mean(axis=0)
    return float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))  # > 0: clockwise (y down)


def test_srgb_round_trip_is_exact_for_every_uint8_value() -> None:
    x = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb_u8(srgb_to_linear(x)), x)


def test_unperturbed_face_is_the_portrait_crop() -> None:
    img, truth = synth_face(FacePerturbation())
    assert img.shape == (FACE_FRAME_PX[1], FACE_FRAME_PX[0], 3)
    assert np.abs(img.astype(int) - base_face().astype(int)).max() <= 1  # LUT rounding only
    assert truth["kind"] == "face" and truth["yaw_deg"] == 0.0


def test_minus_one_ev_halves_linear_light_on_the_face() -> None:
    face = _face_box_mask()
    ref, _ = synth_face(FacePerturbation())
    dark, truth = synth_face(FacePerturbation(exposure_ev=-1.0))
    lin_ref, lin_dark = srgb_to_linear(ref)[face], srgb_to_linear(dark)[face]
    usable = (ref[face] < 250) & (ref[face] > 5)  # away from clipping and the quantisation floor
    ratio = lin_dark[usable].sum() / lin_ref[usable].sum()
    assert truth["exposure_ev"] == -1.0
    assert ratio == pytest.approx(0.5, abs=0.01)


def test_white_balance_gains_scale_each_channel_in_linear_light() -> None:
    face = _face_box_mask()
    ref, _ = synth_face(FacePerturbation())
    warm, _ = synth_face(FacePerturbation(wb_gains=(1.2, 1.0, 0.8)))
    lr, lw = srgb_to_linear(ref)[face], srgb_to_linear(warm)[face]
    ok = (ref[face] < 200).all(axis=1)
    gains = lw[ok].sum(axis=0) / lr[ok].sum(axis=0)
    assert gains == pytest.approx([1.2, 1.0, 0.8], abs=0.01)


def test_roll_equals_rotating_the_unperturbed_image_clockwise() -> None:
    centre, _ = face_geometry()
    ref, _ = synth_face(FacePerturbation())
    rolled, _ = synth_face(FacePerturbation(roll_deg=7.0))
    # skimage rotates counter-clockwise for positive angles; clockwise 7 deg = angle -7
    expected = rotate(ref, -7.0, center=(centre[0], centre[1]), preserve_range=True, order=1)
    face = _face_box_mask()
    err = np.abs(rolled.astype(float) - expected)[face].mean()
    wrong_way = np.abs(
        rolled.astype(float)
        - rotate(ref, 7.0, center=(centre[0], centre[1]), preserve_range=True, order=1)
    )[face].mean()
    assert err < 3.0 < wrong_way


def test_roll_turns_the_detected_eye_line_clockwise_by_that_angle() -> None:
    base = _eye_line_deg(_landmarks(synth_face(FacePerturbation())[0]))
    rolled = _eye_line_deg(_landmarks(synth_face(FacePerturbation(roll_deg=6.0))[0]))
    assert rolled - base == pytest.approx(6.0, abs=1.0)


def test_scale_changes_the_detected_eye_distance_by_that_factor() -> None:
    def eye_distance(img: np.ndarray) -> float:
        pts = _landmarks(img)
        return float(np.linalg.norm(pts[LEFT_EYE, :2].mean(0) - pts[RIGHT_EYE, :2].mean(0)))

    ref = eye_distance(synth_face(FacePerturbation())[0])
    zoomed = eye_distance(synth_face(FacePerturbation(scale=1.12))[0])
    assert zoomed / ref == pytest.approx(1.12, abs=0.03)


@pytest.mark.parametrize("yaw", [-10.0, 10.0])
def test_yaw_turns_the_nose_toward_the_image_side_of_its_sign(yaw: float) -> None:
    from analysis.photos.pose import pose_from_landmarks

    size = FACE_FRAME_PX
    ref = pose_from_landmarks(_landmarks(synth_face(FacePerturbation())[0]), image_size=size)
    img, truth = synth_face(FacePerturbation(yaw_deg=yaw))
    turned = pose_from_landmarks(_landmarks(img), image_size=size)
    delta = turned.yaw_deg - ref.yaw_deg
    assert truth["yaw_deg"] == yaw
    assert np.sign(delta) == np.sign(yaw)
    assert 0.5 * abs(yaw) < abs(delta) < 1.5 * abs(yaw)


def test_positive_pitch_raises_the_chin() -> None:
    from analysis.photos.pose import pose_from_landmarks

    size = FACE_FRAME_PX
    ref = pose_from_landmarks(_landmarks(synth_face(FacePerturbation())[0]), image_size=size)
    up = pose_from_landmarks(
        _landmarks(synth_face(FacePerturbation(pitch_deg=8.0))[0]), image_size=size
    )
    assert 4.0 < up.pitch_deg - ref.pitch_deg < 12.0


def test_light_lr_brightens_the_image_right_half_of_the_face() -> None:
    centre, _ = face_geometry()
    face = _face_box_mask()
    cols = np.arange(FACE_FRAME_PX[0])[None, :].repeat(FACE_FRAME_PX[1], axis=0)
    right, left = face & (cols > centre[0]), face & (cols < centre[0])

    def balance(img: np.ndarray) -> float:
        lin = srgb_to_linear(img).mean(axis=2)
        return float(lin[right].mean() / lin[left].mean())

    flat = balance(synth_face(FacePerturbation())[0])
    lit_right = balance(synth_face(FacePerturbation(light_lr=0.4))[0])
    lit_left = balance(synth_face(FacePerturbation(light_lr=-0.4))[0])
    assert lit_left < flat < lit_right


def test_blur_lowers_the_laplacian_variance_monotonically() -> None:
    import cv2

    face = _face_box_mask()

    def sharpness(sigma: float) -> float:
        img, _ = synth_face(FacePerturbation(blur_sigma_px=sigma))
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return float(cv2.Laplacian(grey, cv2.CV_64F)[face].var())

    s0, s1, s2 = sharpness(0.0), sharpness(1.5), sharpness(3.0)
    assert s0 > s1 > s2


def test_face_noise_and_jpeg_are_deterministic_given_a_seed() -> None:
    p = FacePerturbation(yaw_deg=4, exposure_ev=0.3, noise_sd=0.01, jpeg_quality=80)
    a, ta = synth_face(p, rng=np.random.default_rng(7))
    b, tb = synth_face(p, rng=np.random.default_rng(7))
    c, _ = synth_face(p, rng=np.random.default_rng(8))
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, c)
    assert encode_jpeg(a, quality=80) == encode_jpeg(b, quality=80)


def test_invalid_perturbations_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="scale"):
        FacePerturbation(scale=0.0)
    with pytest.raises(ValueError, match="jpeg_quality"):
        FacePerturbation(jpeg_quality=0)
    with pytest.raises(ValueError, match="needs an rng"):
        synth_face(FacePerturbation(noise_sd=0.01))


# --- scalp ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vertex_scene() -> ScalpScene:
    return scalp_scene(view="scalp_vertex", rng=np.random.default_rng(3))


def test_higher_density_darkens_the_scalp_monotonically(vertex_scene: ScalpScene) -> None:
    shares, counts = [], []
    for density in (60.0, 100.0, 140.0, 180.0, 220.0):
        img, truth = synth_scalp(
            vertex_scene, density_per_cm2=density, perturbation=FacePerturbation()
        )
        grey = img.mean(axis=2)
        h, w = grey.shape
        centre = grey[h // 2 - 60 : h // 2 + 60, w // 2 - 60 : w // 2 + 60]
        shares.append(float((centre < 110).mean()))
        counts.append(truth["site_count_per_cm2"])
        # realised count in the 1 cm^2 site disc is the requested density up to Poisson noise
        assert abs(truth["site_count_per_cm2"] - density) < 4 * np.sqrt(density) + 2
    assert all(a < b for a, b in pairwise(shares)), shares
    assert all(a <= b for a, b in pairwise(counts)), counts


def test_more_hair_only_adds_strands_to_the_same_scalp(vertex_scene: ScalpScene) -> None:
    lo, _ = synth_scalp(vertex_scene, density_per_cm2=90.0, perturbation=FacePerturbation())
    hi, _ = synth_scalp(vertex_scene, density_per_cm2=150.0, perturbation=FacePerturbation())
    # hair is darker than skin and the follicle field is nested: no pixel gets lighter
    assert (hi.astype(int).sum(axis=2) <= lo.astype(int).sum(axis=2) + 3).all()


def test_scalp_zoom_and_roll_are_recovered_by_registration(vertex_scene: ScalpScene) -> None:
    from analysis.photos.scalp import register

    base, _ = synth_scalp(vertex_scene, density_per_cm2=120.0, perturbation=FacePerturbation())
    moved, truth = synth_scalp(
        vertex_scene, density_per_cm2=128.0, perturbation=FacePerturbation(scale=1.08, roll_deg=5.0)
    )
    reg = register(base, moved)
    assert reg.ok
    assert reg.scale_ratio == pytest.approx(1.08, abs=0.015)
    assert reg.rotation_deg == pytest.approx(5.0, abs=1.0)
    assert truth["px_per_cm"] == pytest.approx(40.0 * 1.08)


def test_scalp_exposure_halves_linear_light(vertex_scene: ScalpScene) -> None:
    ref, _ = synth_scalp(vertex_scene, density_per_cm2=120.0, perturbation=FacePerturbation())
    dark, _ = synth_scalp(
        vertex_scene, density_per_cm2=120.0, perturbation=FacePerturbation(exposure_ev=-1.0)
    )
    usable = (ref > 5) & (ref < 250)
    assert srgb_to_linear(dark)[usable].sum() / srgb_to_linear(ref)[usable].sum() == pytest.approx(
        0.5, abs=0.01
    )


@pytest.mark.parametrize("view", ["scalp_frontal_hairline", "scalp_midline_part"])
def test_hairline_and_parting_show_bare_skin_where_the_model_says(view: str) -> None:
    scene = scalp_scene(view=view, rng=np.random.default_rng(5))
    img, _ = synth_scalp(scene, density_per_cm2=180.0, perturbation=FacePerturbation())
    grey = img.mean(axis=2)
    w, h = SCALP_FRAME_PX
    if view == "scalp_frontal_hairline":  # forehead (below the hairline at +4.5 cm) is skin
        bare, hairy = grey[h // 2 + 200 :], grey[: h // 2]
    else:  # the parting at x = 0 (frame centre column) shows skin
        bare, hairy = grey[:, w // 2 - 1 : w // 2 + 2], grey[:, : w // 2 - 40]
    assert bare.mean() > hairy.mean() + 25


def test_scalp_scene_and_photo_are_deterministic_given_a_seed() -> None:
    p = FacePerturbation(roll_deg=3, noise_sd=0.01)
    a, ta = synth_scalp(
        scalp_scene(view="scalp_vertex", rng=np.random.default_rng(11)),
        density_per_cm2=130.0,
        perturbation=p,
        rng=np.random.default_rng(1),
    )
    b, tb = synth_scalp(
        scalp_scene(view="scalp_vertex", rng=np.random.default_rng(11)),
        density_per_cm2=130.0,
        perturbation=p,
        rng=np.random.default_rng(1),
    )
    assert np.array_equal(a, b) and ta == tb


def test_scalp_photos_refuse_face_rotations(vertex_scene: ScalpScene) -> None:
    with pytest.raises(ValueError, match="yaw/pitch"):
        synth_scalp(vertex_scene, density_per_cm2=100.0, perturbation=FacePerturbation(yaw_deg=5.0))
