"""Candor's command line: ``python -m analysis COMMAND ...``.

Each command lives with the code it drives; a module in ``COMMAND_MODULES`` exposes
``register(subparsers)``, which adds its sub-parser(s) and sets ``func`` (``args -> exit code``).
Registering must stay cheap: heavy imports happen inside the command functions.
"""

from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
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
