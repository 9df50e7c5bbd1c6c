"""Synthetic face photos with known, recorded perturbations (ground truth for the demo clinic).

The face is scikit-image's bundled ``astronaut()`` (public domain; never patient data), upscaled 2.5x
and framed as a portrait of ``FACE_FRAME_PX`` (600 x 800, width x height); a shifted or zoomed-out
frame shows the rest of the picture (a studio-backdrop band is added above its top edge). It is
perturbed in this order:

1. **yaw / pitch**: the 478 FaceMesh landmarks of the unperturbed face (3-D, z in pixels) are rotated
   about the face centre and orthographically projected; the image is re-projected by a
   piecewise-affine warp of the Delaunay triangles of the landmarks plus a fixed ring of anchor
   points around the face (1.8 face half-sizes; outside it nothing moves). Each destination
   triangle samples its source triangle; triangles are drawn far to near, so a fold is covered by
   the nearer surface. Signs as in ``analysis.photos.types``: ``yaw_deg > 0``
   turns the nose toward the image right, ``pitch_deg > 0`` raises the chin.
2. **roll / scale / shift**: one similarity about the face centre. ``roll_deg > 0`` is clockwise in
   the image; ``scale > 1`` zooms in (the face gets larger by that factor, like moving the camera
   closer); ``shift_x_frac`` / ``shift_y_frac`` move the content right / down by that share of the
   frame width / height.
3. In **linear light** (sRGB decoded, IEC 61966-2-1): a smooth lighting field
   ``1 + light_lr * u + light_tb * v`` where ``u``, ``v`` run from -1 to 1 across the face's
   half-width / half-height (clamped to +-1.5 outside it), so ``light_lr > 0`` brightens the image's
   right side (``light_side > 0``); exposure ``2 ** exposure_ev``; white balance by per-channel gains
   ``wb_gains`` (R, G, B); Gaussian blur of ``blur_sigma_px`` (optics blur happens in linear light);
   Gaussian sensor noise of ``noise_sd`` (linear units: a crop of a fixed unit-noise bank at an
   offset and sign drawn from the given Generator).
4. The result is re-encoded to sRGB ``uint8``; :func:`encode_jpeg` applies ``jpeg_quality``.

Everything is deterministic: the only randomness is the sensor noise, drawn from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

FACE_FRAME_PX: tuple[int, int] = (600, 800)
"""Width, height of synthetic face photos, pixels."""

# Crop of astronaut() (512 x 512) that frames the face as a head-and-shoulders portrait (3:4),
# and the studio backdrop added above the image's top edge (rows, astronaut pixels) so that a
# lowered or zoomed-out frame shows backdrop, not a mirrored head.
_CROP_X0, _CROP_X1, _CROP_Y0, _CROP_Y1 = 104, 344, 0, 320
_TOP_PAD = 64
_UPSCALE = FACE_FRAME_PX[0] / (_CROP_X1 - _CROP_X0)  # 2.5
_ANCHOR_RING = 1.8  # anchor ellipse, in face half-sizes
_ANCHOR_COUNT = 32
_NOISE_BANK_MARGIN = 64


@dataclass(frozen=True)
class FacePerturbation:
    """What the synthetic camera and lighting did (see the module docstring for signs and units)."""

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    scale: float = 1.0
    shift_x_frac: float = 0.0
    shift_y_frac: float = 0.0
    light_lr: float = 0.0
    light_tb: float = 0.0
    exposure_ev: float = 0.0
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur_sigma_px: float = 0.0
    noise_sd: float = 0.0
    jpeg_quality: int = 92
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0.2 <= self.scale <= 5.0:
            raise ValueError(f"scale must be within 0.2..5, got {self.scale}")
        if len(self.wb_gains) != 3 or min(self.wb_gains) <= 0:
            raise ValueError(f"wb_gains must be three positive gains, got {self.wb_gains}")
        if self.blur_sigma_px < 0 or self.noise_sd < 0:
            raise ValueError("blur_sigma_px and noise_sd cannot be negative")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if abs(self.yaw_deg) > 45 or abs(self.pitch_deg) > 45:
            raise ValueError("yaw_deg and pitch_deg are limited to +-45 (the warp has no far side)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe truth record (floats rounded to 4 decimals)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "extra":
                out.update(value)
            elif isinstance(value, tuple):
                out[key] = [round(float(v), 4) for v in value]
            elif isinstance(value, float):
                out[key] = round(value, 4)
            else:
                out[key] = value
        return out


# --- colour: sRGB <-> linear (IEC 61966-2-1) ------------------------------------------------------


def _srgb_decode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb_encode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


_DECODE_LUT = _srgb_decode(np.arange(256) / 255.0).astype(np.float32)
_ENCODE_STEPS = 65535  # linear -> sRGB table resolution (error < 0.05 of a uint8 step)
_ENCODE_LUT = np.clip(
    np.rint(_srgb_encode(np.arange(_ENCODE_STEPS + 1) / _ENCODE_STEPS) * 255.0), 0, 255
).astype(np.uint8)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """``uint8`` sRGB (or floats in 0..1) to linear light in 0..1, ``float32``."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8:
        out: np.ndarray = _DECODE_LUT[arr]
        return out
    return _srgb_decode(arr.astype(np.float32)).astype(np.float32)


def linear_to_srgb_u8(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) to ``uint8`` sRGB (table lookup, 65536 steps)."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return _ENCODE_LUT[(x * np.float32(_ENCODE_STEPS) + np.float32(0.5)).astype(np.int32)]


def apply_photometric(
    rgb: np.ndarray,
    *,
    centre_px: tuple[float, float],
    half_size_px: tuple[float, float],
    light_lr: float = 0.0,
    light_tb: float = 0.0,
    exposure_ev: float = 0.0,
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
    blur_sigma_px: float = 0.0,
    noise_sd: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Lighting field, exposure, white balance, blur and noise, all in linear light.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 or float32
        sRGB image (``uint8``), or linear light (``float32``, 0..1; modified in place).
    centre_px, half_size_px : tuple of float
        ``(x, y)`` centre and ``(half_width, half_height)`` of the subject, pixels: the lighting
        field's ``u`` / ``v`` are -1 and +1 at ``centre -+ half_size`` (clamped to +-1.5).
    light_lr, light_tb : float
        Gain slopes: the gain is ``1 + light_lr * u + light_tb * v`` (floored at 0.05), so a
        positive ``light_lr`` brightens the right side, a positive ``light_tb`` the bottom.
    exposure_ev : float
        Exposure change in stops: linear values are multiplied by ``2 ** exposure_ev``.
    wb_gains : tuple of float
        Per-channel linear gains (R, G, B).
    blur_sigma_px : float
        Gaussian blur sigma, pixels (0 = none).
    noise_sd : float
        Additive Gaussian noise SD in linear units (0 = none); needs ``rng``.
    rng : numpy.random.Generator, optional
        Source of the noise.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    # a fresh array (or the caller's linear buffer): the steps below work in place
    lin = rgb if rgb.dtype == np.float32 else srgb_to_linear(rgb)
    h, w = lin.shape[:2]
    channel_gain = np.float32(2.0**exposure_ev) * np.asarray(wb_gains, np.float32)
    if light_lr or light_tb:
        u = np.clip((np.arange(w, dtype=np.float32) - centre_px[0]) / half_size_px[0], -1.5, 1.5)
        v = np.clip((np.arange(h, dtype=np.float32) - centre_px[1]) / half_size_px[1], -1.5, 1.5)
        gain = np.maximum(
            np.float32(1.0) + np.float32(light_lr) * u[None, :] + np.float32(light_tb) * v[:, None],
            np.float32(0.05),
        )
        lin *= gain[:, :, None] * channel_gain[None, None, :]
    elif not np.all(channel_gain == 1.0):
        lin *= channel_gain[None, None, :]
    if blur_sigma_px > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), sigmaX=blur_sigma_px, borderType=cv2.BORDER_REFLECT)
    if noise_sd > 0:
        if rng is None:
            raise ValueError("noise_sd > 0 needs an rng")
        lin += _noise(lin.shape, rng) * np.float32(noise_sd)
    return linear_to_srgb_u8(lin)


@lru_cache(maxsize=4)
def _noise_bank(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[0] + _NOISE_BANK_MARGIN, shape[1] + _NOISE_BANK_MARGIN
    bank = np.random.default_rng(0).standard_normal((h, w) + tuple(shape[2:]), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a crop of a fixed bank at an offset and with a sign drawn
    from ``rng`` (deterministic given ``rng``, and ~20x cheaper than fresh draws)."""
    dy, dx = (int(v) for v in rng.integers(0, _NOISE_BANK_MARGIN, size=2))
    sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
    return _noise_bank(tuple(shape))[dy : dy + shape[0], dx : dx + shape[1]] * sign


def encode_jpeg(rgb: np.ndarray, *, quality: int = 92) -> bytes:
    """Baseline JPEG bytes (4:2:0, no metadata) of a ``uint8`` RGB image."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(out, format="JPEG", quality=int(quality))
    return out.getvalue()


# --- the unperturbed face ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _canvas() -> tuple[np.ndarray, tuple[int, int]]:
    """The whole astronaut() upscaled like the portrait, with a backdrop band on top; and the
    portrait's top-left corner in it (pixels). Photos are windows into this canvas."""
    from skimage import data

    src = data.astronaut()
    band = src[:8].astype(np.float32).mean(axis=0, keepdims=True)  # rows 0-7 are backdrop
    band = cv2.GaussianBlur(band, (0, 0), sigmaX=8.0, sigmaY=0.1)
    padded = np.vstack([np.repeat(band, _TOP_PAD, axis=0).astype(np.uint8), src])
    h, w = padded.shape[:2]
    canvas = cv2.resize(
        padded, (round(w * _UPSCALE), round(h * _UPSCALE)), interpolation=cv2.INTER_CUBIC
    )
    canvas.setflags(write=False)
    origin = (round(_CROP_X0 * _UPSCALE), round((_CROP_Y0 + _TOP_PAD) * _UPSCALE))
    return canvas, origin


@lru_cache(maxsize=1)
def base_face() -> np.ndarray:
    """The unperturbed portrait (``FACE_FRAME_PX``), ``uint8`` RGB, read-only."""
    canvas, (x0, y0) = _canvas()
    w, h = FACE_FRAME_PX
    out = np.array(canvas[y0 : y0 + h, x0 : x0 + w])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def base_landmarks() -> np.ndarray:
    """FaceMesh landmarks of :func:`base_face`, shape (478, 3), pixels (computed once per process).

    Raises
    ------
    RuntimeError
        If the landmark backend finds no face (it always should on the bundled portrait).
    """
    from analysis.photos.landmarks import detect_face_landmarks

    found = detect_face_landmarks(np.array(base_face()))
    if found is None:
        raise RuntimeError(
            "no face found on the bundled portrait: is the landmark backend working?"
        )
    pts = np.array(found.points_px, dtype=np.float64)
    pts.setflags(write=False)
    return pts


def face_geometry() -> tuple[np.ndarray, tuple[float, float]]:
    """Face centre ``(x, y, z)`` (pixels) and half-size ``(half_width, half_height)`` of the base face.

    The centre is the midpoint of the landmark bounding box (z: mean depth); these anchor roll, scale
    and the lighting field.
    """
    pts = base_landmarks()
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, pts[:, 2].mean()])
    return centre, (float(hi[0] - lo[0]) / 2, float(hi[1] - lo[1]) / 2)


# --- geometry ---------------------------------------------------------------------------------------


def rotate_points(
    points: np.ndarray, *, yaw_deg: float, pitch_deg: float, centre: np.ndarray
) -> np.ndarray:
    """Rotate 3-D points (x right, y down, z away from the camera) about ``centre``.

    Yaw turns about the vertical axis so that points nearer the camera (smaller z) move right for
    ``yaw_deg > 0``; pitch turns about the horizontal axis so that they move up (and the chin, below
    the centre, comes nearer) for ``pitch_deg > 0``. Pitch is applied after yaw.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
    yaw_deg, pitch_deg : float
    centre : ndarray, shape (3,)

    Returns
    -------
    ndarray, shape (N, 3)
    """
    p = np.asarray(points, float) - centre
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    x = p[:, 0] * np.cos(a) - p[:, 2] * np.sin(a)
    z = p[:, 0] * np.sin(a) + p[:, 2] * np.cos(a)
    y = p[:, 1] * np.cos(b) + z * np.sin(b)
    z2 = -p[:, 1] * np.sin(b) + z * np.cos(b)
    out: np.ndarray = np.stack([x, y, z2], axis=1) + centre
    return out


def anchor_points() -> np.ndarray:
    """Fixed points on an ellipse around the face (``_ANCHOR_RING`` x its half-size), shape (N, 2).

    They do not move under yaw/pitch, so the warp is confined inside the ring (the background
    between the face outline and the ring stretches; everything outside is untouched).
    """
    centre, (hw, hh) = face_geometry()
    w, h = FACE_FRAME_PX
    t = np.linspace(0.0, 2 * np.pi, _ANCHOR_COUNT, endpoint=False)
    x = np.clip(centre[0] + _ANCHOR_RING * hw * np.cos(t), 0, w - 1)
    y = np.clip(centre[1] + _ANCHOR_RING * hh * np.sin(t), 0, h - 1)
    return np.column_stack([x, y])


@lru_cache(maxsize=1)
def _triangulation() -> np.ndarray:
    from scipy.spatial import Delaunay

    pts2 = np.vstack([base_landmarks()[:, :2], anchor_points()])
    out: np.ndarray = Delaunay(pts2).simplices.copy()
    return out


def mesh_warp(
    rgb: np.ndarray,
    src_px: np.ndarray,
    dst_px: np.ndarray,
    depth: np.ndarray,
    triangles: np.ndarray,
) -> np.ndarray:
    """Piecewise-affine warp moving ``src_px`` to ``dst_px`` (same triangulation).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, C)
    src_px, dst_px : ndarray, shape (N, 2)
        Vertex positions ``(x, y)`` before and after, pixels.
    depth : ndarray, shape (N,)
        Depth of each destination vertex (larger = farther); triangles are drawn far to near.
    triangles : ndarray, shape (T, 3)
        Vertex indices of each triangle.

    Returns
    -------
    ndarray
        The warped image; pixels no triangle covers keep their input value.
    """
    h, w = rgb.shape[:2]
    if src_px.shape != dst_px.shape:
        raise ValueError(f"src_px {src_px.shape} and dst_px {dst_px.shape} differ in shape")
    tri_dst = dst_px[triangles]  # (T, 3, 2)
    tri_src = src_px[triangles]
    ones = np.ones((len(triangles), 3, 1))
    a = np.concatenate([tri_dst, ones], axis=2)  # rows [x y 1]
    det = np.linalg.det(a)
    usable = np.abs(det) > 1e-6
    affine = np.zeros((len(triangles), 3, 2))
    affine[usable] = np.linalg.solve(a[usable], tri_src[usable])  # [x y 1] @ M = src
    order = np.argsort(-depth[triangles].mean(axis=1))
    # only the window covering the destination triangles is resampled
    x0 = int(max(0, np.floor(tri_dst[..., 0].min())))
    y0 = int(max(0, np.floor(tri_dst[..., 1].min())))
    x1 = int(min(w, np.ceil(tri_dst[..., 0].max()) + 1))
    y1 = int(min(h, np.ceil(tri_dst[..., 1].max()) + 1))
    ids = np.full((y1 - y0, x1 - x0), -1, np.int32)
    offset = np.array([x0, y0], float)
    for t in order:
        if usable[t]:
            cv2.fillConvexPoly(
                ids, np.rint((tri_dst[t] - offset) * 16).astype(np.int32), int(t), shift=4
            )
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    map_x, map_y = xx.copy(), yy.copy()
    hit = ids >= 0
    m = affine[ids[hit]]
    xh, yh = xx[hit], yy[hit]
    map_x[hit] = xh * m[:, 0, 0] + yh * m[:, 1, 0] + m[:, 2, 0]
    map_y[hit] = xh * m[:, 0, 1] + yh * m[:, 1, 1] + m[:, 2, 1]
    out = np.array(rgb, copy=True)
    out[y0:y1, x0:x1] = cv2.remap(
        rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return out


def similarity_matrix(
    *, centre_px: tuple[float, float], roll_deg: float, scale: float, shift_px: tuple[float, float]
) -> np.ndarray:
    """2 x 3 forward matrix: rotate ``roll_deg`` clockwise (in the image, y down) and zoom by
    ``scale`` about ``centre_px``, then translate by ``shift_px``."""
    # cv2's positive angle is counter-clockwise on screen, so clockwise roll is a negative angle.
    m = cv2.getRotationMatrix2D((float(centre_px[0]), float(centre_px[1])), -roll_deg, scale)
    m[:, 2] += np.asarray(shift_px, float)
    return m


def synth_face(
    perturbation: FacePerturbation, *, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The portrait under ``perturbation``.

    Parameters
    ----------
    perturbation : FacePerturbation
        What to do (module docstring: order, units, signs).
    rng : numpy.random.Generator, optional
        Needed only when ``perturbation.noise_sd > 0``.

    Returns
    -------
    image : ndarray, shape (800, 600, 3), uint8
        sRGB, before JPEG (use :func:`encode_jpeg` with ``truth["jpeg_quality"]``).
    truth : dict
        ``perturbation.to_dict()`` plus ``kind="face"``, ``frame_px`` and ``face_centre_px`` (where
        the face centre lands in the output, pixels).
    """
    p = perturbation
    img = np.array(base_face())
    w, h = FACE_FRAME_PX
    centre3, half = face_geometry()
    canvas, (ox, oy) = _canvas()
    if p.yaw_deg or p.pitch_deg:
        pts = base_landmarks()
        anchors = anchor_points()
        src = np.vstack([pts[:, :2], anchors])
        moved = rotate_points(pts, yaw_deg=p.yaw_deg, pitch_deg=p.pitch_deg, centre=centre3)
        dst = np.vstack([moved[:, :2], anchors])
        depth = np.concatenate([moved[:, 2], np.full(len(anchors), moved[:, 2].max() + 1e3)])
        img = mesh_warp(img, src, dst, depth, _triangulation())
    shift = (p.shift_x_frac * w, p.shift_y_frac * h)
    if p.roll_deg or p.scale != 1.0 or any(shift):
        # sample from the canvas so that what enters the frame is the real surroundings
        if p.yaw_deg or p.pitch_deg:
            canvas = np.array(canvas)
            canvas[oy : oy + h, ox : ox + w] = img
        m = similarity_matrix(
            centre_px=(centre3[0], centre3[1]), roll_deg=p.roll_deg, scale=p.scale, shift_px=shift
        )
        m = m @ np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]])
        img = cv2.warpAffine(
            canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    new_centre = (centre3[0] + shift[0], centre3[1] + shift[1])
    img = apply_photometric(
        img,
        centre_px=new_centre,
        half_size_px=(half[0] * p.scale, half[1] * p.scale),
        light_lr=p.light_lr,
        light_tb=p.light_tb,
        exposure_ev=p.exposure_ev,
        wb_gains=p.wb_gains,
        blur_sigma_px=p.blur_sigma_px,
        noise_sd=p.noise_sd,
        rng=rng,
    )
    truth = {
        "kind": "face",
        **p.to_dict(),
        "frame_px": [w, h],
        "face_centre_px": [round(float(new_centre[0]), 2), round(float(new_centre[1]), 2)],
    }
    return img, truth
