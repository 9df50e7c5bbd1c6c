"""``python -m analysis measure`` and ``python -m analysis compare``: the photo engine's command line.

Contract (other tools parse it)
-------------------------------
``measure IMAGE [IMAGE ...] --json [--workers N] [--view VIEW]``
    One JSON object per image per line, in input order (``PhotoMeasurement.to_json_dict()``: path, ok,
    error, face_found, yaw_deg, pitch_deg, roll_deg, ipd_px, exposure_l, light_side, sharpness, ...).
    Exit code 0 even when some images fail; a failure is ``"ok": false`` with an ``error`` message.
``compare BASELINE FOLLOWUP [FOLLOWUP ...] --json [--workers N] [--view VIEW]``
    One JSON object per follow-up per line, in order: ``Comparison.to_json_dict()`` plus ``path``
    (verdict, summary, checks). The baseline is measured once; when it cannot be measured every line
    has verdict ``"fail"`` and says why.

Without ``--json`` both print a short table. ``--workers N`` measures in N processes (each builds its
own FaceMesh); output order is the input order regardless.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from analysis.photos.types import ALL_VIEWS

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def register(subparsers: Any) -> None:
    """Add the ``measure`` and ``compare`` sub-commands to ``python -m analysis``."""
    measure = subparsers.add_parser(
        "measure",
        help="measure pose, distance, lighting and sharpness of photos",
        description="Measure photos; one line per image, in input order.",
    )
    measure.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, HEIC)")
    _common_options(measure)
    measure.set_defaults(func=run_measure, exit_at_once=True)

    compare = subparsers.add_parser(
        "compare",
        help="check follow-up photos against a baseline photo",
        description="Compare each follow-up photo with the baseline; one line per follow-up.",
    )
    compare.add_argument("baseline", metavar="BASELINE", help="the series' baseline photo")
    compare.add_argument("followups", nargs="+", metavar="FOLLOWUP", help="follow-up photos")
    _common_options(compare)
    compare.set_defaults(func=run_compare, exit_at_once=True)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="measure in N processes (default 1)",
    )
    parser.add_argument(
        "--view",
        choices=ALL_VIEWS,
        default=None,
        help="photo view; scalp views skip the face (pose not assessed)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _measure_one(job: tuple[str, str | None]) -> Any:
    from analysis.photos.measure import measure_path

    path, view = job
    return measure_path(path, view=view)


def _failed(path: str, view: str | None, message: str) -> Any:
    from analysis.photos.types import PhotoMeasurement

    return PhotoMeasurement(path=path, view=view, ok=False, error=message)


def measure_many(
    paths: Sequence[str], *, view: str | None = None, workers: int = 1
) -> Iterator[Any]:
    """Yield a ``PhotoMeasurement`` per path, in order, measuring in ``workers`` processes (one:
    in this process, each next file read while the current one is measured).

    A crashed worker process turns the photos it had not finished into ``ok=False`` results.
    """
    jobs = [(str(p), view) for p in paths]
    if workers <= 1 or len(jobs) <= 1:
        from analysis.photos.measure import measure_paths

        yield from measure_paths([path for path, _ in jobs], view=view)  # next file read ahead
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from analysis.processes import main_module_hidden

    context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        with main_module_hidden():  # children start during submit; see analysis.processes
            futures = [pool.submit(_measure_one, job) for job in jobs]
        for job, future in zip(jobs, futures, strict=True):
            try:
                yield future.result()
            except BrokenProcessPool:
                yield _failed(job[0], view, "the analysis process crashed on this or another photo")
            except Exception as exc:
                yield _failed(job[0], view, f"the photo could not be measured: {exc}")


def run_measure(args: argparse.Namespace) -> int:
    """``measure`` command: print one result per image; always exit 0."""
    if not args.json:
        print(f"{'photo':40} {'ok':3} {'yaw':>6} {'pitch':>6} {'roll':>6} {'ipd_px':>8}  note")
    for result in measure_many(args.images, view=args.view, workers=args.workers):
        if args.json:
            print(json.dumps(result.to_json_dict(), ensure_ascii=False), flush=True)
        else:
            print(_measure_row(result), flush=True)
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _measure_row(m: Any) -> str:
    name = str(m.path)[-40:]
    note = m.error or ""
    return (
        f"{name:40} {'yes' if m.ok else 'no':3} {_fmt(m.yaw_deg, '6.1f'):>6} "
        f"{_fmt(m.pitch_deg, '6.1f'):>6} {_fmt(m.roll_deg, '6.1f'):>6} {_fmt(m.ipd_px, '8.1f'):>8}  {note}"
    )


def _compare(baseline: Any, followup: Any) -> Any:
    from analysis.photos.types import Check, Comparison

    try:
        from analysis.photos.compare import compare

        return compare(baseline, followup)
    except Exception as exc:
        check = Check("measurement", "fail", None, "", None, None, f"comparison failed: {exc}")
        return Comparison(verdict="fail", checks=[check], summary=check.message)


def run_compare(args: argparse.Namespace) -> int:
    """``compare`` command: one line per follow-up; always exit 0."""
    baseline = next(measure_many([args.baseline], view=args.view))
    if not args.json:
        status = "measured" if baseline.ok else f"NOT measured: {baseline.error}"
        print(f"baseline {args.baseline}: {status}")
        print(f"{'follow-up':40} {'verdict':7}  reasons")
    for followup in measure_many(args.followups, view=args.view, workers=args.workers):
        comparison = _compare(baseline, followup)
        if args.json:
            line = {
                "path": followup.path,
                "baseline": str(args.baseline),
                **comparison.to_json_dict(),
            }
            print(json.dumps(line, ensure_ascii=False), flush=True)
        else:
            reasons = "; ".join(comparison.reasons) or comparison.summary
            print(f"{str(followup.path)[-40:]:40} {comparison.verdict:7}  {reasons}", flush=True)
    return 0
