"""Candor's command line: ``python -m analysis COMMAND ...``.

Each command lives with the code it drives; a module in ``COMMAND_MODULES`` exposes
``register(subparsers)``, which adds its sub-parser(s) and sets ``func`` (``args -> exit code``).
Registering must stay cheap: heavy imports happen inside the command functions.

A command that writes nothing but its output and holds nothing to close (``exit_at_once=True`` in
its defaults: ``measure``, ``compare``) ends the process as soon as that output is flushed
(``os._exit``), skipping the interpreter's teardown: destroying the MediaPipe graphs and modules
took ~45 ms of each run, more than a further photo's measurement (``benchmarks/photo_speed.py``,
"the measure command").
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "analysis.store.cli",
    "analysis.auth.cli",
    "analysis.photos.cli",
    "analysis.demo.cli",
    "analysis.hair.cli",
    "analysis.interop.cli",
    "analysis.worker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None, *, exit_process: bool = False) -> int:
    """Run one command; its exit code. ``exit_process`` (``python -m analysis``): a command marked
    ``exit_at_once`` ends the process itself once its output is flushed (module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except Exception as exc:
        from analysis.store.at_rest import AtRestError

        if isinstance(exc, AtRestError):  # a missing/wrong CANDOR_DB_KEY: one sentence
            print(f"{args.command}: {exc}", file=sys.stderr)
            return 2
        raise
    if exit_process and getattr(args, "exit_at_once", False):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = 0
        os._exit(code)
    return code
