"""The demo's synthetic trichoscopy close-ups: known follicles, the same spot every session, a
nested field (more density only adds hairs), and defocus that the focus check can see."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.demo.trichoscopy_synth import (
    DEMO_MM_PER_PX,
    FRAME_PX,
    synth_trichoscopy,
    tricho_scene,
)
from analysis.hair.count import count_follicles
from analysis.photos.scalp import register
from analysis.photos.sharpness import measure_sharpness


@pytest.fixture(scope="module")
def scene():  # type: ignore[no-untyped-def]
    return tricho_scene(np.random.default_rng(7))


def test_truth_lists_the_follicles_in_the_frame_and_their_density(scene) -> None:  # type: ignore[no-untyped-def]
    rgb, truth = synth_trichoscopy(scene, density_per_cm2=150, rng=np.random.default_rng(1))
    assert rgb.shape == (*FRAME_PX, 3) and rgb.dtype == np.uint8
    pts = np.array(truth["follicles_px"])
    assert truth["follicles"] == len(pts) > 0
    h, w = FRAME_PX
    assert (pts[:, 0] >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all()
    area = w * h * (DEMO_MM_PER_PX / 10) ** 2
    assert truth["frame_density_per_cm2"] == pytest.approx(len(pts) / area, abs=0.01)
    # every follicle opening is drawn dark (hair colour), the skin around is light
    grey = rgb.mean(axis=2)
    xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert np.median(grey[ys, xs]) < np.median(grey) - 60


def test_the_field_is_nested_and_a_shift_moves_the_same_follicles(scene) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    _, low = synth_trichoscopy(scene, density_per_cm2=100, rng=rng)
    _, high = synth_trichoscopy(scene, density_per_cm2=250, rng=rng)
    lo, hi = {tuple(p) for p in low["follicles_px"]}, {tuple(p) for p in high["follicles_px"]}
    assert lo < hi  # raising the density only adds hairs
    _, moved = synth_trichoscopy(scene, density_per_cm2=250, rng=rng, shift_px=(30, -20))
    h, w = FRAME_PX
    back = {(round(x + 30, 1), round(y - 20, 1)) for x, y in moved["follicles_px"]}
    in_both = {(x, y) for x, y in back if 0 <= x < w and 0 <= y < h}
    assert in_both <= hi and len(in_both) >= len(hi) * 0.8


def test_follow_ups_register_to_the_baseline_and_defocus_lowers_sharpness(scene) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    base, _ = synth_trichoscopy(scene, density_per_cm2=150, rng=rng)
    follow, _ = synth_trichoscopy(scene, density_per_cm2=170, rng=rng, shift_px=(24, -16))
    blurred, _ = synth_trichoscopy(scene, density_per_cm2=170, rng=rng, blur_sigma_px=6.0)
    reg = register(base, follow)
    assert reg.ok and reg.scale_ratio == pytest.approx(1.0, abs=0.02)
    sharp = measure_sharpness(base)
    assert measure_sharpness(follow) == pytest.approx(sharp, rel=0.1)
    assert measure_sharpness(blurred) < 0.45 * sharp  # the comparability check's fail ratio


def test_the_engine_counts_most_of_the_known_follicles(scene) -> None:  # type: ignore[no-untyped-def]
    truth, counted = 0, 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        s = tricho_scene(rng)
        rgb, t = synth_trichoscopy(s, density_per_cm2=150, rng=rng)
        truth += t["follicles"]
        counted += count_follicles(rgb).follicles
    # crossing and edge-cut hairs are under-counted (README: touching shafts read as one)
    assert 0.5 * truth <= counted <= 1.1 * truth
