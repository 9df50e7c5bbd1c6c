"""Follicle counter on synthetic trichoscopy-like images with known follicle positions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from analysis.hair.count import count_follicles


def _scalp(n: int, *, seed: int = 0, bar: bool = False) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((1024, 1280, 3), (150, 120, 110), np.uint8)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    pts = []
    while len(pts) < n:
        p = rng.uniform([100, 150], [1180, 950])
        if all(np.hypot(*(p - q)) > 120 for q in pts):
            pts.append(p)
    for x, y in pts:
        cv2.circle(img, (int(x), int(y)), 22, (15, 10, 10), -1)
    if bar:
        img[:60] = 0
        cv2.putText(img, "DEV-01 1.2mm 70x 2026-01-01", (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                    (255, 255, 255), 2)
    return img


def test_more_follicles_give_a_higher_count() -> None:
    few, many = count_follicles(_scalp(5)).follicles, count_follicles(_scalp(20)).follicles
    assert few < many
    assert abs(many - 20) <= 2


def test_a_text_bar_at_the_top_edge_is_ignored() -> None:
    r = count_follicles(_scalp(10, bar=True))
    assert all(y > 60 for _, y in r.points_px)


def test_scale_given_yields_density_per_cm2() -> None:
    img = _scalp(10)
    assert count_follicles(img).density_per_cm2 is None
    d = count_follicles(img, mm_per_px=0.005).density_per_cm2
    assert d is not None and d > 0


def test_cli_reports_bad_files_as_not_ok(tmp_path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    out = subprocess.run([sys.executable, "-m", "analysis", "count-follicles", str(bad), "--json"],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out.splitlines()[0])
    assert row["ok"] is False and row["error"]
