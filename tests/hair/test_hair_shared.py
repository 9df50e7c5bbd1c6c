"""Follicle counter on the real expert-labelled set (../shared/datasets/trichoscopy_follicles)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from analysis.hair.count import count_follicles

ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "trichoscopy_follicles"

pytestmark = pytest.mark.shared


def test_counts_on_real_images_track_the_experts_within_a_third() -> None:
    import cv2

    if not (ROOT / "images").is_dir():
        pytest.skip("shared trichoscopy set absent")
    imgs = sorted((ROOT / "images").glob("*.jpg"))[::12][:30]
    truth = np.array([len(ET.parse(ROOT / "annotations" / (p.stem + ".xml")).findall("object"))
                      for p in imgs], float)
    ours = np.array([count_follicles(cv2.imread(str(p))[..., ::-1].copy()).follicles for p in imgs], float)
    assert abs(ours.sum() / truth.sum() - 1) < 0.30
    assert np.median(np.abs(ours - truth) / truth) < 0.35
