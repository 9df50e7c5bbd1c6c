"""The pure computations a page runs over frames it loaded (:func:`analysis.services.frames.load_frames`).

None of these reads the database or checks a role: the load did both. They are re-exported here
from :mod:`analysis.outcomes` and :mod:`analysis.reports` so a page has one floor to call.
"""

from __future__ import annotations

from analysis.outcomes import cohorts
from analysis.outcomes.adjusted import adjusted_protocol_effect
from analysis.outcomes.agreement import Estimate
from analysis.outcomes.filters import series_with_ages
from analysis.outcomes.frames import (
    OPTIONAL_TABLES,
    ClinicFrames,
    combine_frames,
    to_csv_bytes,
    with_tables,
)
from analysis.outcomes.pairs import RepresentativePair
from analysis.outcomes.timelines import ConsultTimeline, consult_timeline, plain_language_summary
from analysis.reports.handout import consult_handout_pdf, timeline_chart_png
from analysis.reports.series_report import build_series_report, report_photos

__all__ = [
    "OPTIONAL_TABLES",
    "ClinicFrames",
    "ConsultTimeline",
    "Estimate",
    "RepresentativePair",
    "adjusted_protocol_effect",
    "build_series_report",
    "cohorts",
    "combine_frames",
    "consult_timeline",
    "consult_handout_pdf",
    "plain_language_summary",
    "report_photos",
    "series_with_ages",
    "timeline_chart_png",
    "to_csv_bytes",
    "with_tables",
]
