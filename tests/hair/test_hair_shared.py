"""Follicle counter on the real expert-labelled set (../shared/datasets/trichoscopy_follicles).

Only held-out subjects (``is_held_out``), which the shipped model never saw. Skips when the set is
absent. The full figures are printed by ``benchmarks/hair_counts.py``; the bounds here are looser than
those figures (a third of the held-out images) so that they hold on any such sample, but far tighter
than the naive threshold + connected-components baseline manages.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from analysis.hair.count import count_follicles, is_held_out, subject_of

ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "trichoscopy_follicles"

pytestmark = pytest.mark.shared


def _held_out_sample() -> list[Path]:
    if not (ROOT / "images").is_dir():
        pytest.skip("shared trichoscopy set absent (../shared/datasets/trichoscopy_follicles)")
    imgs = [p for p in sorted((ROOT / "images").glob("*.jpg")) if is_held_out(subject_of(p.name))]
    return imgs[::3]


def test_counts_on_held_out_subjects_track_the_experts() -> None:
    import cv2

    imgs = _held_out_sample()
    assert len(imgs) >= 20
    truth = np.array(
        [len(ET.parse(ROOT / "annotations" / (p.stem + ".xml")).findall("object")) for p in imgs],
        float,
    )
    ours = np.array(
        [count_follicles(cv2.imread(str(p))[..., ::-1].copy()).follicles for p in imgs], float
    )
    assert abs(ours.sum() / truth.sum() - 1) < 0.10
    assert np.median(np.abs(ours - truth) / truth) < 0.20
    assert np.corrcoef(ours, truth)[0, 1] > 0.6


def test_no_point_on_the_header_bar() -> None:
    import cv2

    imgs = _held_out_sample()
    for p in imgs[:10]:
        bgr = cv2.imread(str(p))
        r = count_follicles(bgr[..., ::-1].copy())
        header = (np.abs(bgr[:40].astype(int) - (78, 80, 80)).max(axis=2) < 15).mean() > 0.3
        if header:
            assert all(y > 40 for _, y in r.points_px), p.name
