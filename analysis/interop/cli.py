"""Interop commands.

``python -m analysis export (--series ID | --patient CODE) --format dicom|fhir|csv --out DIR
--as EMAIL [--purpose SCOPE]``: write the export and its manifest.json into DIR (new or empty).

``python -m analysis import-hair-density FILE --as EMAIL [--commit]``: check a trichoscope CSV
against the record (a dry run by default, listing what would be written) and, with
``--commit``, import all of it in one transaction. ``import-prom`` does the same for PROM
answers (one column per patient-reported endpoint).

The account named by ``--as`` (an active Candor account) decides what is allowed and is recorded
in the audit trail. Problems are printed one per line, with exit code 1; nothing is half done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a series or a patient as DICOM, FHIR or CSV")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--series", type=int, metavar="ID")
    which.add_argument("--patient", metavar="CODE")
    p.add_argument("--format", required=True, choices=("dicom", "fhir", "csv"))
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new or empty folder")
    p.add_argument(
        "--as",
        dest="as_email",
        required=True,
        metavar="EMAIL",
        help="the Candor account doing the export (its role is checked, and audited)",
    )
    p.add_argument(
        "--purpose",
        default="clinical_record",
        choices=("clinical_record", "consult_display", "teaching", "marketing"),
        help="consent scope each photo must have (default clinical_record)",
    )
    p.set_defaults(func=_export)
    p = sub.add_parser(
        "import-hair-density",
        help="import a trichoscope hair-density CSV (dry run unless --commit)",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--as", dest="as_email", required=True, metavar="EMAIL")
    p.add_argument("--commit", action="store_true", help="write it (default: dry run)")
    p.set_defaults(func=_import, kind="hair_density")
    p = sub.add_parser(
        "import-prom",
        help="import PROM answers from a questionnaire/tablet CSV (dry run unless --commit)",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--as", dest="as_email", required=True, metavar="EMAIL")
    p.add_argument("--commit", action="store_true", help="write it (default: dry run)")
    p.set_defaults(func=_import, kind="prom")


def _actor(session: Any, email: str) -> Any:
    from sqlalchemy import select

    from analysis.auth.accounts import actor_for, normalise_email
    from analysis.store.models import User

    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or not user.active:
        raise LookupError(f"no active Candor account {email!r}")
    return actor_for(user)


def _export(args: argparse.Namespace) -> int:
    from analysis.errors import FieldError
    from analysis.services import interop as service
    from analysis.store import db
    from analysis.store.access import PermissionDenied

    try:
        with db.session_scope() as session:
            actor = _actor(session, args.as_email)
            kw = dict(fmt=args.format, out_dir=args.out, purpose=args.purpose)
            result = (
                service.export_series(session, actor, series_id=args.series, **kw)
                if args.series is not None
                else service.export_patient(session, actor, patient_code=args.patient, **kw)
            )
    except (PermissionDenied, FieldError, LookupError) as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # e.g. a stored image missing; nothing was written
        print(f"export failed, nothing was written: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(result.files)} file(s) written to {result.out_dir} "
        f"({len(result.photos_included)} photo(s) included, "
        f"{len(result.photos_left_out)} left out); manifest: {result.manifest_path}"
    )
    for item in result.photos_left_out:
        print(f"  photo {item['photo_id']} left out: {item['reason']}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from analysis.services import interop as service
    from analysis.store import db
    from analysis.store.access import PermissionDenied

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        with db.session_scope() as session:
            actor = _actor(session, args.as_email)
            run = service.import_prom if args.kind == "prom" else service.import_hair_density
            report = run(session, actor, data=data, commit=args.commit, filename=args.file.name)
    except service.ImportRefused as exc:
        print(f"nothing was imported; {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (PermissionDenied, LookupError) as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 1
    verb = "imported" if report.committed else "would import (dry run; add --commit)"
    print(f"{verb}: {len(report.values)} value(s) from {report.rows} row(s)")
    for v in report.values:
        print(
            f"  line {v.line}: {v.patient_code} session {v.session_number} "
            f"{v.endpoint_code}={v.value:g}" + (f" at {v.site}" if v.site else "")
        )
    return 0
