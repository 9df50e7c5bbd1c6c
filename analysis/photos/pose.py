"""Head pose (yaw, pitch, roll in degrees) from 3D face landmarks.

Method
------
The pose is the rotation of the rigid similarity that maps a canonical 3D face onto the observed mesh,
``observed ~ s R canonical + t``, solved in closed form with one SVD (Umeyama 1991, "Least-squares
estimation of transformation parameters between two point patterns", IEEE TPAMI 13(4); the same
approach as py-feat's ``face_pose``). The canonical face is MediaPipe's ``canonical_face_model.obj``
(Apache-2.0, vertices in ``canonical_face_vertices.txt``), converted to the image frame.

Frames and signs
----------------
Image frame: x right, y down, z away from the camera (right-handed; MediaPipe's z grows away from the
camera). ``R`` is decomposed as ``R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)`` (standard right-handed axis
rotations), which gives the conventions of :mod:`analysis.photos.types`:

* ``yaw_deg > 0``: the nose points toward the image's right side;
* ``pitch_deg > 0``: the chin is raised;
* ``roll_deg > 0``: the head is rotated clockwise as seen in the image.

Perspective
-----------
FaceMesh describes the face as seen along its own viewing ray. A face off the image centre is seen
slightly from the side even when it faces along the optical axis. :func:`pose_from_landmarks` can
rotate the pose from the ray frame to the camera frame, ``R_cam = Q @ R_ray`` where ``Q`` is the minimal
rotation taking the optical axis to the ray through the face centre ``(cx - W/2, cy - H/2, f)``; for a
horizontal offset this is ``yaw_cam = yaw_ray - atan((cx - W/2) / f)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

_CANONICAL_PATH = Path(__file__).with_name("canonical_face_vertices.txt")
N_MESH = 468
DIAGONAL_35MM_MM = float(np.hypot(36.0, 24.0))  # 43.27 mm, the 35 mm film frame diagonal


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees (sign conventions in the module docstring) and the fit's quality.

    ``rms_residual`` is the RMS distance between the fitted canonical face and the observed points,
    as a fraction of the observed face's RMS radius (0 = perfect rigid fit).
    """

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    scale: float
    rms_residual: float
    yaw_correction_deg: float = 0.0
    pitch_correction_deg: float = 0.0


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """The 468 canonical face vertices in the image frame (x right, y down, z away), shape (468, 3).

    Units are the model's (about centimetres); only shape matters here.
    """
    model = np.loadtxt(_CANONICAL_PATH, comments="#", dtype=float)
    if model.shape != (N_MESH, 3):
        raise ValueError(f"canonical face model has shape {model.shape}, expected {(N_MESH, 3)}")
    out: np.ndarray = model * np.array([1.0, -1.0, -1.0])  # y up, z toward camera -> y down, z away
    return out


@lru_cache(maxsize=1)
def mirror_permutation() -> np.ndarray:
    """Index map of the left-right mirror of the mesh: landmark ``i`` becomes ``perm[i]``.

    Derived from the symmetric canonical model (each vertex's mirror partner), so that a mirrored
    photo's landmarks can be compared with the original's.
    """
    model = canonical_face()
    mirrored = model * np.array([-1.0, 1.0, 1.0])
    dist = np.linalg.norm(model[None, :, :] - mirrored[:, None, :], axis=2)
    out: np.ndarray = np.argmin(dist, axis=1)
    return out


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` (Umeyama 1991), rotations only (det R = +1).

    Parameters
    ----------
    src, dst : ndarray, shape (N, D)
        Corresponding points, N >= D.

    Returns
    -------
    s : float
        Scale.
    R : ndarray, shape (D, D)
        Proper rotation.
    t : ndarray, shape (D,)
        Translation.

    Raises
    ------
    ValueError
        If the shapes differ (the message names both) or the points are degenerate.
    """
    src = np.asarray(src, dtype=float)
    dst = np.asarray(dst, dtype=float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < src.shape[1]:
        raise ValueError(
            f"point sets must have the same (N, D) shape with N >= D, got {src.shape} and {dst.shape}"
        )
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("point sets contain NaN or infinite values")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("source points are degenerate (all equal)")
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """``(yaw_deg, pitch_deg, roll_deg)`` of an image-frame rotation ``R = Rz(roll) Ry(-yaw) Rx(-pitch)``."""
    rot = np.asarray(rot, dtype=float)
    if rot.shape != (3, 3):
        raise ValueError(f"rotation must have shape (3, 3), got {rot.shape}")
    yaw = np.degrees(np.arcsin(np.clip(rot[2, 0], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    return float(yaw), float(pitch), float(roll)


def rotation_from_euler(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Inverse of :func:`euler_from_rotation`: the image-frame rotation for the given angles."""
    b, a, g = np.radians([-yaw_deg, -pitch_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    out: np.ndarray = rz @ ry @ rx
    return out


def _ray_rotation(offset_x: float, offset_y: float, focal: float) -> np.ndarray:
    """Minimal rotation taking the optical axis (0, 0, 1) to the ray (offset_x, offset_y, focal)."""
    ray = np.array([offset_x, offset_y, focal], float)
    ray /= np.linalg.norm(ray)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin_a, cos_a = np.linalg.norm(axis), ray[2]
    if sin_a < 1e-12:
        return np.eye(3)
    k = axis / sin_a
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    out: np.ndarray = np.eye(3) + sin_a * kx + (1 - cos_a) * kx @ kx
    return out


def focal_length_px(
    image_size: tuple[int, int], *, focal_length_35mm: float | None = None
) -> float:
    """Focal length in pixels of an image of ``(width, height)`` pixels.

    With the EXIF 35 mm-equivalent focal length ``f35`` (defined on the frame diagonal, as CIPA
    DC-008 and phone makers do): ``f_px = f35 / 43.27 mm * hypot(W, H)``. For a 3:2 frame this equals
    ``f35 / 36 * W``. Without it, ``f_px = hypot(W, H)`` (about a 43 mm-equivalent lens), a neutral
    guess: phone main cameras are ~26 mm (0.6 x diagonal), portrait lenses 50-85 mm.
    """
    diag = float(np.hypot(*image_size))
    if focal_length_35mm is not None and np.isfinite(focal_length_35mm) and focal_length_35mm > 0:
        return float(focal_length_35mm) / DIAGONAL_35MM_MM * diag
    return diag


def pose_from_landmarks(
    points: np.ndarray,
    *,
    image_size: tuple[int, int] | None = None,
    focal_px: float | None = None,
) -> Pose:
    """Head pose of a face from its FaceMesh landmarks.

    Parameters
    ----------
    points : ndarray, shape (468, 3) or (478, 3)
        Landmarks in an image's pixels (x right, y down, z in pixel scale, larger = farther). Only the
        468 mesh points are used (the 10 iris points move with gaze).
    image_size : tuple of int, optional
        ``(width, height)`` of that image. When given, the pose is rotated from the face's viewing ray
        to the camera's optical axis (see module docstring); when None, it is the pose along the ray.
    focal_px : float, optional
        Focal length in the same pixels; default :func:`focal_length_px` (the image diagonal).

    Returns
    -------
    Pose

    Raises
    ------
    ValueError
        If ``points`` is not (468, 3) or (478, 3), or not finite.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] not in (N_MESH, N_MESH + 10):
        raise ValueError(f"landmarks must have shape (468, 3) or (478, 3), got {pts.shape}")
    mesh = pts[:N_MESH]
    model = canonical_face()
    scale, rot, trans = umeyama(model, mesh)
    fitted = scale * model @ rot.T + trans
    radius = np.sqrt(((mesh - mesh.mean(axis=0)) ** 2).sum(axis=1).mean())
    rms = float(np.sqrt(((fitted - mesh) ** 2).sum(axis=1).mean()) / max(radius, 1e-9))
    yaw_ray, pitch_ray, _ = euler_from_rotation(rot)
    if image_size is not None:
        width, height = image_size
        focal = focal_px if focal_px is not None else focal_length_px((width, height))
        centre = mesh[:, :2].mean(axis=0)
        rot = _ray_rotation(centre[0] - width / 2.0, centre[1] - height / 2.0, focal) @ rot
    yaw, pitch, roll = euler_from_rotation(rot)
    return Pose(
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        scale=scale,
        rms_residual=rms,
        yaw_correction_deg=yaw - yaw_ray,
        pitch_correction_deg=pitch - pitch_ray,
    )


def relative_pose_deg(
    baseline_landmarks: np.ndarray, followup_landmarks: np.ndarray
) -> tuple[float, float, float]:
    """Rotation of the follow-up face relative to the baseline face, ``(dyaw, dpitch, droll)`` degrees.

    A rigid similarity fit between the two photos' meshes (same landmark indices), so no canonical
    model is involved; signs as in :mod:`analysis.photos.types` (positive ``dyaw``: the follow-up's
    nose points further toward the image's right than the baseline's). Viewing-ray effects are not
    corrected.

    Parameters
    ----------
    baseline_landmarks, followup_landmarks : ndarray, shape (N, 3)
        Landmarks of the two photos (N = 468 or 478; only the first 468 are used when 478).

    Raises
    ------
    ValueError
        If the shapes differ (the message names both) or are not (N, 3).
    """
    base = np.asarray(baseline_landmarks, dtype=float)
    follow = np.asarray(followup_landmarks, dtype=float)
    if base.shape != follow.shape or base.ndim != 2 or base.shape[1] != 3:
        raise ValueError(
            f"baseline and follow-up landmarks must have the same (N, 3) shape, got {base.shape} and {follow.shape}"
        )
    n = min(len(base), N_MESH)
    _, rot, _ = umeyama(base[:n], follow[:n])
    return euler_from_rotation(rot)
