"""Export panel shared by Series review and Patient record: DICOM, FHIR or CSV as one zip.

The page only renders; :func:`analysis.interop.service.export_zip` checks the role and each
photo's consent, and audits the export before any byte is handed over.
"""

from __future__ import annotations

import streamlit as st

from analysis.interop import service
from analysis.store.access import PermissionDenied
from analysis.store.records import FieldError
from ui import frame

FORMAT_LABELS = {
    "dicom": "DICOM photos (for a PACS)",
    "fhir": "FHIR R4 bundle (for an EHR)",
    "csv": "CSV tables with data dictionary (for analysts)",
}


def export_panel(*, key: str, series_id: int | None = None,
                 patient_code: str | None = None) -> None:
    """Choose a format, prepare the zip (audited), then download it."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    fmt = c1.selectbox("Export format", list(FORMAT_LABELS), format_func=FORMAT_LABELS.get,
                       key=f"{key}_format")
    state = f"{key}_zip"
    if c2.button("Prepare export", icon=":material/ios_share:", key=f"{key}_prepare"):
        try:
            data = frame.call(service.export_zip, fmt=fmt, series_id=series_id,
                              patient_code=patient_code)
        except (PermissionDenied, FieldError) as exc:
            st.error(f"Nothing was exported: {exc}")
            return
        except (OSError, ValueError) as exc:
            st.error(f"The export failed and nothing was written: {exc}")
            return
        st.session_state[state] = (fmt, data)
    prepared = st.session_state.get(state)
    if prepared is not None and prepared[0] == fmt:
        name = f"candor-{'series-' + str(series_id) if series_id else patient_code}-{fmt}.zip"
        st.download_button("Download export (zip)", prepared[1], file_name=name,
                           mime="application/zip", type="primary", icon=":material/download:",
                           key=f"{key}_download")
        st.caption("Photos the patient's consent does not cover are left out; manifest.json in "
                   "the zip lists them.")
