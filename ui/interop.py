"""Export panel shared by Series review and Patient record: DICOM, FHIR or CSV as one zip.

The page only renders; :func:`analysis.services.interop.export_zip` checks the role and each
photo's consent, and audits the export before any byte is handed over.
"""

from __future__ import annotations

import streamlit as st

from analysis.services import interop as service
from analysis.services.common import FieldError, PermissionDenied
from ui import frame, widgets

FORMAT_LABELS = {
    "dicom": "DICOM photos (for a PACS)",
    "fhir": "FHIR R4 bundle (for an EHR)",
    "csv": "CSV tables with data dictionary (for analysts)",
}


def export_panel(
    *, key: str, series_id: int | None = None, patient_code: str | None = None
) -> None:
    """Choose a format, prepare the zip (audited), then download it."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    fmt = c1.selectbox(
        "Export format",
        list(FORMAT_LABELS),
        format_func=widgets.labeller(FORMAT_LABELS),
        key=f"{key}_format",
    )
    state = f"{key}_zip"
    if c2.button("Prepare export", icon=":material/ios_share:", key=f"{key}_prepare"):
        try:
            data = frame.call(
                service.export_zip, fmt=fmt, series_id=series_id, patient_code=patient_code
            )
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
        st.download_button(
            "Download export (zip)",
            prepared[1],
            file_name=name,
            mime="application/zip",
            type="primary",
            icon=":material/download:",
            key=f"{key}_download",
        )
        st.caption(
            "Photos the patient's consent does not cover are left out; manifest.json in "
            "the zip lists them."
        )


IMPORT_LABELS = {
    "hair_density": "Trichoscope hair counts (hair density CSV)",
    "prom": "PROM answers (questionnaire or tablet CSV)",
}


def import_panel() -> None:
    """Upload a device or PROM CSV, see what it would write (dry run), then import all of it."""
    import pandas as pd

    if message := st.session_state.pop("import_flash", None):
        st.success(message, icon=":material/check_circle:")
    kind = st.radio(
        "File type",
        list(IMPORT_LABELS),
        format_func=widgets.labeller(IMPORT_LABELS),
        key="import_kind",
    )
    run = service.import_prom if kind == "prom" else service.import_hair_density
    resets = st.session_state.setdefault("import_resets", 0)
    upload = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key=f"import_file_{resets}")
    st.caption(
        "The accepted columns are listed in docs/interop.md. The file is checked first; "
        "nothing is written until you import it, and then all of it or none."
    )
    if upload is None:
        return
    data = upload.getvalue()
    try:
        report = frame.call(run, data=data, commit=False, filename=upload.name)
    except service.ImportRefused as exc:
        st.error(
            f"Nothing can be imported from {upload.name}: {len(exc.problems)} problem(s). "
            "Correct the file and upload it again."
        )
        st.dataframe(
            pd.DataFrame(
                [{"line": p.line, "column": p.column, "problem": p.reason} for p in exc.problems]
            ),
            hide_index=True,
        )
        return
    except PermissionDenied as exc:
        st.error(f"Not allowed: {exc}")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "line": v.line,
                    "patient": v.patient_code,
                    "session": v.session_number,
                    "endpoint": v.endpoint_code,
                    "value": v.value,
                    "area": v.site,
                }
                for v in report.values
            ]
        ),
        hide_index=True,
    )
    if st.button(
        f"Import these {len(report.values)} values",
        type="primary",
        icon=":material/upload:",
        key="import_commit",
    ):
        try:
            done = frame.call(run, data=data, commit=True, filename=upload.name)
        except service.ImportRefused as exc:  # the record changed since the check
            st.error(str(exc))
            return
        st.session_state["import_resets"] = resets + 1
        st.session_state["import_flash"] = (
            f"Imported {len(done.values)} values from {done.rows} rows of {upload.name}."
        )
        st.rerun()
