"""The log setup a page-side module may call (the UI imports analysis.services only); see
:mod:`analysis.logs`."""

from __future__ import annotations

from analysis.logs import configure_logging, log_format

__all__ = ["configure_logging", "log_format"]
