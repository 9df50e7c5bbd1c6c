"""Interop export speed on an existing clinic (the demo: ``python -m analysis demo`` first).

Prints, on the clinic that CANDOR_DATA_DIR / CANDOR_DATABASE_URL point at:

* DICOM export: seconds per photo (re-encode + write), against a naive baseline that copies the
  stored JPEG bytes to a file (what exporting without DICOM would cost);
* FHIR export: seconds per series (build + R4B model validation);
* analyst tables of every series: seconds with the eager loading the service uses, against the
  naive baseline of loading each series lazily (one query per session and relationship), and
  the number of SQL statements each issues.

Usage::

    CANDOR_DATA_DIR=/path/to/data .venv/bin/python -m benchmarks.interop_speed [--series N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import event, select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=5, help="series to export as DICOM/FHIR")
    args = parser.parse_args()

    from analysis.interop import tables
    from analysis.services import interop as service
    from analysis.store import db
    from analysis.store.access import Actor
    from analysis.store.images import default_store
    from analysis.store.models import Photo, Series, User

    engine = db.get_engine()
    statements = [0]
    event.listen(
        engine,
        "before_cursor_execute",
        lambda *a, **k: statements.__setitem__(0, statements[0] + 1),
    )
    with db.session_scope() as s:
        director = s.scalar(select(User).where(User.role == "medical_director").limit(1))
        if director is None:
            raise SystemExit("no medical director account: seed the demo clinic first")
        actor = Actor(user_id=director.id, email=director.email, role=director.role)
        series_ids = list(s.scalars(select(Series.id).order_by(Series.id)))
    chosen = series_ids[: args.series]
    store = default_store()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = 0
        t0 = time.perf_counter()
        for sid in chosen:
            with db.session_scope() as s:
                r = service.export_series(
                    s, actor, series_id=sid, fmt="dicom", out_dir=root / f"dicom-{sid}"
                )
                photos += len(r.photos_included)
        dicom_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with db.session_scope() as s:
            shas = list(s.scalars(select(Photo.sha256).order_by(Photo.id).limit(max(photos, 1))))
        for i, sha in enumerate(shas):
            (root / f"copy-{i}.jpg").write_bytes(store.get(sha, verify=True))
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for sid in chosen:
            with db.session_scope() as s:
                service.export_series(
                    s, actor, series_id=sid, fmt="fhir", out_dir=root / f"fhir-{sid}"
                )
        fhir_s = time.perf_counter() - t0

        statements[0] = 0
        t0 = time.perf_counter()
        data = service.analyst_tables_download(actor, series_ids=series_ids)
        eager_s, eager_q = time.perf_counter() - t0, statements[0]
        statements[0] = 0
        t0 = time.perf_counter()
        with db.session_scope() as s:  # naive: lazy loading, one series at a time
            infos = [service.load_series(s, s.get_one(Series, sid)) for sid in series_ids]
            tables.write_tables(infos, root / "naive")
        lazy_s, lazy_q = time.perf_counter() - t0, statements[0]

    print(f"clinic: {len(series_ids)} series; exported {len(chosen)} series, {photos} photos")
    print(
        f"DICOM export: {dicom_s / max(photos, 1) * 1000:.1f} ms/photo "
        f"(naive copy of the JPEG: {copy_s / max(len(shas), 1) * 1000:.1f} ms/photo)"
    )
    print(f"FHIR export: {fhir_s / max(len(chosen), 1) * 1000:.0f} ms/series")
    print(
        f"analyst tables, all series: {eager_s:.2f} s, {eager_q} SQL statements, "
        f"{len(data) / 1e3:.0f} kB zip "
        f"(naive lazy loading: {lazy_s:.2f} s, {lazy_q} SQL statements)"
    )


if __name__ == "__main__":
    main()
