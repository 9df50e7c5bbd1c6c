"""Exposure, clipping, colour and light direction of a photo.

Maths
-----
Pixels are converted from sRGB (D65) to CIE L*a*b* (``skimage.color.rgb2lab``). On a face view the
statistics are taken over the *skin region*: the convex hull of the 478 FaceMesh points minus the
eyes, eyebrows and lips (dilated by a fraction of the inter-ocular distance), so that eye colour,
make-up and an open mouth do not move the figures. Without landmarks (scalp views) the whole frame
is used.

* ``exposure_l``  = median L* (0-100) of the region.
* ``clipped_share`` = share of region pixels with any channel <= 2 or >= 253 (0-1).
* ``lab_median``  = per-channel medians (L*, a*, b*); a colour cast moves a*/b*.
* ``light_side``  = horizontal light direction from a first-order lighting fit on the mesh (below);
  in ``[-1, 1]``, ``> 0`` when the light comes from the image's right, so the image-right half of
  the face is the brighter one (light from the patient's left for a patient facing the camera).
* ``half_face_asymmetry`` = ``(R - L) / (R + L)`` of the mean L* of the skin on the image-right
  and image-left side of the face's midline (a line fitted through the FaceMesh midline points).
  Kept for reference: it moves with head yaw as well as with the light.

Lighting fit. Skin shading is modelled as Lambertian with first-order spherical harmonics
(Basri & Jacobs, TPAMI 2003; Ramamoorthi & Hanrahan, SIGGRAPH 2001):
``L*_i ~= c0 + c . n_i`` over the mesh vertices ``i``, where ``n_i`` is the unit surface normal of
vertex ``i`` in camera axes (x right, y down, z away from the camera), estimated by PCA of its 12
nearest mesh neighbours in 3-D, and ``L*_i`` the mean skin L* in a small disc around it. The face is
resampled to an inter-ocular distance of 100 px first, only camera-facing skin vertices are used,
and the fit is repeated twice without residuals beyond 2.5 robust SDs. Then
``light_side = c_x / (|c0| + |c|)``: for a single distant light of direction ``l`` with no ambient
light it is close to ``l_x`` = sin(azimuth) cos(elevation) up to about 30 deg off the camera axis
and smaller for grazing light (about 0.6 at 60 deg: attached shadows bend the shading away from the
linear model); ambient light shrinks it toward 0. Because
the normals turn with the head, a turned head under unchanged light keeps (nearly) the same value,
which a left/right split of the image does not.

Without landmarks (scalp views, or no face found) ``light_side`` is the whole frame's left/right
``(R - L) / (R + L)`` of mean L*. The means (not medians) are used because under strong side or back
light most of a half sits in near-black shadow, where a median is dominated by noise.

Backlight. ``background_l`` is the median L* of the background beside and above the face (the box
reaching 60 % of the face width beyond its sides and 50 % of its height above it, down to the mouth,
minus the mesh hull dilated by a quarter face width; :func:`surround_lightness`), and
``backlight_dl = background_l -`` the median skin L* of the face's brighter half (either side of
the midline): > 0 when the face is darker than what is behind it, a window behind the patient
being the usual cause. The brighter half is used so that a lamp beside the patient, which leaves
one half lit, is the light-direction check's business and not a backlight. ``compare`` grades its rise over the baseline as
its own ``backlight`` check. NaN when the face fills the frame (too little background visible).

Uncertainty
-----------
Each figure carries its own one-s.d. measurement uncertainty, in its own units, and the checks of
``compare`` grade the follow-up/baseline difference on it (both photos in quadrature, the
three-state rule of :mod:`analysis.photos.uncertainty`: pass unless beyond the tolerance beyond
doubt, fail when beyond the fail tolerance beyond doubt, warn = borderline, shown with its range).

* Pixel noise ``noise_sd_l`` (L* per pixel): Immerkaer's estimator (:func:`pixel_noise_rgb`) on the
  central 384 px square of the face's bounding box in the pixels of the image measured (for
  ``measure_photo`` the analysis copy, at most 1280 px a side; the whole frame without a face),
  per RGB channel,
  carried to L*, a*, b* through the Jacobian of the sRGB -> Lab conversion at the region's median
  colour. Skin texture adds to it, so it is an upper bound of the sensor/JPEG noise.
* ``light_side_sd`` = ``hypot(g * se_fit, se_noise)``. ``se_fit`` is the least-squares standard
  error of the lighting fit (residual variance times ``(X^T X)^-1``, carried to ``light_side`` by
  the delta method); it covers albedo, make-up, model misfit and landmark misplacement, which the
  residuals show. ``se_noise`` is the same propagation of the pixel noise of a vertex sample,
  ``noise_sd_l / (11 * ipd / 100)``: each vertex value is a mean over an 11 px box at the fit scale,
  i.e. over ``(11 * ipd / 100)^2`` of the image's pixels (at least one), so a smaller face or a
  noisier photo widens it. ``g = LIGHT_SIDE_SE_GAIN`` scales the least-squares error to the scatter
  actually seen on pairs whose light did not change (residuals of neighbouring vertices are
  correlated, so the textbook error need not be right).
* ``exposure_sd_l`` = ``hypot(EXPOSURE_FLOOR_L, 1.2533 * noise_sd_l / sqrt(n))``: the s.d. of a
  median of ``n`` region pixels under pixel noise (a smaller face has fewer pixels), plus a
  per-photo floor for what a re-shoot moves without any change of light (skin-mask placement,
  a slightly different head position).
* ``backlight_sd_l`` = ``sqrt(2) * exposure_sd_l``: the background's median is taken to be as
  uncertain as the face's (not fitted apart: no development set has a known window behind a face).
* ``color_sd_ab`` = ``hypot(COLOR_FLOOR_AB, 1.2533 * noise_ab / sqrt(n))`` per a*/b* axis,
  ``noise_ab`` the RMS of the a* and b* pixel noise; ``compare`` turns it into CIEDE2000 units by
  the local ΔE00 per unit a*/b* at the baseline colour.

Calibration (``benchmarks/lighting_accuracy.py --calibrate``, development data in
``../shared/datasets`` only): pairs whose light did not change. For ``light_side``: Extended Yale B
A+000E+20 and A+000E-20 against A+000E+00 (same azimuth, so ``light_side`` truth 0; 56 pairs of 28
subjects) and Yale faces ``normal`` against ``noglasses`` (same session and light, 15 pairs);
``g`` solves RMS(Δ / s.d.) = 1 over the 71 pairs: 0.78 (RMS Δ 0.022; the raw least-squares s.d.
of a difference had median 0.028; pixel noise adds about 0.0001 on these crops; 91.5 % of the
pairs have ``|z| <= 1.645``). Fitted on either half of the subjects alone, ``g`` is 0.64 or 0.90
and the other half then shows RMS z 1.42 or 0.70: the gain is known to about +-20 %, the spread
between people being larger than the model's. For the floors:
Yale faces ``normal``/``noglasses`` and Pointing'04 pan +-15 against pan 0 at tilt 0 (the next
shots of the same session under the same room light, 40 pairs): RMS ΔL* 2.08 and 2.26, so
``EXPOSURE_FLOOR_L`` = 1.57 L* per photo (RMS / sqrt 2, the noise part removed); RMS Δa*/Δb* after
luminance matching 0.31 on Pointing'04 (Yale faces is grey and was left out), so
``COLOR_FLOOR_AB`` = 0.22 per axis. Yale B's near-frontal lights (|az| <= 5, |el| <= 10) were not
used to fit anything; ``benchmarks/lighting_accuracy.py`` reports them, with the side lights, under
the old and the new rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from analysis.photos.resample import shrink

# FaceMesh (468/478-point) indices. Contours from mediapipe's face_mesh_connections (Apache-2.0).
MIDLINE_IDX: tuple[int, ...] = (
    10,
    151,
    9,
    8,
    168,
    6,
    197,
    195,
    5,
    4,
    1,
    19,
    94,
    2,
    164,
    0,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    200,
    199,
    175,
    152,
)
RIGHT_EYE_IDX: tuple[int, ...] = (  # the patient's right eye (image left when facing the camera)
    33,
    7,
    163,
    144,
    145,
    153,
    154,
    155,
    133,
    173,
    157,
    158,
    159,
    160,
    161,
    246,
)
LEFT_EYE_IDX: tuple[int, ...] = (
    362,
    382,
    381,
    380,
    374,
    373,
    390,
    249,
    263,
    466,
    388,
    387,
    386,
    385,
    384,
    398,
)
RIGHT_BROW_IDX: tuple[int, ...] = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW_IDX: tuple[int, ...] = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
LIPS_OUTER_IDX: tuple[int, ...] = (
    61,
    146,
    91,
    181,
    84,
    17,
    314,
    405,
    321,
    375,
    291,
    409,
    270,
    269,
    267,
    0,
    37,
    39,
    40,
    185,
)
# eye corners used for the inter-ocular distance (outer, inner) of each eye
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)

# Uncertainty calibration (see "Uncertainty" in the module docstring; fitted by
# ``benchmarks/lighting_accuracy.py --calibrate``)
LIGHT_SIDE_SE_GAIN = 0.78
EXPOSURE_FLOOR_L = 1.57
COLOR_FLOOR_AB = 0.22

CLIP_LOW = 2
CLIP_HIGH = 253
# pixels used for the Lab medians, the halves' means and the pixel-count term of the
# uncertainty (a deterministic stride sample of the region: its sampling error of a median,
# ~1.25 * 5 L* / sqrt(50 000) = 0.03 L* for skin, is 2 % of ``EXPOSURE_FLOOR_L``)
_MAX_SAMPLES = 50_000
_WHOLE_FRAME_SIDE_PX = 1024  # whole-frame statistics are taken on a copy this size at most


@dataclass(frozen=True)
class LightingMeasure:
    """Lighting of one photo (see the module docstring for definitions and signs)."""

    exposure_l: float
    clipped_share: float
    lab_median: tuple[float, float, float]
    light_side: float
    region_px: int  # number of pixels the figures were taken over (0 -> figures are NaN)
    half_face_asymmetry: float = float("nan")  # (R - L) / (R + L) of the face halves' mean L*
    shading_vertices: int = 0  # mesh vertices used by the lighting fit
    # measurement uncertainty (one s.d., the figure's own units; NaN when not measured), see
    # "Uncertainty" in the module docstring
    light_side_sd: float = float("nan")
    exposure_sd_l: float = float("nan")  # L*
    color_sd_ab: float = float("nan")  # per-axis s.d. of the a*/b* medians
    noise_sd_l: float = float("nan")  # pixel noise of the region, L* per pixel
    # backlight: median L* of the background beside and above the face, and that minus the
    # face's median skin L* (> 0: the face is darker than what is behind it); NaN without a face
    background_l: float = float("nan")
    backlight_dl: float = float("nan")
    backlight_sd_l: float = float("nan")


def eye_distance_px(landmarks_px: np.ndarray) -> float:
    """Distance between the eye centres (mean of each eye's corners), in the landmarks' pixels."""
    pts = _check_landmarks(landmarks_px)[:, :2]
    right = pts[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left = pts[list(LEFT_EYE_CORNERS)].mean(axis=0)
    return float(np.linalg.norm(left - right))


def face_skin_mask(shape: tuple[int, ...], landmarks_px: np.ndarray) -> np.ndarray:
    """Boolean mask ``(H, W)`` of the face's skin: hull of the mesh minus eyes, brows and lips.

    Parameters
    ----------
    shape : tuple
        Image shape; only ``(H, W)`` are used.
    landmarks_px : ndarray, shape (468 or 478, 2 or 3)
        FaceMesh points, x/y in the image's pixels. Points outside the image are allowed.
    """
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), bool)
    local_mask, x0, y0 = _skin_mask_box((h, w), landmarks_px)
    out[y0 : y0 + local_mask.shape[0], x0 : x0 + local_mask.shape[1]] = local_mask
    return out


def _skin_mask_box(shape: tuple[int, ...], landmarks_px: np.ndarray) -> tuple[np.ndarray, int, int]:
    """:func:`face_skin_mask` inside the face's bounding box only: ``(mask, x0, y0)``, the mask's
    top-left corner at ``(x0, y0)`` of the image (an empty mask when the face is outside it)."""
    pts = _check_landmarks(landmarks_px)[:, :2]
    h, w = int(shape[0]), int(shape[1])
    x0, y0 = (int(max(0, np.floor(v))) for v in pts[:468].min(axis=0))
    x1 = int(min(w, np.ceil(pts[:468, 0].max()) + 1))
    y1 = int(min(h, np.ceil(pts[:468, 1].max()) + 1))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), bool), 0, 0
    local = np.round(pts - [x0, y0]).astype(np.int32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(local[:468]), 1)
    radius = max(1, int(round(0.08 * eye_distance_px(landmarks_px))))
    # each convex hole grown by a disc of ``radius``: the hull filled, then its outline drawn with
    # round joins ``2 * radius`` thick (the Minkowski sum of a convex polygon and a disc). Equal to
    # a morphological dilation with OpenCV's elliptic kernel up to the rasterisation of the rim
    # (about 1.5 % of a hole's area) and ~100x faster than that dilation on a 12 MP face
    for idx in (RIGHT_EYE_IDX, LEFT_EYE_IDX, RIGHT_BROW_IDX, LEFT_BROW_IDX, LIPS_OUTER_IDX):
        hull = cv2.convexHull(local[list(idx)])
        cv2.fillConvexPoly(mask, hull, 0)
        cv2.polylines(mask, [hull], True, 0, thickness=2 * radius)
    return mask > 0, x0, y0


def face_side(shape: tuple[int, ...], landmarks_px: np.ndarray) -> np.ndarray:
    """Signed pixel offset ``(H, W)`` from the face's midline: ``> 0`` on the image-right side.

    The midline is the least-squares line ``x = a*y + b`` through the FaceMesh midline points
    (forehead, nose bridge, philtrum, lips, chin), so roll and moderate yaw are handled.
    """
    h, w = int(shape[0]), int(shape[1])
    yy, xx = np.mgrid[0:h, 0:w]
    return _midline_offset(xx, yy, landmarks_px)


def _midline_offset(xs: np.ndarray, ys: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    pts = _check_landmarks(landmarks_px)[:, :2]
    mid = pts[list(MIDLINE_IDX)]
    a, b = np.polyfit(mid[:, 1], mid[:, 0], 1)
    out: np.ndarray = (xs - (a * ys + b)) / np.hypot(1.0, a)
    return out


def measure_lighting(rgb: np.ndarray, *, landmarks_px: np.ndarray | None) -> LightingMeasure:
    """Exposure, clipping, median Lab colour and left-right light balance of a photo.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        sRGB image.
    landmarks_px : ndarray, shape (478, 3) or None
        FaceMesh points in ``rgb``'s pixels; ``None`` measures the whole frame (scalp views).

    Returns
    -------
    LightingMeasure
        ``exposure_l`` in L* (0-100), ``clipped_share`` in 0-1, ``lab_median`` (L*, a*, b*),
        ``light_side`` in [-1, 1] (> 0: image-right half brighter). NaN figures (and
        ``region_px == 0``) when the face region lies outside the image.
    """
    rgb = _check_rgb(rgb)
    if landmarks_px is None:
        small = _shrink(rgb, _WHOLE_FRAME_SIDE_PX)
        h, w = small.shape[:2]
        pixels_rgb = small.reshape(-1, 3)
        rows = small[:: max(1, -(-h * w // _MAX_SAMPLES))]  # whole rows: mirror-symmetric
        sample = rows.reshape(-1, 3)
        side = np.broadcast_to(np.arange(w) - (w - 1) / 2.0, rows.shape[:2]).reshape(-1)
    else:
        local_mask, bx, by = _skin_mask_box(rgb.shape, landmarks_px)
        ys, xs = np.nonzero(local_mask)
        pixels_rgb = rgb[by : by + local_mask.shape[0], bx : bx + local_mask.shape[1]][ys, xs]
        step = max(1, -(-ys.size // _MAX_SAMPLES))
        sample = pixels_rgb[::step]
        side = _midline_offset(xs[::step] + bx, ys[::step] + by, landmarks_px)
    clipped = _clipped(pixels_rgb)
    n = int(pixels_rgb.shape[0])
    if n == 0:
        nan = float("nan")
        return LightingMeasure(nan, nan, (nan, nan, nan), nan, 0)
    lab = lab_of_pixels(sample)
    lab_median = tuple(float(v) for v in np.median(lab, axis=0))
    asymmetry = _asymmetry(lab[:, 0], side)
    light_side, used, light_sd = asymmetry, 0, float("nan")
    background = float("nan")
    noise_rgb = pixel_noise_rgb(rgb if landmarks_px is None else _face_crop(rgb, landmarks_px))
    noise_lab = _noise_in_lab(np.array(lab_median), noise_rgb)
    if landmarks_px is not None:
        fit = shading_fit(rgb, landmarks_px=landmarks_px)
        light_side, used = fit.light_side, fit.n_vertices
        light_sd = light_side_sd(fit, noise_lab[0])
        background = surround_lightness(rgb, landmarks_px)
    n_used = int(lab.shape[0])
    median_factor = 1.2533 / np.sqrt(n_used)  # s.d. of a median of n normal samples, per s.d.
    exposure_sd = float(np.hypot(EXPOSURE_FLOOR_L, median_factor * noise_lab[0]))
    color_sd = float(
        np.hypot(COLOR_FLOOR_AB, median_factor * np.hypot(*noise_lab[1:]) / np.sqrt(2))
    )
    return LightingMeasure(
        exposure_l=lab_median[0],
        clipped_share=float(clipped),
        lab_median=lab_median,  # type: ignore[arg-type]
        light_side=float(light_side),
        region_px=n,
        half_face_asymmetry=float(asymmetry) if landmarks_px is not None else float("nan"),
        shading_vertices=used,
        light_side_sd=float(light_sd),
        exposure_sd_l=exposure_sd,
        color_sd_ab=color_sd,
        noise_sd_l=float(noise_lab[0]),
        background_l=background,
        backlight_dl=background - _lit_half_l(lab[:, 0], side),
        # the background's median is taken to be as uncertain as the face's (not fitted apart)
        backlight_sd_l=float(np.sqrt(2.0) * exposure_sd),
    )


@dataclass(frozen=True)
class ShadingFit:
    """First-order lighting fit ``L* ~= c0 + c . n`` (see the module docstring).

    ``coef`` = ``(c0, c_x, c_y, c_z)`` in L* units, camera axes (x right, y down, z away from the
    camera): ``c_x > 0`` means surfaces facing the image's right are brighter. NaN when fewer than
    ``MIN_FIT_VERTICES`` skin vertices were usable.
    """

    coef: tuple[float, float, float, float]
    n_vertices: int
    coef_cov: np.ndarray | None = None  # 4x4 least-squares covariance of ``coef`` (residual s^2)
    xtx_inv: np.ndarray | None = None  # (X^T X)^-1 of the fit: covariance per unit vertex variance
    ipd_px: float = float("nan")  # inter-ocular distance of the face in the image's pixels

    @property
    def light_side(self) -> float:
        c0, cx, cy, cz = self.coef
        norm = float(np.sqrt(cx * cx + cy * cy + cz * cz))
        denom = abs(c0) + norm
        return cx / denom if denom > 0 else 0.0

    def light_side_se(self, cov: np.ndarray | None = None) -> float:
        """Standard error of :attr:`light_side` (delta method) under the coefficient covariance
        ``cov`` (default: the fit's own least-squares ``coef_cov``)."""
        cov = self.coef_cov if cov is None else cov
        if cov is None or not np.all(np.isfinite(self.coef)):
            return float("nan")
        c0, cx, cy, cz = self.coef
        norm = float(np.sqrt(cx * cx + cy * cy + cz * cz))
        denom = abs(c0) + norm
        if not (denom > 0 and norm > 0):
            return float("nan")
        grad = (
            np.array([-cx * np.sign(c0), denom - cx * cx / norm, -cx * cy / norm, -cx * cz / norm])
            / denom**2
        )
        return float(np.sqrt(max(0.0, grad @ cov @ grad)))


MIN_FIT_VERTICES = 40
_FIT_IPD_PX = 100.0  # faces are resampled to this inter-ocular distance before the fit
_SAMPLE_SIDE_PX = 11  # box around each vertex where L* is averaged (at the fit scale)
_NEIGHBOURS = 12


def vertex_normals(landmarks_px: np.ndarray, *, neighbours: int = _NEIGHBOURS) -> np.ndarray:
    """Unit normals ``(468, 3)`` of the FaceMesh surface, pointing toward the camera (n_z < 0).

    Each normal is the direction of least spread (PCA) of the vertex's ``neighbours`` nearest
    mesh points in 3-D. FaceMesh's z grows away from the camera, in the x/y pixel scale.
    """
    pts = _check_landmarks(landmarks_px)
    if pts.shape[1] != 3:
        raise ValueError(f"vertex normals need 3-D landmarks (478, 3), got {pts.shape}")
    p = pts[:468]
    # the set of nearest neighbours is what matters (PCA ignores their order). OpenCV's brute-force
    # k-nearest search (float32 squared distances): the same sets as a k-d tree on FaceMesh points,
    # 2x faster at 468 points, and no scipy.spatial import (~0.25 s) at start-up
    q = np.ascontiguousarray(p, dtype=np.float32)
    nn = cv2.batchDistance(q, q, cv2.CV_32F, normType=cv2.NORM_L2SQR, K=neighbours)[1]
    patches = p[nn]
    patches -= patches.mean(axis=1, keepdims=True)
    # direction of least spread = eigenvector of the smallest eigenvalue of the 3 x 3 scatter
    # (the last right singular vector of the patch, found without a batched SVD)
    normals = np.linalg.eigh(patches.transpose(0, 2, 1) @ patches)[1][:, :, 0]
    normals[normals[:, 2] > 0] *= -1.0
    return normals


def shading_fit(rgb: np.ndarray, *, landmarks_px: np.ndarray) -> ShadingFit:
    """Fit ``L* ~= c0 + c . n`` over the camera-facing skin vertices of the face mesh.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        sRGB image.
    landmarks_px : ndarray, shape (478, 3)
        FaceMesh points in ``rgb``'s pixels (z in the same scale).

    Returns
    -------
    ShadingFit
    """
    rgb = _check_rgb(rgb)
    pts = _check_landmarks(landmarks_px)
    nan_fit = ShadingFit((float("nan"),) * 4, 0)
    if pts.shape[1] != 3:
        return nan_fit
    ipd = eye_distance_px(pts)
    if not ipd > 0:
        return nan_fit
    scale = _FIT_IPD_PX / ipd
    xy = pts[:468, :2]
    h, w = rgb.shape[:2]
    pad = 10.0 / scale
    x0, y0 = (int(max(0, np.floor(v - pad))) for v in xy.min(axis=0))
    x1 = int(min(w, np.ceil(xy[:, 0].max() + pad)))
    y1 = int(min(h, np.ceil(xy[:, 1].max() + pad)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return nan_fit
    size = (max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale)))
    if scale < 1:
        crop = shrink(rgb[y0:y1, x0:x1], size)
    else:
        crop = cv2.resize(
            np.ascontiguousarray(rgb[y0:y1, x0:x1]), size, interpolation=cv2.INTER_LINEAR
        )
    sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
    local = pts.copy()
    local[:, 0] = (pts[:, 0] - x0) * sx
    local[:, 1] = (pts[:, 1] - y0) * sy
    local[:, 2] = pts[:, 2] * (sx + sy) / 2.0
    mask = face_skin_mask(crop.shape, local).astype(np.float32)
    lum = lightness_of_image(crop)
    k = (_SAMPLE_SIDE_PX, _SAMPLE_SIDE_PX)
    total = cv2.boxFilter(lum * mask, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(mask, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    normals = vertex_normals(local)
    vx = np.round(local[:468, 0]).astype(int)
    vy = np.round(local[:468, 1]).astype(int)
    inside = (vx >= 0) & (vx < crop.shape[1]) & (vy >= 0) & (vy < crop.shape[0])
    vx, vy = np.clip(vx, 0, crop.shape[1] - 1), np.clip(vy, 0, crop.shape[0] - 1)
    cover = count[vy, vx] / float(k[0] * k[1])
    use = inside & (cover > 0.6) & (normals[:, 2] < -0.3)
    if use.sum() < MIN_FIT_VERTICES:
        return ShadingFit((float("nan"),) * 4, int(use.sum()))
    design = np.c_[np.ones(int(use.sum())), normals[use]]
    values = (total[vy, vx] / np.maximum(count[vy, vx], 1e-6))[use]
    keep = np.ones(values.size, bool)
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    for _ in range(2):
        resid = values - design @ coef
        spread = 1.4826 * float(np.median(np.abs(resid))) + 1e-6
        keep = np.abs(resid) < 2.5 * spread
        if keep.sum() < MIN_FIT_VERTICES:
            break
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
    x, y = design[keep], values[keep]
    dof = max(1, x.shape[0] - x.shape[1])
    s2 = float(((y - x @ coef) ** 2).sum()) / dof
    try:
        xtx_inv = np.linalg.inv(x.T @ x)
    except np.linalg.LinAlgError:
        return ShadingFit(tuple(float(c) for c in coef), int(keep.sum()))  # type: ignore[arg-type]
    return ShadingFit(
        tuple(float(c) for c in coef),  # type: ignore[arg-type]
        int(keep.sum()),
        s2 * xtx_inv,
        xtx_inv,
        float(ipd),
    )


_NOISE_WINDOW_PX = 384  # the noise is estimated on at most this square of the face crop (147k px)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def pixel_noise_rgb(rgb: np.ndarray) -> np.ndarray:
    """Per-channel pixel noise s.d. (8-bit levels) by Immerkaer's method (CVIU 64(2), 1996).

    ``sigma = sqrt(pi / 2) / (6 (W - 2)(H - 2)) * sum |I * N|`` with ``N`` the 3x3 difference of
    two Laplacians, which cancels smooth shading; skin texture still adds to it, so the figure is an
    upper bound of the sensor/JPEG noise. Only the central ``_NOISE_WINDOW_PX`` square is used.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if h < 3 or w < 3:
        return np.full(3, np.nan)
    y0, x0 = max(0, (h - _NOISE_WINDOW_PX) // 2), max(0, (w - _NOISE_WINDOW_PX) // 2)
    win = np.ascontiguousarray(rgb[y0 : y0 + _NOISE_WINDOW_PX, x0 : x0 + _NOISE_WINDOW_PX])
    resp = cv2.filter2D(win, cv2.CV_16S, _IMMERKAER)[1:-1, 1:-1]  # |response| <= 16 * 255
    mean_abs = np.array(cv2.mean(np.abs(resp))[:3])
    out: np.ndarray = np.sqrt(np.pi / 2.0) * mean_abs / 6.0
    return out


def _noise_in_lab(lab_median: np.ndarray, noise_rgb: np.ndarray) -> np.ndarray:
    """Pixel noise (8-bit RGB s.d. per channel) carried to L*, a*, b* at the region's colour."""
    if not (np.all(np.isfinite(lab_median)) and np.all(np.isfinite(noise_rgb))):
        return np.full(3, np.nan)
    base = np.clip(srgb_of_lab(np.asarray(lab_median, float).reshape(1, 3))[0] * 255.0, 2.0, 253.0)
    probe = np.repeat(base[None, :], 4, axis=0)
    for c in range(3):
        probe[c + 1, c] += 1.0
    lab = _lab_of_linear(_linear_of_srgb(probe / 255.0))
    jac = (lab[1:] - lab[0]).T  # d(L*, a*, b*) / d(R, G, B) per 8-bit level
    out: np.ndarray = np.sqrt((jac**2) @ (np.asarray(noise_rgb, float) ** 2))
    return out


def _face_crop(rgb: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """The image inside the face mesh's bounding box (the whole image when that is empty)."""
    pts = _check_landmarks(landmarks_px)[:468, :2]
    h, w = rgb.shape[:2]
    x0, y0 = (int(max(0, np.floor(v))) for v in pts.min(axis=0))
    x1, y1 = int(min(w, np.ceil(pts[:, 0].max()))), int(min(h, np.ceil(pts[:, 1].max())))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return rgb
    return rgb[y0:y1, x0:x1]


_SURROUND_SIDE_PX = 256  # the surround is measured on a copy at most this size
_SURROUND_MIN_PX = 400  # fewer background pixels than this (on that copy): not measured


def _linear_of_srgb(srgb: np.ndarray) -> np.ndarray:
    """Linear RGB of sRGB values in 0-1 (sRGB's gamma expansion)."""
    v = np.asarray(srgb, float)
    out: np.ndarray = np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    return out


def _lightness_lut() -> np.ndarray:
    """CIE L* (D65) of a neutral 8-bit sRGB grey, per level."""
    lin = _linear_of_srgb(np.arange(256) / 255.0)
    f = np.where(lin > (6 / 29) ** 3, np.cbrt(lin), lin / (3 * (6 / 29) ** 2) + 4 / 29)
    return (116.0 * f - 16.0).astype(np.float32)


_L_OF_LEVEL = _lightness_lut()

# sRGB (D65) -> CIE L*a*b*, the same formulas and constants as ``skimage.color.rgb2lab`` (its
# ``xyz_from_rgb`` matrix, D65 2-degree white, the 0.008856 / 7.787 linear segment), with the
# gamma expansion of the 256 8-bit levels taken from a table: 5-10x faster on the ~50k skin pixels
# of a face; equal to rgb2lab to ~1e-9 (L* of a whole image, in float32: ~1e-4; tests/photos/test_lighting.py).
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_LEVELS = np.arange(256) / 255.0
_LINEAR_OF_LEVEL = _linear_of_srgb(_LEVELS)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)


def _lab_of_linear(linear: np.ndarray) -> np.ndarray:
    f = _lab_f(np.asarray(linear, float).reshape(-1, 3) @ (_XYZ_FROM_RGB / _D65_WHITE[:, None]).T)
    return np.stack(
        [116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1
    )


def lab_of_pixels(pixels_rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* ``(N, 3)`` of 8-bit sRGB pixels ``(N, 3)`` (as ``skimage.color.rgb2lab``)."""
    return _lab_of_linear(_LINEAR_OF_LEVEL[np.asarray(pixels_rgb, np.uint8).reshape(-1, 3)])


_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)


def srgb_of_lab(lab: np.ndarray) -> np.ndarray:
    """sRGB ``(N, 3)`` in 0-1 of CIE L*a*b* ``(N, 3)`` (D65), clipped to the gamut: the same
    formulas and constants as ``skimage.color.lab2rgb`` (whose import costs ~0.15 s of scipy at
    every engine start, for the one colour :func:`_noise_in_lab` converts)."""
    lab = np.asarray(lab, float).reshape(-1, 3)
    y = (lab[:, 0] + 16.0) / 116.0
    fxyz = np.stack([lab[:, 1] / 500.0 + y, y, np.maximum(y - lab[:, 2] / 200.0, 0.0)], axis=1)
    xyz = np.where(fxyz > 0.2068966, fxyz**3, (fxyz - 16.0 / 116.0) / 7.787) * _D65_WHITE
    linear = xyz @ _RGB_FROM_XYZ.T
    positive = np.maximum(linear, 0.0)  # the power is taken only where it is used
    srgb = np.where(linear > 0.0031308, 1.055 * positive ** (1 / 2.4) - 0.055, 12.92 * linear)
    out: np.ndarray = np.clip(srgb, 0.0, 1.0)
    return out


def lightness_of_image(rgb: np.ndarray) -> np.ndarray:
    """CIE L* ``(H, W)`` of an 8-bit sRGB image (the L* channel of ``skimage.color.rgb2lab``)."""
    lin = _LINEAR_OF_LEVEL.astype(np.float32)
    y = (
        lin[rgb[..., 0]] * np.float32(0.212671)
        + lin[rgb[..., 1]] * np.float32(0.715160)
        + lin[rgb[..., 2]] * np.float32(0.072169)
    )
    return (116.0 * _lab_f(y) - 16.0).astype(np.float32)


def surround_lightness(rgb: np.ndarray, landmarks_px: np.ndarray) -> float:
    """Median L* of the background beside and above the face (NaN when too little is visible).

    The region is the box reaching 60 % of the face's width beyond each side of the face and 50 %
    of its height above it, down to the mouth (so the shoulders and clothes stay out), minus the
    face mesh's hull dilated by a quarter of the face width (hair and ears). L* is taken from the
    luma of the sRGB levels (OpenCV's Rec. 601 grey; a window or wall, not skin, so colour does
    not matter), on a copy at most ``_SURROUND_SIDE_PX`` a side.
    """
    rgb = _check_rgb(rgb)
    pts = _check_landmarks(landmarks_px)[:468, :2]
    h, w = rgb.shape[:2]
    fx0, fy0 = pts.min(axis=0)
    fx1, fy1 = pts.max(axis=0)
    fw, fh = fx1 - fx0, fy1 - fy0
    if not (fw > 1 and fh > 1):
        return float("nan")
    x0, x1 = int(max(0, fx0 - 0.6 * fw)), int(min(w, fx1 + 0.6 * fw))
    y0, y1 = int(max(0, fy0 - 0.5 * fh)), int(min(h, fy0 + 0.75 * fh))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return float("nan")
    # grey first (a linear mix of the channels, so shrinking after it is the same), then shrink
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    scale = min(1.0, _SURROUND_SIDE_PX / max(grey.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = shrink(grey, size)
    local = np.round((pts - [x0, y0]) * scale).astype(np.int32)
    face = np.zeros(grey.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(local), 1)
    # dilation by a disc of radius 0.25 fw: every pixel farther than that from the hull is background
    away = cv2.distanceTransform(1 - face, cv2.DIST_L2, 3)
    levels = grey[away > 0.25 * fw * scale]
    if levels.size < min(_SURROUND_MIN_PX, grey.shape[0] * grey.shape[1] // 8):
        return float("nan")
    # L* is monotone in the grey level, so the median L* is the L* of the median level
    cumulative = np.cumsum(np.bincount(levels, minlength=256))
    return float(_L_OF_LEVEL[int(np.searchsorted(cumulative, levels.size / 2.0))])


def light_side_sd(fit: ShadingFit, noise_l: float, *, gain: float | None = None) -> float:
    """One s.d. of ``fit.light_side``: the calibrated fit error and the pixel-noise error in
    quadrature (see "Uncertainty" in the module docstring). NaN when the fit failed."""
    se_fit = fit.light_side_se()
    if not (np.isfinite(se_fit) and fit.xtx_inv is not None and fit.ipd_px > 0):
        return float("nan")
    noise_l = float(noise_l) if np.isfinite(noise_l) else 0.0
    # each vertex value is a mean over a box of _SAMPLE_SIDE_PX at the fit scale, i.e. over
    # (_SAMPLE_SIDE_PX * ipd / _FIT_IPD_PX)^2 of the image's own pixels (at least one)
    box_side_px = max(1.0, _SAMPLE_SIDE_PX * fit.ipd_px / _FIT_IPD_PX)
    vertex_sd = noise_l / box_side_px
    se_noise = fit.light_side_se(vertex_sd**2 * fit.xtx_inv)
    gain = LIGHT_SIDE_SE_GAIN if gain is None else float(gain)
    return float(np.hypot(gain * se_fit, se_noise))


def _lit_half_l(lightness: np.ndarray, side: np.ndarray) -> float:
    """Median L* of the brighter of the face's two halves (either side of the midline)."""
    halves = [lightness[side > 0], lightness[side < 0]]
    medians = [float(np.median(h)) for h in halves if h.size]
    return max(medians) if medians else float("nan")


def _asymmetry(lightness: np.ndarray, side: np.ndarray) -> float:
    right, left = lightness[side > 0], lightness[side < 0]
    if right.size == 0 or left.size == 0:
        return float("nan")
    r, lt = float(np.mean(right)), float(np.mean(left))
    return (r - lt) / (r + lt) if (r + lt) > 0 else 0.0


def _clipped(pixels_rgb: np.ndarray) -> float:
    if pixels_rgb.size == 0:
        return float("nan")
    pixels = np.ascontiguousarray(pixels_rgb, dtype=np.uint8).reshape(-1, 1, 3)
    # pixels with every channel strictly inside (CLIP_LOW, CLIP_HIGH); the others are clipped
    inside = cv2.inRange(
        pixels, np.full(3, CLIP_LOW + 1, np.uint8), np.full(3, CLIP_HIGH - 1, np.uint8)
    )
    return 1.0 - cv2.countNonZero(inside) / float(pixels.shape[0])


def _shrink(rgb: np.ndarray, max_side_px: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side_px / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"image too small: {rgb.shape}")
    return rgb


def _check_landmarks(landmarks_px: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks_px, dtype=float)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh landmarks of shape (478, 3), got {pts.shape}")
    if not np.isfinite(pts[:, :2]).all():
        raise ValueError("landmarks contain non-finite coordinates")
    return pts
