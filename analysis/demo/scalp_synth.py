"""Synthetic scalp photos with a known hair density (ground truth for the demo clinic).

Model
-----
A patient's scalp is a :class:`ScalpScene` in world coordinates (centimetres, x right, y down in
the photo, origin at the measurement site = frame centre), drawn once per patient and view so that
every session photographs *the same* scalp:

* **Follicles**: a Poisson field at ``MAX_DENSITY_PER_CM2`` (320 /cm^2) over the world area. Each
  follicle has a fixed rank ``u ~ U(0, 1)`` and is *active* (carries a visible hair) when
  ``u < local_density(x, y) / MAX_DENSITY_PER_CM2``. Raising the density therefore only adds hairs
  (the field is nested), so two sessions of one patient differ only by the hairs gained or lost.
* **Local density** at the site is the requested ``density_per_cm2``. Away from it the density
  rises to ``periphery_density_per_cm2`` as ``1 - exp(-r^2 / (2 * thinning_sigma_cm^2))``
  (vertex thinning is a Gaussian hole centred on the site). For ``scalp_frontal_hairline`` there are
  no follicles below the hairline (``hairline_y_cm``, forehead skin) and density ramps up over the
  first centimetre above it; for ``scalp_midline_part`` hairs lie away from a vertical parting.
* **Strands**: each visible hair is a circular arc starting at its follicle: length
  ``L ~ LogNormal(median 1.2 cm, sigma 0.35)`` clipped to 0.2-3 cm; shaft width
  ``w ~ Normal(65, 12) um`` clipped to 25-110 um, with a share of miniaturised (vellus-like) hairs
  (width x 35/65, about 35 um, and length x 0.4) that grows where density is low; curvature ``k ~ Normal(0, 0.5) rad/cm``;
  direction from the view's flow field (whorl around the vertex, combed back from the hairline,
  away from the parting) plus ``Normal(0, 15 deg)``. Hairs lie in clumps (a clump direction shared
  by neighbours), which gives the photo its larger-scale texture.
* **Rendering**: every strand is sampled every 3 px along its length and each sample adds optical
  depth ``width_px x 3 px / 1 px^2`` (the share of a pixel's area the shaft covers) to its pixel;
  the depth map is smoothed (Gaussian, 0.9 px) and the hair layer's opacity is
  ``1 - exp(-depth)`` (independent, partly covering shafts), composited over the skin in linear
  light. Scalp skin carries low-frequency
  mottling and a few naevi drawn in world coordinates, so the scene is registrable between sessions.
* **Camera**: ``px_per_cm`` (default 40: the 600 x 800 frame covers 15 x 20 cm), then the same
  perturbations as face photos (``analysis.demo.synth``): ``scale`` about the frame centre (> 1 =
  closer), ``roll_deg`` clockwise in the image, ``shift_*_frac``, and the photometric chain in linear
  light (lighting field, exposure, white balance, blur, noise). Geometry is applied to the strand
  points themselves (no resampling of the hair).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from analysis.demo.synth import FacePerturbation, apply_photometric, srgb_to_linear

SCALP_FRAME_PX: tuple[int, int] = (600, 800)
MAX_DENSITY_PER_CM2 = 320.0
DEFAULT_PX_PER_CM = 40.0
_WORLD_HALF_CM = (12.0, 15.0)  # world extent around the site: larger than any perturbed frame
_TEXTURE_PX_PER_CM = 20.0
_STEP_PX = 3.0  # strand sampling step; the splat is smoothed by a 0.9 px Gaussian
SITE_RADIUS_CM = float(np.sqrt(1.0 / np.pi))  # a 1 cm^2 disc around the site
SCALP_VIEW_KINDS = ("scalp_vertex", "scalp_midline_part", "scalp_frontal_hairline")


@dataclass(frozen=True)
class ScalpScene:
    """One patient's scalp for one view (world units: cm; see the module docstring).

    Arrays have one entry per follicle: ``xy_cm`` (N, 2), ``rank`` (N,), ``angle_rad`` (N,) the
    hair's direction in the image (0 = toward +x, clockwise positive since y points down),
    ``length_cm``, ``width_um``, ``vellus_rank`` (N,) deciding miniaturisation, ``curvature_per_cm``.
    """

    view: str
    xy_cm: np.ndarray
    rank: np.ndarray
    angle_rad: np.ndarray
    length_cm: np.ndarray
    width_um: np.ndarray
    vellus_rank: np.ndarray
    curvature_per_cm: np.ndarray
    skin_texture: np.ndarray  # (H, W, 3) uint8 sRGB, world grid at _TEXTURE_PX_PER_CM
    hair_rgb: tuple[int, int, int]
    periphery_density_per_cm2: float
    thinning_sigma_cm: float
    hairline_y_cm: float
    site_mask: np.ndarray  # (N,) follicles inside the 1 cm^2 disc at the site


def _flow_angle(view: str, xy: np.ndarray, hairline_y_cm: float) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    if view == "scalp_vertex":  # a clockwise whorl around a point just above the site
        radial = np.arctan2(y + 0.8, x)
        out: np.ndarray = radial + np.deg2rad(70.0)
        return out
    if view == "scalp_midline_part":  # away from the parting (x = 0), slightly toward the back
        return np.where(x >= 0, 0.0, np.pi) + np.where(x >= 0, -0.35, 0.35)
    # frontal hairline: combed back (toward the image top), fanning out from the midline
    return -np.pi / 2 + 0.25 * np.tanh(x / 6.0) + 0.0 * (y - hairline_y_cm)


def scalp_scene(
    *,
    view: str,
    rng: np.random.Generator,
    skin_rgb: tuple[int, int, int] = (214, 170, 150),
    hair_rgb: tuple[int, int, int] = (52, 38, 30),
    periphery_density_per_cm2: float = 210.0,
    thinning_sigma_cm: float = 3.0,
) -> ScalpScene:
    """Draw one patient's scalp for ``view`` (``SCALP_VIEW_KINDS``; other scalp views map to the
    vertex model).

    Parameters
    ----------
    view : str
        The photo view.
    rng : numpy.random.Generator
        Source of every random draw (the scene is deterministic given its state).
    skin_rgb, hair_rgb : tuple of int
        sRGB colours of scalp skin and hair shafts.
    periphery_density_per_cm2 : float
        Density far from the site, hairs/cm^2 (the site's own density is set per photo).
    thinning_sigma_cm : float
        Radius of the thinning region around the site, cm.
    """
    if view not in SCALP_VIEW_KINDS:
        view = "scalp_vertex"
    hx, hy = _WORLD_HALF_CM
    n = rng.poisson(MAX_DENSITY_PER_CM2 * 4 * hx * hy)
    xy = np.column_stack([rng.uniform(-hx, hx, n), rng.uniform(-hy, hy, n)])
    hairline_y_cm = 4.5 if view == "scalp_frontal_hairline" else 99.0
    # clumps: neighbours share a direction offset (a coarse random field over 0.6 cm cells)
    cells = rng.normal(0.0, np.deg2rad(18.0), size=(int(2 * hy / 0.6) + 2, int(2 * hx / 0.6) + 2))
    ci = ((xy[:, 1] + hy) / 0.6).astype(int)
    cj = ((xy[:, 0] + hx) / 0.6).astype(int)
    angle = (
        _flow_angle(view, xy, hairline_y_cm) + cells[ci, cj] + rng.normal(0.0, np.deg2rad(15.0), n)
    )
    length = np.clip(rng.lognormal(np.log(1.2), 0.35, n), 0.2, 3.0)
    width = np.clip(rng.normal(65.0, 12.0, n), 25.0, 110.0)
    curvature = rng.normal(0.0, 0.5, n)
    # skin: mottling (0.5-1 cm blobs, +-4 %) and a few naevi, on a world-aligned texture
    th, tw = int(2 * hy * _TEXTURE_PX_PER_CM), int(2 * hx * _TEXTURE_PX_PER_CM)
    mottle: np.ndarray = cv2.GaussianBlur(
        rng.normal(0, 1, (th, tw)).astype(np.float32), (0, 0), 8.0
    )
    mottle *= 0.04 / max(float(mottle.std()), 1e-6)
    skin = np.clip(
        np.asarray(skin_rgb, np.float32)[None, None, :] * (1 + mottle[:, :, None]), 0, 255
    )
    for _ in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(0, tw), rng.uniform(0, th)
        r = rng.uniform(0.06, 0.18) * _TEXTURE_PX_PER_CM
        colour = tuple(float(c) for c in np.asarray(skin_rgb) * rng.uniform(0.45, 0.7))
        cv2.ellipse(
            skin,
            ((cx, cy), (2 * r, 2 * r * rng.uniform(0.7, 1.0)), rng.uniform(0, 180)),
            colour,
            -1,
            cv2.LINE_AA,
        )
    f32 = np.float32
    return ScalpScene(
        view=view,
        xy_cm=xy.astype(f32),
        rank=rng.uniform(0, 1, n).astype(f32),
        angle_rad=angle.astype(f32),
        length_cm=length.astype(f32),
        width_um=width.astype(f32),
        vellus_rank=rng.uniform(0, 1, n).astype(f32),
        curvature_per_cm=curvature.astype(f32),
        skin_texture=np.clip(skin, 0, 255).astype(np.uint8),
        hair_rgb=(hair_rgb[0], hair_rgb[1], hair_rgb[2]),
        periphery_density_per_cm2=float(periphery_density_per_cm2),
        thinning_sigma_cm=float(thinning_sigma_cm),
        hairline_y_cm=hairline_y_cm,
        site_mask=(xy**2).sum(axis=1) <= SITE_RADIUS_CM**2,
    )


def local_density(scene: ScalpScene, xy_cm: np.ndarray, *, density_per_cm2: float) -> np.ndarray:
    """Expected hair density (hairs/cm^2) at world points ``xy_cm`` (N, 2) when the site has
    ``density_per_cm2``."""
    r2 = (xy_cm**2).sum(axis=1)
    periphery = max(scene.periphery_density_per_cm2, density_per_cm2)
    d = density_per_cm2 + (periphery - density_per_cm2) * (
        1 - np.exp(-r2 / (2 * scene.thinning_sigma_cm**2))
    )
    if scene.view == "scalp_frontal_hairline":
        above = scene.hairline_y_cm - xy_cm[:, 1]  # cm above the hairline (y down)
        d = d * np.clip(above, 0.0, 1.0)
    if scene.view == "scalp_midline_part":
        d = np.where(np.abs(xy_cm[:, 0]) < 0.05, 0.0, d)
    out: np.ndarray = np.clip(d, 0.0, MAX_DENSITY_PER_CM2)
    return out


def _arc_samples(
    x0: np.ndarray,
    y0: np.ndarray,
    angle: np.ndarray,
    curvature: np.ndarray,
    n_steps: np.ndarray,
    step_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``step_px`` along circular arcs, flattened over all strands.

    The chord from the start to arc length ``s`` has direction ``angle + c s / 2`` and length
    ``s sinc(c s / 2)``; ``sinc(t)`` is taken as ``1 - t^2 / 6`` (``|c s / 2| < 1`` here, error
    below 0.3 %). Returns x, y of every sample and the index of its strand.
    """
    strand = np.repeat(np.arange(len(n_steps), dtype=np.int32), n_steps)
    starts = np.repeat((np.cumsum(n_steps) - n_steps).astype(np.int32), n_steps)
    s = (np.arange(len(strand), dtype=np.int32) - starts).astype(np.float32) * np.float32(step_px)
    half = curvature[strand] * s * np.float32(0.5)
    direction = angle[strand] + half
    chord = s * (np.float32(1.0) - half * half / np.float32(6.0))
    return x0[strand] + chord * np.cos(direction), y0[strand] + chord * np.sin(direction), strand


def synth_scalp(
    scene: ScalpScene,
    *,
    density_per_cm2: float,
    perturbation: FacePerturbation,
    rng: np.random.Generator | None = None,
    px_per_cm: float = DEFAULT_PX_PER_CM,
    vellus_share: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Photograph ``scene`` with ``density_per_cm2`` hairs/cm^2 at the site.

    Parameters
    ----------
    scene : ScalpScene
        The patient's scalp (:func:`scalp_scene`).
    density_per_cm2 : float
        Terminal + vellus hair density at the measurement site (frame centre), hairs/cm^2,
        0..``MAX_DENSITY_PER_CM2``.
    perturbation : FacePerturbation
        Camera and light; ``yaw_deg`` / ``pitch_deg`` must be 0 (no face to turn).
    rng : numpy.random.Generator, optional
        Needed when ``perturbation.noise_sd > 0``.
    px_per_cm : float
        Nominal magnification before ``perturbation.scale``, pixels per cm.
    vellus_share : float, optional
        Share of miniaturised hairs; default grows as the site density falls
        (``0.1 + 0.3 * (1 - density / periphery)``).

    Returns
    -------
    image : ndarray, shape (800, 600, 3), uint8
    truth : dict
        The perturbation, ``kind="scalp"``, ``density_per_cm2`` (requested), ``site_count_per_cm2``
        (active follicles in the 1 cm^2 disc at the site: the realised density), ``px_per_cm``
        (effective, i.e. nominal x scale), ``vellus_share`` and ``coverage_site`` (mean hair opacity
        in the site disc).
    """
    p = perturbation
    if p.yaw_deg or p.pitch_deg:
        raise ValueError("scalp photos have no yaw/pitch; use roll_deg, scale and shift")
    if not 0.0 <= density_per_cm2 <= MAX_DENSITY_PER_CM2:
        raise ValueError(
            f"density_per_cm2 must be within 0..{MAX_DENSITY_PER_CM2:g}, got {density_per_cm2}"
        )
    w, h = SCALP_FRAME_PX
    periphery = max(scene.periphery_density_per_cm2, 1.0)
    if vellus_share is None:
        vellus_share = float(np.clip(0.1 + 0.3 * (1 - density_per_cm2 / periphery), 0.05, 0.5))
    scale_px = px_per_cm * p.scale
    # world (cm) -> image (px): x_img = centre + shift + scale_px * R(roll) @ x_world
    m = cv2.getRotationMatrix2D((0.0, 0.0), -p.roll_deg, scale_px)
    m[:, 2] = (w / 2 + p.shift_x_frac * w, h / 2 + p.shift_y_frac * h)
    # skin texture: world grid -> image
    tex_to_world = np.array(
        [
            [1 / _TEXTURE_PX_PER_CM, 0, -_WORLD_HALF_CM[0]],
            [0, 1 / _TEXTURE_PX_PER_CM, -_WORLD_HALF_CM[1]],
            [0, 0, 1],
        ]
    )
    tex_to_img = np.vstack([m, [0, 0, 1]]) @ tex_to_world
    skin = cv2.warpAffine(
        scene.skin_texture,
        tex_to_img[:2],
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    # active hairs whose follicle is near the frame
    dens = local_density(scene, scene.xy_cm, density_per_cm2=density_per_cm2)
    active = np.flatnonzero(scene.rank < dens / MAX_DENSITY_PER_CM2)
    wx, wy = scene.xy_cm[active, 0], scene.xy_cm[active, 1]
    f32 = np.float32
    img_x = wx * f32(m[0, 0]) + wy * f32(m[0, 1]) + f32(m[0, 2])
    img_y = wx * f32(m[1, 0]) + wy * f32(m[1, 1]) + f32(m[1, 2])
    reach = scene.length_cm[active] * f32(scale_px)
    near = (img_x > -reach) & (img_x < w + reach) & (img_y > -reach) & (img_y < h + reach)
    sel = active[near]
    img_x, img_y = img_x[near], img_y[near]
    vellus = scene.vellus_rank[sel] < vellus_share
    width_um = np.where(
        vellus, np.clip(scene.width_um[sel] * 35.0 / 65.0, 20.0, 45.0), scene.width_um[sel]
    )
    length = np.where(vellus, scene.length_cm[sel] * 0.4, scene.length_cm[sel])
    angle = scene.angle_rad[sel] + np.deg2rad(p.roll_deg)
    n_steps = np.maximum(1, np.ceil(length * scale_px / _STEP_PX)).astype(np.int64)
    xs, ys, strand = _arc_samples(
        img_x,
        img_y,
        angle.astype(np.float32),
        scene.curvature_per_cm[sel] / np.float32(scale_px),
        n_steps,
        _STEP_PX,
    )
    xi = (xs + np.float32(0.5)).astype(np.int32)  # floor(x + 0.5); negatives are dropped below
    yi = (ys + np.float32(0.5)).astype(np.int32)
    inside = (xs > -0.5) & (xi < w) & (ys > -0.5) & (yi < h)
    # optical depth of one sample = shaft width in px x step in px / 1 px^2 (share of a pixel)
    weight = (width_um * (1e-4 * scale_px * _STEP_PX)).astype(np.float32)[strand[inside]]
    depth: np.ndarray = (
        np.bincount(yi[inside] * w + xi[inside], weights=weight, minlength=w * h)
        .reshape(h, w)
        .astype(np.float32)
    )
    depth = cv2.GaussianBlur(depth, (0, 0), 0.9)
    alpha = 1.0 - np.exp(-depth)
    # composite in linear light: skin seen through the gaps, hair shafts over it
    hair = srgb_to_linear(np.asarray(scene.hair_rgb, np.uint8))
    lin = srgb_to_linear(skin)
    lin += (hair[None, None, :] - lin) * alpha[:, :, None]
    rgb = apply_photometric(
        lin,
        centre_px=(w / 2 + p.shift_x_frac * w, h / 2 + p.shift_y_frac * h),
        half_size_px=(w / 2, h / 2),
        light_lr=p.light_lr,
        light_tb=p.light_tb,
        exposure_ev=p.exposure_ev,
        wb_gains=p.wb_gains,
        blur_sigma_px=p.blur_sigma_px,
        noise_sd=p.noise_sd,
        rng=rng,
    )
    cx, cy = m[:, 2]
    yy, xx = np.ogrid[0:h, 0:w]
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= (SITE_RADIUS_CM * scale_px) ** 2
    truth = {
        "kind": "scalp",
        "view_model": scene.view,
        **p.to_dict(),
        "density_per_cm2": round(float(density_per_cm2), 2),
        "site_count_per_cm2": int(np.count_nonzero(scene.site_mask[active])),
        "px_per_cm": round(float(scale_px), 3),
        "vellus_share": round(vellus_share, 3),
        "coverage_site": round(float(alpha[disc].mean()) if disc.any() else float("nan"), 4),
        "frame_px": [w, h],
    }
    return rgb, truth
