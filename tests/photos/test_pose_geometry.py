"""Pose, scale and alignment geometry on synthetic landmark sets (no model involved).

The synthetic faces are MediaPipe's canonical face rotated by known angles, scaled to pixel size and
projected orthographically (x, y kept, z kept as depth), i.e. what an ideal FaceMesh would return.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analysis.photos.align import STABLE_LANDMARKS, align_to_baseline, similarity_from_landmarks
from analysis.photos.pose import (
    canonical_face,
    euler_from_rotation,
    mirror_permutation,
    pose_from_landmarks,
    relative_pose_deg,
    rotation_from_euler,
    umeyama,
)
from analysis.photos.scale import IRIS_CENTRES, ipd_px, iris_distance_mm


def synthetic_face(
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    *,
    size_px: float = 20.0,
    centre: tuple[float, float] = (640.0, 480.0),
    noise_px: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """478 x 3 landmarks of the canonical face posed by (yaw, pitch, roll) degrees."""
    model = canonical_face()
    pts = size_px * model @ rotation_from_euler(yaw, pitch, roll).T
    pts[:, :2] += centre
    # iris centres: copy the eye-centre points so the scale module has something to read
    left_eye = pts[[33, 133]].mean(axis=0)
    right_eye = pts[[362, 263]].mean(axis=0)
    iris = np.vstack([np.repeat(left_eye[None], 5, axis=0), np.repeat(right_eye[None], 5, axis=0)])
    out = np.vstack([pts, iris])
    if noise_px:
        out = out + np.random.default_rng(seed).normal(0.0, noise_px, out.shape)
    return out


@pytest.mark.parametrize(
    "angles",
    [(0, 0, 0), (20, 0, 0), (-35, 0, 0), (0, 15, 0), (0, -20, 0), (0, 0, 12), (25, -10, 8)],
)
def test_known_rotation_is_recovered(angles: tuple[float, float, float]) -> None:
    pose = pose_from_landmarks(synthetic_face(*angles, noise_px=0.3))
    assert pose.yaw_deg == pytest.approx(angles[0], abs=0.5)
    assert pose.pitch_deg == pytest.approx(angles[1], abs=0.5)
    assert pose.roll_deg == pytest.approx(angles[2], abs=0.5)
    assert pose.rms_residual < 0.05


def test_identity_gives_zero_pose_and_unit_relative_rotation() -> None:
    face = synthetic_face()
    pose = pose_from_landmarks(face)
    assert (pose.yaw_deg, pose.pitch_deg, pose.roll_deg) == pytest.approx((0, 0, 0), abs=1e-6)
    assert relative_pose_deg(face, face) == pytest.approx((0, 0, 0), abs=1e-6)


def test_signs_follow_the_image_conventions() -> None:
    # yaw > 0: the nose tip (landmark 1) moves to the image's right of the face centre
    face = synthetic_face(yaw=20)
    assert face[1, 0] > face[:468, 0].mean() + 1
    # pitch > 0 (chin up): the chin (152) moves toward the camera (smaller z) relative to the forehead (10)
    up = synthetic_face(pitch=20)
    assert up[152, 2] < up[10, 2]
    # roll > 0 (clockwise on screen, y down): the subject's left eye (263, image right) goes down
    rolled = synthetic_face(roll=10)
    assert rolled[263, 1] > rolled[33, 1]


def test_mirrored_face_flips_yaw_and_roll_signs_and_keeps_pitch() -> None:
    face = synthetic_face(yaw=22, pitch=-8, roll=6)
    mirrored = face[:468].copy()
    mirrored[:, 0] = 1280 - mirrored[:, 0]
    mirrored = mirrored[
        mirror_permutation()
    ]  # FaceMesh labels the mirrored eyes the other way round
    pose, flipped = pose_from_landmarks(face), pose_from_landmarks(mirrored)
    assert flipped.yaw_deg == pytest.approx(-pose.yaw_deg, abs=0.2)
    assert flipped.roll_deg == pytest.approx(-pose.roll_deg, abs=0.2)
    assert flipped.pitch_deg == pytest.approx(pose.pitch_deg, abs=0.2)
    assert np.sign(flipped.yaw_deg) == -1


def test_relative_pose_between_two_photos() -> None:
    base = synthetic_face(yaw=5, pitch=2, size_px=25, noise_px=0.2, seed=1)
    follow = synthetic_face(yaw=17, pitch=2, size_px=31, centre=(500, 400), noise_px=0.2, seed=2)
    dyaw, dpitch, droll = relative_pose_deg(base, follow)
    assert dyaw == pytest.approx(12, abs=0.7)
    assert dpitch == pytest.approx(0, abs=0.7)
    assert droll == pytest.approx(0, abs=0.7)


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(478, 3\).*\(468, 3\)"):
        relative_pose_deg(np.zeros((478, 3)), np.zeros((468, 3)))
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(12, 3\)"):
        umeyama(np.zeros((10, 3)), np.zeros((12, 3)))
    with pytest.raises(ValueError, match=r"\(100, 2\)"):
        pose_from_landmarks(np.zeros((100, 2)))


def test_euler_round_trip() -> None:
    for angles in [(10, 20, 30), (-40, 5, -15), (0, -30, 0)]:
        assert euler_from_rotation(rotation_from_euler(*angles)) == pytest.approx(angles, abs=1e-9)


def test_off_centre_face_is_corrected_for_the_viewing_ray() -> None:
    # a face drawn facing its own viewing ray (apparent yaw = atan(offset / f)) right of centre
    width, height, focal = 1000, 800, 1000.0
    offset = 300.0
    apparent = np.degrees(np.arctan(offset / focal))
    face = synthetic_face(yaw=apparent)
    face[:, :2] += np.array([width / 2 + offset, height / 2]) - face[:468, :2].mean(axis=0)
    along_ray = pose_from_landmarks(face)
    in_camera = pose_from_landmarks(face, image_size=(width, height), focal_px=focal)
    assert along_ray.yaw_deg == pytest.approx(apparent, abs=0.3)
    assert in_camera.yaw_deg == pytest.approx(0.0, abs=0.3)
    assert in_camera.yaw_correction_deg == pytest.approx(-apparent, abs=0.3)


def test_zoom_changes_ipd_by_the_zoom_factor() -> None:
    near = synthetic_face(size_px=22.0)
    far = synthetic_face(size_px=20.0)
    assert ipd_px(near, scale=1.0) / ipd_px(far, scale=1.0) == pytest.approx(1.10, rel=1e-6)
    # analysis pixels -> original pixels
    assert ipd_px(far, scale=0.5) == pytest.approx(2 * ipd_px(far, scale=1.0))


def test_ipd_is_yaw_corrected() -> None:
    frontal = ipd_px(synthetic_face(yaw=0), scale=1.0)
    turned_raw = np.linalg.norm(np.subtract(*synthetic_face(yaw=30)[list(IRIS_CENTRES), :2]))
    assert turned_raw < 0.9 * frontal  # foreshortened on screen
    assert ipd_px(synthetic_face(yaw=30), scale=1.0, yaw_deg=30) == pytest.approx(frontal, rel=0.01)


def test_iris_distance_from_focal_length() -> None:
    # iris ring of 20 px diameter, f = 2000 px -> 11.7 mm * 2000 / 20 = 1170 mm
    pts = np.zeros((478, 3))
    for centre, ring in ((468, (469, 470, 471, 472)), (473, (474, 475, 476, 477))):
        pts[centre, :2] = (100.0 if centre == 468 else 160.0, 100.0)
        for k, angle in zip(ring, (0, 90, 180, 270), strict=True):
            pts[k, :2] = pts[centre, :2] + 10.0 * np.array(
                [np.cos(np.radians(angle)), np.sin(np.radians(angle))]
            )
    distance, sd = iris_distance_mm(pts, focal_px=2000.0)
    assert distance == pytest.approx(1170.0, rel=1e-6)
    assert 0.04 * distance < sd < 0.1 * distance


def test_similarity_from_stable_landmarks_recovers_a_known_similarity() -> None:
    src = synthetic_face()[:, :2]
    angle = np.radians(7.0)
    mat = 1.15 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ mat.T + [30.0, -12.0]
    transform = similarity_from_landmarks(src[list(STABLE_LANDMARKS)], dst[list(STABLE_LANDMARKS)])
    assert transform[:2, :2] == pytest.approx(mat, abs=1e-6)
    assert transform[:2, 2] == pytest.approx([30.0, -12.0], abs=1e-4)


def test_align_to_baseline_undoes_a_known_similarity() -> None:
    rng = np.random.default_rng(3)
    base_img = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    base_pts = synthetic_face(size_px=9.0, centre=(200.0, 150.0))
    angle = np.radians(-9.0)
    mat = 0.9 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = np.array([25.0, -10.0])
    follow_img = cv2.warpAffine(
        base_img, np.hstack([mat, shift[:, None]]), (400, 300), flags=cv2.INTER_LINEAR
    )
    follow_pts = base_pts.copy()
    follow_pts[:, :2] = base_pts[:, :2] @ mat.T + shift
    aligned = align_to_baseline(follow_img, follow_pts, base_img.shape, base_pts)
    assert aligned.shape == base_img.shape and aligned.dtype == np.uint8
    inner = (slice(90, 210), slice(130, 270))
    error = np.abs(aligned[inner].astype(float) - base_img[inner].astype(float)).mean()
    unaligned = np.abs(follow_img[inner].astype(float) - base_img[inner].astype(float)).mean()
    assert error < 6 and unaligned > 4 * error
