"""``python -m analysis demo``: seed the demo clinic (synthetic patients and photos) into an empty
database. Idempotent: on a database that already holds patients it does nothing and says so."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from analysis.demo import DEFAULT_PATIENTS, DEFAULT_SEED

    p = sub.add_parser("demo", help="seed the demo clinic (synthetic patients, series and photos)")
    p.add_argument(
        "--if-empty",
        action="store_true",
        help="what `make run` uses: seed only when the database has no patients, "
        "else print one line and succeed (the demo is never seeded into a "
        "database that holds patients, with or without this flag)",
    )
    p.add_argument(
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        metavar="N",
        help=f"number of patients (default {DEFAULT_PATIENTS}, at least 4)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="S",
        help=f"random seed (default {DEFAULT_SEED}); same seed and day, same clinic",
    )
    p.add_argument(
        "--no-photos", action="store_true", help="skip photos (seconds instead of ~30 s)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="W",
        help="processes rendering and measuring photos (default 2)",
    )
    p.add_argument(
        "--photo-pool",
        type=int,
        default=None,
        metavar="K",
        help="photo tracks rendered for real (default: "
        "analysis.demo.DEFAULT_PHOTO_POOL); larger clinics' photo records share "
        "these images by content hash",
    )
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import sys

    if args.patients < 4:
        print("--patients must be at least 4 (one series per protocol)", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    from analysis.demo import DEFAULT_PHOTO_POOL
    from analysis.demo.clinic import seed_demo_clinic

    pool = DEFAULT_PHOTO_POOL if args.photo_pool is None else args.photo_pool
    if pool < 1:
        print("--photo-pool must be at least 1", file=sys.stderr)
        return 2

    try:
        report = seed_demo_clinic(
            n_patients=args.patients,
            seed=args.seed,
            photos=not args.no_photos,
            workers=args.workers,
            photo_pool=pool,
            progress=lambda line: print(line, flush=True),
        )
    except Exception as exc:  # one transaction: nothing was written
        print(
            f"demo: seeding failed, nothing was saved ({type(exc).__name__}: {exc}). "
            "Image files already written, if any, are removed by `python -m analysis sweep`.",
            file=sys.stderr,
        )
        return 1
    if not report.seeded:
        print(("demo: " if args.if_empty else "") + report.message)
        return 0
    print(
        f"{report.message}: {report.patients} patients, {report.series} series, "
        f"{report.sessions} sessions, {report.photos} photos "
        f"({report.retakes} retaken, {report.overrides} kept with an override reason)"
    )
    return 0
