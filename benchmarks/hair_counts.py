"""Follicle counts vs expert boxes (../shared/datasets/trichoscopy_follicles), ours vs a naive baseline.

Split by subject (the ``A…`` number): the detection threshold was chosen on odd-numbered subjects; this
reports the even-numbered (not fitted) half.
Prints median |relative error|, total bias, Pearson r, ms/image (one core); writes a Bland–Altman plot.
Run: ``.venv/bin/python benchmarks/hair_counts.py [--limit N]``
"""

from __future__ import annotations

import argparse
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import sys

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.hair.count import count_follicles  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "trichoscopy_follicles"
OUT = Path(__file__).resolve().parent / "out"


def naive(rgb: np.ndarray) -> int:
    """Otsu threshold of dark pixels + connected components larger than 50 px."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, bw = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw)
    return int((stats[1:, cv2.CC_STAT_AREA] > 50).sum())


def stats(pred: np.ndarray, truth: np.ndarray) -> str:
    rel = np.abs(pred - truth) / truth
    return (f"median|rel err| {100 * np.median(rel):6.1f} %  bias {100 * (pred.sum() / truth.sum() - 1):+6.1f} %"
            f"  r {np.corrcoef(pred, truth)[0, 1]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    imgs = sorted((ROOT / "images").glob("*.jpg"))
    imgs = [p for p in imgs if int((re.search(r"A(\d+)", p.name) or re.search(r"(\d)", p.name)).group(1)) % 2 == 0]
    if a.limit:
        imgs = imgs[: a.limit]
    truth, ours, base, ms = [], [], [], []
    cv2.setNumThreads(1)
    for p in imgs:
        truth.append(len(ET.parse(ROOT / "annotations" / (p.stem + ".xml")).findall("object")))
        rgb = cv2.imread(str(p))[..., ::-1].copy()
        t = time.perf_counter()
        ours.append(count_follicles(rgb).follicles)
        ms.append(1000 * (time.perf_counter() - t))
        base.append(naive(rgb))
    t_, o_, b_ = (np.array(v, float) for v in (truth, ours, base))
    print(f"report half (even subject numbers): {len(imgs)} images")
    print(f"ours  : {stats(o_, t_)}  {np.median(ms):.1f} ms/image")
    print(f"naive : {stats(b_, t_)}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    OUT.mkdir(exist_ok=True)
    m, d = (o_ + t_) / 2, o_ - t_
    plt.scatter(m, d, s=8)
    for y in (d.mean(), d.mean() + 1.96 * d.std(), d.mean() - 1.96 * d.std()):
        plt.axhline(y, ls="--")
    plt.xlabel("mean of counts")
    plt.ylabel("ours - expert")
    plt.savefig(OUT / "hair_bland_altman.png", dpi=100)


if __name__ == "__main__":
    main()
