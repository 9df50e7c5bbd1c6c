"""Synthetic trichoscopy close-ups with known follicle positions (the demo clinic's counts).

Model
-----
A patient's measurement site is a :class:`TrichoScene` in world millimetres around the site
(x right, y down, origin at the site = frame centre), drawn once per series so that every session
photographs *the same* spot:

* **Follicles**: a Poisson field at ``MAX_DENSITY_PER_CM2`` (320 /cm²) over ``WORLD_HALF_MM``
  (larger than any shifted frame). Each follicle has a fixed rank ``u ~ U(0, 1)`` and carries a
  visible hair when ``u < density / MAX_DENSITY_PER_CM2``: the field is nested, so raising the
  density only adds hairs and two sessions differ only by the hairs gained or lost.
* **Hairs** (clipped, as a trichoscopy site is): each emerges at its follicle (a darker opening
  drawn there) in a direction ``Normal(flow, 25°)`` with a visible length ``U(0.30, 0.45)`` mm and
  a shaft ``Normal(45, 6)`` µm wide, drawn anti-aliased in the hair colour.
* **Skin**: the patient's scalp colour with low-frequency mottling and a fine grain
  (``MICRO_TEXTURE``) fixed in world coordinates (registrable between sessions; defocus blurs the
  grain away, as it does skin texture), and per-shot sensor noise.
* **Camera**: ``DEMO_MM_PER_PX`` (a 70x dermoscope: the 1280 × 1024 frame covers 3.46 × 2.76 mm),
  shifted by ``shift_px`` (whole pixels; the follicles move exactly with it) and defocused by
  ``blur_sigma_px`` (Gaussian) per shot.

``truth`` records the follicles inside the frame (``follicles_px``, the openings in full-resolution
pixels), their number, the density they make over the frame, the scale and the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

FRAME_PX: tuple[int, int] = (1024, 1280)  # (height, width), the shared set's trichoscope frame
DEMO_MM_PER_PX = 0.0027  # 70x: 1280 px = 3.46 mm
DEMO_DEVICE = "Demo trichoscope"
DEMO_MAGNIFICATION = 70.0
MAX_DENSITY_PER_CM2 = 320.0
WORLD_HALF_MM = (2.3, 1.9)
MICRO_TEXTURE = 6.0  # grey-level SD of the skin's fine grain (what focus blur takes away)


@dataclass(frozen=True)
class TrichoScene:
    """One series' trichoscopy site (see the module docstring): one entry per follicle."""

    xy_mm: np.ndarray  # (N, 2)
    rank: np.ndarray  # (N,)
    angle_rad: np.ndarray  # (N,)
    length_mm: np.ndarray  # (N,)
    width_um: np.ndarray  # (N,)
    skin_rgb: tuple[int, int, int]
    hair_rgb: tuple[int, int, int]
    mottle: np.ndarray  # (H', W') float32 world grid, grey-level offsets


def tricho_scene(
    rng: np.random.Generator,
    *,
    skin_rgb: tuple[int, int, int] = (196, 170, 158),
    hair_rgb: tuple[int, int, int] = (40, 32, 28),
) -> TrichoScene:
    hx, hy = WORLD_HALF_MM
    area_cm2 = (2 * hx / 10) * (2 * hy / 10)
    n = int(rng.poisson(MAX_DENSITY_PER_CM2 * area_cm2))
    flow = float(rng.uniform(0, np.pi))
    world_px = (int(2 * hy / DEMO_MM_PER_PX), int(2 * hx / DEMO_MM_PER_PX))
    coarse = rng.normal(0, 1, (world_px[0] // 16 + 1, world_px[1] // 16 + 1)).astype(np.float32)
    smooth = np.asarray(cv2.GaussianBlur(coarse, (0, 0), 3), np.float32)
    # mottling ~ 0.13 mm across: blurred on a 16x coarser grid, then enlarged
    low = np.asarray(
        cv2.resize(smooth, (world_px[1], world_px[0]), interpolation=cv2.INTER_CUBIC), np.float32
    )
    fine = np.asarray(
        cv2.GaussianBlur(rng.normal(0, 1, world_px).astype(np.float32), (0, 0), 1.2), np.float32
    )
    mottle = low * np.float32(10.0 / max(float(np.abs(low).max()), 1e-6)) + fine * np.float32(
        MICRO_TEXTURE / max(float(fine.std()), 1e-6)
    )
    return TrichoScene(
        xy_mm=np.column_stack([rng.uniform(-hx, hx, n), rng.uniform(-hy, hy, n)]),
        rank=rng.uniform(0, 1, n),
        angle_rad=flow + rng.normal(0, np.radians(25), n),
        length_mm=rng.uniform(0.30, 0.45, n),
        width_um=np.clip(rng.normal(45, 6, n), 30, 65),
        skin_rgb=skin_rgb,
        hair_rgb=hair_rgb,
        mottle=mottle,
    )


def synth_trichoscopy(
    scene: TrichoScene,
    *,
    density_per_cm2: float,
    rng: np.random.Generator,
    shift_px: tuple[float, float] = (0.0, 0.0),
    blur_sigma_px: float = 0.8,
    noise_sd: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The close-up of ``scene`` at ``density_per_cm2`` (RGB uint8, ``FRAME_PX``) and its truth."""
    if not 0 <= density_per_cm2 <= MAX_DENSITY_PER_CM2:
        raise ValueError(f"density_per_cm2 must be within 0..{MAX_DENSITY_PER_CM2:g}")
    h, w = FRAME_PX
    shift_px = (float(round(shift_px[0])), float(round(shift_px[1])))
    # skin: colour and world-fixed texture (moves with the camera shift; blur removes its grain)
    hx, hy = WORLD_HALF_MM
    x0 = int(round(hx / DEMO_MM_PER_PX - w / 2 + shift_px[0]))
    y0 = int(round(hy / DEMO_MM_PER_PX - h / 2 + shift_px[1]))
    wh, ww = scene.mottle.shape
    x0, y0 = min(max(x0, 0), ww - w), min(max(y0, 0), wh - h)
    mottle = scene.mottle[y0 : y0 + h, x0 : x0 + w]
    img: np.ndarray = np.empty((h, w, 3), np.float32)
    img[:] = scene.skin_rgb
    img += mottle[..., None]
    # hairs of the active follicles, in frame pixels
    active = scene.rank < density_per_cm2 / MAX_DENSITY_PER_CM2
    px = scene.xy_mm[active] / DEMO_MM_PER_PX + np.array([w / 2, h / 2]) - np.array(shift_px)
    ang, length, width = (
        scene.angle_rad[active],
        scene.length_mm[active] / DEMO_MM_PER_PX,
        scene.width_um[active] / 1000 / DEMO_MM_PER_PX,
    )
    hair = tuple(float(c) for c in scene.hair_rgb)
    opening = tuple(float(c) * 0.8 for c in scene.hair_rgb)
    for (x, y), a, ln, wd in zip(px, ang, length, width, strict=True):
        if not (-ln <= x <= w + ln and -ln <= y <= h + ln):
            continue
        x1, y1 = x + ln * np.cos(a), y + ln * np.sin(a)
        thick = max(2, int(round(wd)))
        cv2.line(img, (int(x), int(y)), (int(x1), int(y1)), hair, thick, cv2.LINE_AA)
        cv2.circle(img, (int(x), int(y)), max(3, thick // 2 + 2), opening, -1, cv2.LINE_AA)
    if blur_sigma_px > 2:  # strong defocus: blurred at quarter size (the detail is gone anyway)
        small = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), blur_sigma_px / 4)
        img = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    elif blur_sigma_px > 0:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), blur_sigma_px), np.float32)
    img += rng.normal(0, noise_sd, (h, w, 1)).astype(np.float32)
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    frame_cm2 = w * h * (DEMO_MM_PER_PX / 10) ** 2
    truth = {
        "kind": "trichoscopy",
        "follicles_px": [[round(float(x), 1), round(float(y), 1)] for x, y in px[inside]],
        "follicles": int(inside.sum()),
        "density_per_cm2": round(float(density_per_cm2), 2),
        "frame_density_per_cm2": round(int(inside.sum()) / frame_cm2, 2),
        "mm_per_px": DEMO_MM_PER_PX,
        "shift_px": [float(shift_px[0]), float(shift_px[1])],
        "blur_sigma_px": float(blur_sigma_px),
        "frame_px": [w, h],
    }
    return rgb, truth
