"""The cost of encryption at rest (issue #12): the same demo clinic without and with CANDOR_DB_KEY
(SQLCipher database + AES-GCM image blobs), side by side.

Seeds (or reuses) two demo clinics of ``--patients`` patients in ``--dir``/plain and
``--dir``/keyed, then in a fresh process per clinic times, ``--reps`` times each:

* save photo: ``records.store_photo`` of a 12 MP JPEG (blob written and fsynced, row committed);
* read photo: ``photo_access.photo_bytes`` of a stored photo (consent check, audit event, blob
  read, decrypted and re-hashed);
* page load: the Patients and Series review pages under Streamlit's AppTest (first render, then
  reruns).

    .venv/bin/python benchmarks/at_rest_cost.py                # 16 patients, 15 reps
    .venv/bin/python benchmarks/at_rest_cost.py --patients 64 --reps 30
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGES = ("patients.py", "series_review.py")


def _jpeg_12mp() -> bytes:
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    img = Image.fromarray(skdata.astronaut()).resize((4000, 3000), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(1).integers(0, 12, (3000, 4000, 3), dtype=np.uint8)
    img = Image.fromarray(np.asarray(img, dtype=np.uint8) + noise)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=92)
    return out.getvalue()


def child(reps: int) -> dict[str, object]:
    from sqlalchemy import select
    from streamlit.testing.v1 import AppTest

    from analysis.services import records
    from analysis.services.photo_access import photo_bytes
    from analysis.store import db
    from analysis.store.access import Actor
    from analysis.store.images import default_store
    from analysis.store.models import Photo, Session, User

    with db.session_scope() as s:
        director = s.scalars(select(User).where(User.role == "medical_director")).first()
        clinician = s.scalars(select(User).where(User.role == "clinician")).first()
        if director is None or clinician is None:
            raise SystemExit("seed the demo clinic first: it has no director or clinician")
        photo_ids = list(s.scalars(select(Photo.id).order_by(Photo.id).limit(reps)))
        visit_id = s.scalars(select(Session.id).order_by(Session.id)).first()
        if visit_id is None:
            raise SystemExit("seed the demo clinic first: it has no session")
    actor = Actor(user_id=clinician.id, email=clinician.email, role="clinician")
    store = default_store()
    jpeg = _jpeg_12mp()
    out: dict[str, object] = {"photo_mb": len(jpeg) / 1e6}

    saves = []
    for i in range(reps):
        data = jpeg + i.to_bytes(4, "big")  # a new blob each time (content-addressed)
        t = time.perf_counter()
        with db.session_scope() as s:
            try:
                records.store_photo(
                    s,
                    actor,
                    store,
                    session_id=visit_id,
                    photo=records.PhotoInput(
                        data=data,
                        original_sha256="0" * 64,
                        media_type="image/jpeg",
                        width_px=4000,
                        height_px=3000,
                        view="face_frontal",
                        verdict="pass",
                        measurements={},
                        checks=[],
                    ),
                )
            except records.FieldError:  # no clinical-record consent on that visit's patient
                raise SystemExit("the first session's patient has no photo consent") from None
            s.flush()
        saves.append(time.perf_counter() - t)
    reads = []
    for pid in photo_ids:
        t = time.perf_counter()
        with db.session_scope() as s:
            photo_bytes(s, actor, photo_id=pid, store=store)
        reads.append(time.perf_counter() - t)
    out["save photo"] = statistics.median(saves)
    out["read photo"] = statistics.median(reads)
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "views" / page), default_timeout=600)
        at.session_state["candor_actor"] = Actor(
            user_id=director.id, email=director.email, role="medical_director"
        )
        t = time.perf_counter()
        at.run()
        first = time.perf_counter() - t
        assert not at.exception, at.exception
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
        out[f"{page} first"] = first
        out[f"{page} rerun"] = statistics.median(times)
    return out


def seed(dir_: Path, n: int, env: dict[str, str]) -> None:
    if (dir_ / "candor.sqlite3").exists():
        return
    dir_.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "analysis", "demo", "--patients", str(n), "--if-empty"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    print(f"seeded {n} patients into {dir_} in {time.monotonic() - t0:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="plain and keyed runs alternate this many times; the best median is "
        "kept (the machine is shared: alternating spreads others' load evenly)",
    )
    ap.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "out" / "at_rest")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.reps)))
        return 0
    key_file = args.dir / "bench-db.key"  # a benchmark-only key, beside the clinics
    if not key_file.exists():
        from analysis.store.crypto import generate_key_file

        generate_key_file(key_file)
    results: dict[str, dict[str, float]] = {}
    envs = {}
    for mode in ("plain", "keyed"):
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CANDOR_DB_KEY", "CANDOR_DB_KEY_FILE", "CANDOR_DATABASE_URL")
        }
        env["CANDOR_DATA_DIR"] = str(args.dir / mode)
        env["CANDOR_AUDIT_ANCHOR"] = str(args.dir / f"{mode}.audit-anchor")
        env["CANDOR_AUDIT_KEY_FILE"] = str(args.dir / f"{mode}.audit-key")
        if mode == "keyed":
            env["CANDOR_DB_KEY_FILE"] = str(key_file)
        seed(args.dir / mode, args.patients, env)
        envs[mode] = env
    for _round in range(args.rounds):
        for mode, env in envs.items():
            res = subprocess.run(
                [sys.executable, __file__, "--child", "--reps", str(args.reps)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if res.returncode:
                raise SystemExit(f"timing the {mode} clinic failed:\n{res.stderr[-3000:]}")
            got = json.loads(res.stdout.strip().splitlines()[-1])
            best = results.setdefault(mode, got)
            for name, value in got.items():
                best[name] = min(best[name], value)
    plain, keyed = results["plain"], results["keyed"]
    print(
        f"\n{args.patients} patients, best of {args.rounds} medians of {args.reps}; photo "
        f"{plain['photo_mb']:.1f} MB JPEG (12 MP)"
    )
    print(f"{'operation':<26} {'no key':>9} {'CANDOR_DB_KEY':>14} {'overhead':>9}")
    for name in (
        "save photo",
        "read photo",
        *(f"{p} {w}" for p in PAGES for w in ("first", "rerun")),
    ):
        a, b = float(plain[name]), float(keyed[name])
        print(f"{name:<26} {a * 1000:>7.1f}ms {b * 1000:>12.1f}ms {100 * (b - a) / a:>+8.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
