"""Follicle (emerging hair) counter for trichoscopy / phototrichogram images, version 0.3.

Method ``shaft-components+mlp``:

1. The image is reduced by ``SCALE`` (area average) and turned into a darkness map: the per-pixel
   maximum over the colour channels (hair is dark in every channel; a red or blue device mark is not)
   is subtracted from its grey closing with a square of ``CLOSE_PX`` (a black-hat), so skin shading
   drops out and only narrow dark structures remain.
2. Burned-in device overlays are masked before anything is measured: text bars along the top or
   bottom edge (rows dominated by flat grey or greyish-dark label boxes, at most 8 % of the height
   each) and a scale bar (long, perfectly straight, 1–2 px wide horizontal or vertical lines, plus the
   label box at the horizontal line's end). Masked pixels get the median brightness, so they are never
   dark, and they are left out of the area used for density.
3. Candidate hair shafts are the connected components of ``darkness > DARK_THRESHOLD`` (after a 3×3
   opening) of at least ``MIN_AREA`` reduced pixels. Each candidate gets ``N_FEATURES`` shape,
   darkness and colour features (``component_features``).
4. A small multilayer perceptron (``N_FEATURES``→8→1, softplus output, Poisson loss), trained here on
   the expert boxes of the development set, predicts how many expert-boxed objects each candidate
   holds (0 for skin texture, dye or a shadow; 1 for a single shaft; 2–3 where shafts of one
   follicular unit touch). The image count is the rounded sum; each candidate's share is placed as
   points spread along its long axis (largest-remainder rounding, so ``len(points_px) == follicles``).
5. Per follicular unit (one candidate with at least one counted object) the number of hairs is that
   share (``hairs_per_unit``). When the scale is known each counted shaft's width (twice the
   median distance-transform value on the candidate's skeleton) classifies it terminal
   (≥ ``VELLUS_MAX_MM``) or vellus.

The weights (``hair_mlp.npz`` beside this file) are produced by ``benchmarks/hair_train.py`` from
``../shared/datasets/trichoscopy_follicles`` (source: GitHub ``roshan-k-patel/
hair-follicle-density-estimation-209b`` ``data/Images`` + ``data/Annotations`` at commit fff69b3;
labels name ``BSRL_HairFollicleDataset``, Huashan Hospital; 1280×1024, 70x), using only the
training subjects of a fixed subject split (``is_held_out``); no image of the held-out subjects was
used for fitting. No downloaded weights.

0.3 (from 0.2): the fill feature is the candidate's area over its moment-oriented box (16·√(λ₁λ₂))
instead of over its axis-aligned bounding box, which had made a shaft lying along an image axis look
unlike the same shaft at an angle (a synthetic bar scored 0.44 horizontal vs 0.81 at 30°; now 0.84 to
0.88 at any angle). Weights retrained with the unchanged recipe.

Conventions: points are ``(x, y)`` in full-resolution pixels, origin top-left. Density is per cm² and
needs ``mm_per_px`` (the device's calibrated pixel pitch, millimetres per pixel).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

METHOD = "shaft-components+mlp"
VERSION = "0.3"
SCALE = 2  # work at 1/SCALE resolution (640×512 for a 1280×1024 image)
CLOSE_PX = 41  # black-hat square, reduced pixels (wider than the thickest shaft)
DARK_THRESHOLD = 28.0  # black-hat darkness (grey levels) for a candidate pixel
REL_THRESHOLD = 40.0  # and darker than the Gaussian-smoothed skin by this much
BG_SIGMA = 20.0  # reduced px
THIN_DARK = 12.0  # faint-shaft candidates: 9×9 black-hat above this ...
THIN_RIDGE = 6.0  # ... and Hessian ridge strength above this (grey levels / px²)
THIN_MIN_LEN = 15  # reduced px, longest bounding-box side
MIN_AREA = 30  # reduced pixels
VELLUS_MAX_MM = 0.04  # shafts thinner than 40 µm are vellus (TrichoScan convention)
WEIGHTS = Path(__file__).with_name("hair_mlp.npz")
FEATURE_NAMES = (
    "log_area",
    "log_skel_len",
    "width",
    "elong",
    "log_major",
    "minor",
    "fill_oriented",
    "dark_mean",
    "dark_max",
    "dark_frac60",
    "v_mean",
    "sat_mean",
    "blue_minus_red",
    "endpoints",
    "branch_pts",
    "border",
    "rel_dark_mean",
    "log_img_cands",
    "img_dark_frac",
    "pieces_erode5",
    "pieces_erode9",
    "pieces_strict",
    "coherence",
    "skel_dist_sd",
    "dist_max",
    "width_rel_image",
    "log_area_rel_image",
    "image_median_width",
    "skel_over_major",
    "is_thin",
    "log_img_thin",
    "ridge_mean",
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass(frozen=True)
class FollicleCount:
    """Result of one count; ``points_px`` are (x, y) full-resolution pixels."""

    follicles: int
    points_px: list[tuple[float, float]] = field(default_factory=list)
    density_per_cm2: float | None = None
    hairs_per_unit: list[int] = field(default_factory=list)
    units_px: list[tuple[float, float]] = field(default_factory=list)
    terminal: int | None = None
    vellus: int | None = None
    method: str = METHOD
    version: str = VERSION


def subject_of(name: str) -> str:
    """Subject id (``A095``, ``B159``) from a development-set file name ``220105_A095_1.jpg``."""
    parts = Path(name).stem.split("_")
    return parts[1] if len(parts) >= 3 else Path(name).stem


def is_held_out(subject: str) -> bool:
    """Fixed subject split: about a quarter of the subjects are never used for fitting."""
    return zlib.crc32(subject.encode()) % 4 == 0


# ----------------------------------------------------------------------------------------- overlays
def _max_min(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel channel maximum and minimum (uint8), without a slow axis-2 reduction."""
    import cv2

    c0, c1, c2 = cv2.split(small)
    return cv2.max(cv2.max(c0, c1), c2), cv2.min(cv2.min(c0, c1), c2)


def overlay_keep(small: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask, True = real scalp, on the reduced BGR/RGB image ``small``.

    Drops (a) bands along the top or bottom edge whose rows are mostly flat grey (a plain bar) or
    greyish-dark (label boxes with text), up to 8 % of the height each, and (b) a scale bar: long,
    perfectly straight, thin dark horizontal/vertical lines and the label box at the horizontal
    line's end.
    """
    import cv2

    vmax, vmin = _max_min(small)
    v = vmax.astype(np.int16)
    sat = v - vmin
    h, w = v.shape
    keep = np.ones((h, w), dtype=bool)
    boxy = ((sat <= 20) & (v >= 50) & (v <= 120)).mean(axis=1)
    flat = ((sat <= 8) & (np.abs(v - np.median(v, axis=1)[:, None]) <= 3)).mean(axis=1)
    bad = (boxy > 0.35) | (flat > 0.8)
    lim = max(1, int(0.08 * h))
    top = np.nonzero(bad[:lim])[0]
    if top.size:
        keep[: top.max() + 2] = False
    bot = np.nonzero(bad[h - lim :])[0]
    if bot.size:
        keep[h - lim + bot.min() - 1 :] = False
    # scale bar: thin (≤ 2 reduced px) dark lines, exactly axis-aligned and long
    g = v.astype(np.float32)
    d = 2
    pad = cv2.copyMakeBorder(g, d, d, d, d, cv2.BORDER_REPLICATE)
    up, dn = pad[:h, d : d + w], pad[2 * d :, d : d + w]
    lf, rt = pad[d : d + h, :w], pad[d : d + h, 2 * d :]
    ln = max(25, w // 12)
    th: np.ndarray = (((up - g) > 25) & ((dn - g) > 25)).astype(np.uint8)
    tv: np.ndarray = (((lf - g) > 25) & ((rt - g) > 25)).astype(np.uint8)
    th = cv2.morphologyEx(th, cv2.MORPH_OPEN, np.ones((1, ln), np.uint8))
    tv = cv2.morphologyEx(tv, cv2.MORPH_OPEN, np.ones((ln, 1), np.uint8))
    lines = np.bitwise_or(th.astype(np.uint8), tv.astype(np.uint8))
    if lines.any():
        keep &= cv2.dilate(lines, np.ones((7, 7), np.uint8)) == 0
        ys, xs = np.nonzero(th)
        if xs.size:
            xe, y = int(xs.max()), int(np.median(ys))
            keep[max(y - 22, 0) : y + 16, max(xe - 6, 0) : xe + 90] = False
    return keep


# ------------------------------------------------------------------------------------- candidates
@dataclass
class Candidates:
    """Candidate shafts of one image at reduced resolution."""

    labels: np.ndarray  # (h, w) int32, 0 = background, k = candidate k
    features: np.ndarray  # (n, N_FEATURES) float32
    centroid: np.ndarray  # (n, 2) x, y reduced px
    axis: np.ndarray  # (n, 2) unit vector of the long axis
    half_len: np.ndarray  # (n,) half extent along the axis, reduced px
    width_px: np.ndarray  # (n,) shaft width, reduced px
    keep: np.ndarray  # (h, w) bool, overlay-free scalp
    shape: tuple[int, int]  # full-resolution (H, W)


def _to_small(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, w // SCALE), max(1, h // SCALE)), interpolation=cv2.INTER_AREA)


def candidates(img: np.ndarray) -> Candidates:
    """Overlay mask, darkness map and candidate shafts with their features (see module doc)."""
    import cv2
    from skimage.morphology import skeletonize

    if img.ndim not in (2, 3) or img.shape[0] < 32 or img.shape[1] < 32 or img.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W[, 3]) uint8 image of at least 32×32, got {img.dtype} {img.shape}"
        )
    small = _to_small(img)
    keep = overlay_keep(small)
    vmax, vmin = _max_min(small)
    v = vmax.astype(np.float32)
    sat = v - vmin.astype(np.float32)
    blue_red = (
        small[..., 2].astype(np.float32) - small[..., 0]
    )  # channel 2 − channel 0: sign depends on RGB/BGR; used consistently
    fill = float(np.median(v[keep])) if keep.any() else float(np.median(v))
    v[~keep] = fill
    closed = cv2.morphologyEx(v, cv2.MORPH_CLOSE, np.ones((CLOSE_PX, CLOSE_PX), np.uint8))
    dark = closed - v
    # absolute darkness against the smoothed skin, so gaps between bright scales are not "dark"
    q = cv2.resize(
        v, (max(1, v.shape[1] // 8), max(1, v.shape[0] // 8)), interpolation=cv2.INTER_AREA
    )
    q = cv2.GaussianBlur(q, (0, 0), BG_SIGMA / 8)
    rel = cv2.resize(q, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_LINEAR) - v
    dark[~keep] = 0
    m: np.ndarray = ((dark > DARK_THRESHOLD) & (rel > REL_THRESHOLD)).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    big = np.zeros(n, dtype=bool)
    big[1:] = st[1:, cv2.CC_STAT_AREA] >= MIN_AREA
    remap = np.zeros(n, dtype=np.int32)
    remap[big] = np.arange(1, int(big.sum()) + 1)
    lab = remap[lab]
    st = st[big]
    k_strong = len(st)
    # faint thin shafts (vellus): a small black-hat and a positive Hessian ridge, away from strong ones
    sm = cv2.GaussianBlur(v, (0, 0), 1.0)
    bh_thin = cv2.morphologyEx(sm, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)) - sm
    g = cv2.GaussianBlur(v, (0, 0), 1.5)
    dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
    dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
    dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
    ridge = (dxx + dyy) / 2 + np.sqrt(((dxx - dyy) / 2) ** 2 + dxy**2)
    near = cv2.dilate((lab > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    thin = ((bh_thin > THIN_DARK) & (ridge > THIN_RIDGE) & keep & ~near).astype(np.uint8)
    tn, tlab, tst, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    tok = np.zeros(tn, dtype=bool)
    tok[1:] = (tst[1:, cv2.CC_STAT_AREA] >= 12) & (
        np.maximum(tst[1:, 2], tst[1:, 3]) >= THIN_MIN_LEN
    )
    tre = np.zeros(tn, dtype=np.int32)
    tre[tok] = np.arange(k_strong + 1, k_strong + 1 + int(tok.sum()))
    tl = tre[tlab]
    lab = np.where(tl > 0, tl, lab)
    st = np.concatenate([st, tst[tok]])
    k = len(st)
    h, w = lab.shape
    img_dark_frac = float(m[keep].mean()) if keep.any() else 0.0
    if k == 0:
        z = np.zeros((0, 2), np.float32)
        return Candidates(
            lab,
            np.zeros((0, N_FEATURES), np.float32),
            z,
            z,
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            keep,
            (img.shape[0], img.shape[1]),
        )
    fg = lab > 0
    sk = skeletonize(fg)
    dist = cv2.distanceTransform(fg.astype(np.uint8), cv2.DIST_L2, 3)
    nb = (
        cv2.filter2D(
            sk.astype(np.float32), -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT
        )
        - 1
    )
    ys, xs = np.nonzero(fg)
    li = lab[ys, xs]
    xs_f, ys_f = xs.astype(np.float64), ys.astype(np.float64)

    def per(weights: np.ndarray) -> np.ndarray:
        return np.bincount(li, weights=weights, minlength=k + 1)[1:]

    area = per(np.ones_like(xs_f))
    mx, my = per(xs_f) / area, per(ys_f) / area
    cxx = per(xs_f * xs_f) / area - mx * mx
    cyy = per(ys_f * ys_f) / area - my * my
    cxy = per(xs_f * ys_f) / area - mx * my
    tr, det = cxx + cyy, cxx * cyy - cxy * cxy
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 1e-3)
    ang = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    ax = np.stack([np.cos(ang), np.sin(ang)], 1)
    skp = sk[ys, xs]
    sk_len = np.maximum(per(skp.astype(float)), 1)
    # shaft width: twice the mean distance-to-edge on the skeleton
    width = 2 * per(np.where(skp, dist[ys, xs], 0.0)) / sk_len
    nbv = nb[ys, xs]
    endpoints = per((skp & (nbv == 1)).astype(float))
    branches = per((skp & (nbv >= 3)).astype(float))
    dv = dark[ys, xs].astype(np.float64)
    dark_mean = per(dv) / area
    dark_max = np.maximum.reduceat(
        dv[np.argsort(li, kind="stable")], np.searchsorted(np.sort(li), np.arange(1, k + 1))
    )
    frac60 = per((dv > 60).astype(float)) / area
    v_mean = per(v[ys, xs].astype(float)) / area
    sat_mean = per(sat[ys, xs].astype(float)) / area
    br_mean = per(blue_red[ys, xs].astype(float)) / area
    rel_mean = per(rel[ys, xs].astype(float)) / area
    # pieces after erosion and at a stricter darkness: touching shafts separate, one shaft stays one
    pieces = []
    for sub_mask in (
        cv2.erode(m * fg.astype(np.uint8), np.ones((5, 5), np.uint8)),
        cv2.erode(m * fg.astype(np.uint8), np.ones((9, 9), np.uint8)),
        ((dark > 2 * DARK_THRESHOLD) & (rel > 2 * REL_THRESHOLD) & fg).astype(np.uint8),
    ):
        pn, plab, pst, _ = cv2.connectedComponentsWithStats(sub_mask, connectivity=8)
        ok = np.nonzero(pst[1:, cv2.CC_STAT_AREA] >= 8)[0] + 1
        if ok.size:
            pys, pxs = pst[ok, 1], pst[ok, 0]
            # parent of each piece: the label at any of its pixels (first pixel in raster order)
            first = np.full(pn, -1, np.int64)
            py, px = np.nonzero(plab)
            order = np.argsort(plab[py, px], kind="stable")
            pl = plab[py, px][order]
            starts = np.searchsorted(pl, ok)
            parent = lab[py[order][starts], px[order][starts]]
            del first, pys, pxs
            pieces.append(np.bincount(parent, minlength=k + 1)[1:].astype(float))
        else:
            pieces.append(np.zeros(k))
    # orientation coherence of the grey-level structure tensor inside the candidate
    gx = cv2.Sobel(v, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=3)
    gxs, gys = gx[ys, xs].astype(np.float64), gy[ys, xs].astype(np.float64)
    sxx, syy, sxy = per(gxs * gxs), per(gys * gys), per(gxs * gys)
    coher = np.sqrt((sxx - syy) ** 2 + 4 * sxy**2) / (sxx + syy + 1e-6)
    dsk = np.where(skp, dist[ys, xs], 0.0)
    dsk_sd = np.sqrt(np.maximum(per(dsk * dsk) / sk_len - (width / 2) ** 2, 0.0))
    dist_max = np.maximum.reduceat(
        dist[ys, xs][np.argsort(li, kind="stable")].astype(np.float64),
        np.searchsorted(np.sort(li), np.arange(1, k + 1)),
    )
    real = area >= 2 * MIN_AREA
    med_w = float(np.median(width[real])) if real.any() else float(np.median(width))
    med_a = float(np.median(area[real])) if real.any() else float(np.median(area))
    x0, y0, bw, bh = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    border = ((x0 <= 1) | (y0 <= 1) | (x0 + bw >= w - 1) | (y0 + bh >= h - 1)).astype(float)
    feats = np.stack(
        [
            np.log(area),
            np.log(sk_len),
            width,
            np.sqrt(l1 / l2),
            np.log(4 * np.sqrt(l1) + 1),
            4 * np.sqrt(l2),
            area / (16 * np.sqrt(l1 * l2)),  # fill of the moment-oriented box (rotation-free)
            dark_mean,
            dark_max,
            frac60,
            v_mean,
            sat_mean,
            br_mean,
            endpoints,
            branches,
            border,
            rel_mean,
            np.full(k, np.log(k + 1)),
            np.full(k, img_dark_frac),
            pieces[0],
            pieces[1],
            pieces[2],
            coher,
            dsk_sd,
            dist_max,
            width / max(med_w, 1e-3),
            np.log(area / max(med_a, 1.0)),
            np.full(k, med_w),
            sk_len / (4 * np.sqrt(l1) + 1),
            (np.arange(k) >= k_strong).astype(float),
            np.full(k, np.log(k - k_strong + 1)),
            per(ridge[ys, xs].astype(np.float64)) / area,
        ],
        1,
    ).astype(np.float32)
    cents = np.stack([mx, my], 1).astype(np.float32)
    # half extent along the axis ≈ 2·sqrt(major variance) (uniform bar: half-length = sqrt(3·var))
    half = np.sqrt(3 * l1).astype(np.float32)
    widths = width.astype(np.float32)
    axes = ax.astype(np.float32)
    return Candidates(lab, feats, cents, axes, half, widths, keep, (img.shape[0], img.shape[1]))


# ------------------------------------------------------------------------------------------ model
@lru_cache(maxsize=2)
def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def mlp_forward(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Expected objects per candidate: softplus(W2 · tanh(W1 · z + b1) + b2), z standardised."""
    z = (x - params["mu"]) / params["sd"]
    hdn = np.tanh(z @ params["w1"] + params["b1"])
    out = hdn @ params["w2"] + params["b2"]
    return np.asarray(np.logaddexp(0.0, out[:, 0]), dtype=np.float64)


def predict_candidates(c: Candidates, params: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Expected number of expert-boxed objects in each candidate (float, ≥ 0)."""
    if c.features.shape[0] == 0:
        return np.zeros(0)
    if params is None:
        if not WEIGHTS.is_file():
            raise OSError(f"model weights missing: {WEIGHTS}")
        params = _load(str(WEIGHTS))
    return mlp_forward(params, c.features.astype(np.float64))


def _allocate(expect: np.ndarray, total: int) -> np.ndarray:
    """Integer shares summing to ``total``, proportional to ``expect`` (largest remainder)."""
    if total <= 0 or expect.sum() <= 0:
        return np.zeros(len(expect), dtype=int)
    q = expect * (total / expect.sum())
    base: np.ndarray = np.floor(q).astype(int)
    rest = total - int(base.sum())
    if rest > 0:
        base[np.argsort(-(q - base), kind="stable")[:rest]] += 1
    return base


def count_follicles(
    img: np.ndarray, *, mm_per_px: float | None = None, params: dict[str, np.ndarray] | None = None
) -> FollicleCount:
    """Count follicles (expert-boxed emerging hairs) on an (H, W, 3) or (H, W) uint8 image.

    Parameters
    ----------
    img : ndarray, uint8; channel order RGB or BGR (features do not depend on which, see below)
    mm_per_px : float, optional
        Calibrated pixel pitch in millimetres; enables ``density_per_cm2`` and terminal/vellus.
    params : dict, optional
        Model weights (default: the shipped ``hair_mlp.npz``).

    ``blue_minus_red`` is channel 2 − channel 0; the benchmark and the training script pass RGB,
    as does the CLI, so keep callers on RGB.
    """
    if mm_per_px is not None and not (mm_per_px > 0 and np.isfinite(mm_per_px)):
        raise ValueError(f"mm_per_px must be a positive number, got {mm_per_px}")
    c = candidates(img)
    expect = predict_candidates(c, params)
    total = int(round(float(expect.sum())))
    share = _allocate(expect, total)
    pts: list[tuple[float, float]] = []
    units: list[tuple[float, float]] = []
    per_unit: list[int] = []
    widths: list[float] = []
    for j in np.nonzero(share)[0]:
        s = int(share[j])
        cx, cy = c.centroid[j]
        ax = c.axis[j]
        offs = (
            (np.arange(s) - (s - 1) / 2) * (2 * c.half_len[j] / max(s, 1)) if s > 1 else np.zeros(1)
        )
        for o in offs:
            pts.append(
                (float((cx + o * ax[0] + 0.5) * SCALE), float((cy + o * ax[1] + 0.5) * SCALE))
            )
            widths.append(float(c.width_px[j]) * SCALE)
        units.append((float((cx + 0.5) * SCALE), float((cy + 0.5) * SCALE)))
        per_unit.append(s)
    density = terminal = vellus = None
    if mm_per_px is not None:
        area_cm2 = float(c.keep.sum()) * SCALE * SCALE * (mm_per_px / 10.0) ** 2
        density = len(pts) / area_cm2 if area_cm2 > 0 else None
        wmm = np.array(widths) * mm_per_px
        terminal = int((wmm >= VELLUS_MAX_MM).sum())
        vellus = int((wmm < VELLUS_MAX_MM).sum())
    return FollicleCount(
        follicles=len(pts),
        points_px=pts,
        density_per_cm2=density,
        hairs_per_unit=per_unit,
        units_px=units,
        terminal=terminal,
        vellus=vellus,
    )
