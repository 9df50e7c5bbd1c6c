"""``python -m analysis ...``: Candor's command line (see analysis/cli.py)."""

from analysis.cli import main

raise SystemExit(main(exit_process=True))
