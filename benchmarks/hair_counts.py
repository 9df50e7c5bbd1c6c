"""Follicle counts vs expert boxes (../shared/datasets/trichoscopy_follicles), ours vs a naive baseline.

Held-out subjects only: ``analysis.hair.count.is_held_out`` (a fixed split by subject, the ``A…``/``B…``
number) picks about a quarter of the subjects; the shipped model (``analysis/hair/hair_mlp.npz``,
trained by ``benchmarks/hair_train.py``) never saw their images. The naive baseline (Otsu threshold of
the grey image + connected components over 50 px) runs on the same images in the same run.
Prints median |relative error|, total bias, Pearson r (with 95 % intervals from resampling whole
subjects), ms/image on one core (the counting call only, not JPEG decoding); writes a Bland–Altman
plot of both methods to ``benchmarks/out/hair_bland_altman.png``.
Run: ``.venv/bin/python benchmarks/hair_counts.py [--limit N] [--all]`` (``--all``: every subject,
training ones included, marked as such, for reference only).
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.hair.count import (  # noqa: E402
    METHOD,
    VERSION,
    count_follicles,
    is_held_out,
    subject_of,
)

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "trichoscopy_follicles"
OUT = Path(__file__).resolve().parent / "out"


def naive(rgb: np.ndarray) -> int:
    """Otsu threshold of dark pixels + connected components larger than 50 px."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, bw = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw)
    return int((stats[1:, cv2.CC_STAT_AREA] > 50).sum())


def figures(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Median |relative error| (%), total bias (%) and Pearson r of image counts."""
    r = float(np.corrcoef(pred, truth)[0, 1]) if np.ptp(pred) > 0 else float("nan")
    return (
        float(100 * np.median(np.abs(pred - truth) / truth)),
        float(100 * (pred.sum() / truth.sum() - 1)),
        r,
    )


def stats(pred: np.ndarray, truth: np.ndarray) -> str:
    med, bias, r = figures(pred, truth)
    d = pred - truth
    return (
        f"median|rel err| {med:6.1f} %  bias {bias:+6.1f} %"
        f"  r {r:.3f}  mean diff {d.mean():+.2f}"
        f"  LoA [{d.mean() - 1.96 * d.std(ddof=1):+.1f}, {d.mean() + 1.96 * d.std(ddof=1):+.1f}]"
    )


def subject_bootstrap(
    pred: np.ndarray, truth: np.ndarray, subjects: list[str], *, reps: int = 2000, seed: int = 0
) -> str:
    """95 % percentile intervals of median |rel err|, bias and r with whole subjects resampled.

    Images of one subject are not independent (the same scalp, mostly from one visit), so the draws
    pick subjects with replacement and take all their images. Also the share of draws whose r
    reaches issue 16's goal of 0.90.
    """
    names = sorted(set(subjects))
    rows = [np.nonzero(np.array(subjects) == s)[0] for s in names]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        take = np.concatenate([rows[i] for i in rng.integers(0, len(rows), len(rows))])
        draws.append(figures(pred[take], truth[take]))
    med, bias, r = (list(v) for v in zip(*draws, strict=True))
    lo_hi = {k: np.nanpercentile(v, [2.5, 97.5]) for k, v in (("m", med), ("b", bias), ("r", r))}
    return (
        f"95 % CI, {len(names)} subjects resampled ({reps} draws): median|rel err| "
        f"{lo_hi['m'][0]:.1f} to {lo_hi['m'][1]:.1f} %, bias {lo_hi['b'][0]:+.1f} to "
        f"{lo_hi['b'][1]:+.1f} %, r {lo_hi['r'][0]:.3f} to {lo_hi['r'][1]:.3f}; "
        f"draws with r >= 0.90: {100 * np.mean(np.array(r) >= 0.90):.1f} %"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="also training subjects (reference only)")
    a = ap.parse_args()
    if not (ROOT / "images").is_dir():
        raise SystemExit(f"shared set absent: {ROOT}")
    imgs = sorted((ROOT / "images").glob("*.jpg"))
    if not a.all:
        imgs = [p for p in imgs if is_held_out(subject_of(p.name))]
    if a.limit:
        imgs = imgs[: a.limit]
    truth, ours, base, ms = [], [], [], []
    cv2.setNumThreads(1)
    warm = cv2.imread(str(imgs[0]))[..., ::-1].copy()
    count_follicles(warm)  # imports and weight loading are not per-image cost
    for p in imgs:
        truth.append(len(ET.parse(ROOT / "annotations" / (p.stem + ".xml")).findall("object")))
        rgb = cv2.imread(str(p))[..., ::-1].copy()
        t = time.perf_counter()
        ours.append(count_follicles(rgb).follicles)
        ms.append(1000 * (time.perf_counter() - t))
        base.append(naive(rgb))
    t_, o_, b_ = (np.array(v, float) for v in (truth, ours, base))
    subjects = {subject_of(p.name) for p in imgs}
    what = "ALL subjects (training ones included)" if a.all else "held-out subjects only"
    print(
        f"{what}: {len(imgs)} images, {len(subjects)} subjects, {int(t_.sum())} expert boxes; "
        f"{METHOD} {VERSION}"
    )
    print(
        f"ours  : {stats(o_, t_)}  {np.median(ms):.1f} ms/image median, {np.percentile(ms, 95):.1f} p95 "
        f"(one thread, {rgb.shape[1]}x{rgb.shape[0]})"
    )
    print(f"        {subject_bootstrap(o_, t_, [subject_of(p.name) for p in imgs])}")
    print(f"naive : {stats(b_, t_)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(exist_ok=True)
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5), sharey=False)
    for ax, pred, name in (
        (axs[0], o_, f"ours ({METHOD} {VERSION})"),
        (axs[1], b_, "naive (Otsu + CC)"),
    ):
        m, d = (pred + t_) / 2, pred - t_
        ax.scatter(m, d, s=10, alpha=0.6)
        mu, sd = d.mean(), d.std(ddof=1)
        for y, ls in ((mu, "-"), (mu + 1.96 * sd, "--"), (mu - 1.96 * sd, "--")):
            ax.axhline(y, ls=ls, color="k", lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{name}: bias {mu:+.2f}, LoA ±{1.96 * sd:.1f}")
        ax.set_xlabel("mean of method and expert count")
        ax.set_ylabel("method − expert (objects per image)")
    fig.suptitle(f"Bland–Altman, {what}: {len(imgs)} images, {len(subjects)} subjects")
    fig.tight_layout()
    fig.savefig(OUT / "hair_bland_altman.png", dpi=100)
    print(f"wrote {OUT / 'hair_bland_altman.png'}")


if __name__ == "__main__":
    main()
