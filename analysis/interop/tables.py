"""Tidy tables for analysts: one row per endpoint value, per treatment, per reaction.

:func:`write_tables` writes ``endpoint_values.csv``, ``treatments.csv``, ``reactions.csv`` and
``data_dictionary.csv`` (every column of every table: type, unit, meaning) into a folder, and the
same three tables as Parquet (``*.parquet``, typed columns as the dictionary says).
Values are plain (ISO dates, ``true``/``false``, empty for missing), UTF-8, comma-separated,
with a header row; the tables join on ``patient_code`` + ``series_id`` + ``session_number``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from analysis.interop import snapshot as snap

#: verdicts from best to worst; a session's photo verdict is its worst photo's.
VERDICT_ORDER = ("baseline", "pass", "warn", "fail")

_KEYS = [
    ("patient_code", "text", "", "The clinic's pseudonymous patient code (no names are kept)."),
    ("series_id", "integer", "", "Candor's id of the treatment series."),
    ("protocol", "text", "", "The series' protocol name."),
    (
        "session_number",
        "integer",
        "",
        "Visit number in the series (1 = first treatment, baseline photos).",
    ),
    ("session_date", "date", "", "Date of the visit (clinic-local, ISO 8601)."),
    ("days_since_baseline", "integer", "d", "Days from the series' first visit to this visit."),
]
COLUMNS: dict[str, list[tuple[str, str, str, str]]] = {
    "endpoint_values": _KEYS
    + [
        ("endpoint", "text", "", "Endpoint code (the clinic's endpoint library)."),
        ("endpoint_name", "text", "", "Endpoint name as defined in the library."),
        ("kind", "text", "", "numeric, ordinal, count or text."),
        ("value", "number", "see unit", "The recorded value; empty for a text endpoint."),
        ("value_text", "text", "", "The note of a text endpoint."),
        ("unit", "text", "", "Unit of value as recorded (empty for scales without a unit)."),
        ("site", "text", "", "Where it was measured, when recorded."),
        ("rater", "text", "", "Who rated it: a staff display name, or 'patient'."),
        ("rated_by_patient", "boolean", "", "true for patient-reported values."),
        ("blinded", "boolean", "", "true when the rater did not know the session/treatment."),
        (
            "photo_verdict",
            "text",
            "",
            "Comparability of the session's photos with the baseline "
            "(worst photo: baseline, pass, warn, fail); empty when no photo is in the export.",
        ),
        ("photo_ids", "text", "", "Ids of the session's photos in the export, ';'-separated."),
    ],
    "treatments": _KEYS
    + [
        ("product", "text", "", "Product name."),
        ("lot_number", "text", "", "Lot number on the label."),
        ("expiry_on", "date", "", "Lot expiry date."),
        ("expired_at_use", "boolean", "", "true when the lot was past expiry on the visit date."),
        ("sites", "text", "", "Treated sites, ';'-separated."),
        ("volume_ml", "number", "mL", "Volume used."),
        ("units", "number", "U", "Units used (toxins)."),
        ("depth_intent", "text", "", "Intended depth/plane."),
        ("operator", "text", "", "Who performed it (staff display name)."),
    ],
    "reactions": _KEYS
    + [
        ("kind", "text", "", "expected (an expected reaction) or adverse (an adverse event)."),
        ("term", "text", "", "What it was (erythema, oedema, nodule...)."),
        ("onset_day", "integer", "d", "Days after the visit it began."),
        ("severity", "text", "", "mild, moderate or severe."),
        ("duration_days", "number", "d", "How long it lasted, when known."),
        ("resolved", "boolean", "", "true once resolved."),
        ("red_flag", "boolean", "", "true for a red-flag term (always an adverse event)."),
    ],
}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _keys(info: snap.SeriesInfo, v: snap.SessionInfo) -> list[Any]:
    return [
        info.patient.code,
        info.series_id,
        info.protocol_name,
        v.number,
        v.performed_on.isoformat(),
        (v.performed_on - info.baseline_on).days,
    ]


def session_verdict(v: snap.SessionInfo) -> str:
    if not v.photos:
        return ""
    return max((p.verdict for p in v.photos), key=VERDICT_ORDER.index)


def endpoint_rows(infos: Iterable[snap.SeriesInfo]) -> Iterator[list[Any]]:
    for info in infos:
        for v in info.sessions:
            verdict = session_verdict(v)
            photos = ";".join(str(p.photo_id) for p in v.photos)
            for m in v.measurements:
                yield _keys(info, v) + [
                    m.endpoint_code,
                    m.endpoint_name,
                    m.kind,
                    m.value_num,
                    m.value_text,
                    m.unit,
                    m.site,
                    m.rater,
                    m.rated_by_patient,
                    m.blinded,
                    verdict,
                    photos,
                ]


def treatment_rows(infos: Iterable[snap.SeriesInfo]) -> Iterator[list[Any]]:
    for info in infos:
        for v in info.sessions:
            for t in v.treatments:
                yield _keys(info, v) + [
                    t.product,
                    t.lot_number,
                    t.expiry_on.isoformat(),
                    t.expired_at_use,
                    ";".join(t.sites),
                    t.volume_ml,
                    t.units,
                    t.depth_intent,
                    t.operator,
                ]


def reaction_rows(infos: Iterable[snap.SeriesInfo]) -> Iterator[list[Any]]:
    for info in infos:
        for v in info.sessions:
            for r in v.reactions:
                yield _keys(info, v) + [
                    r.kind,
                    r.term,
                    r.onset_day,
                    r.severity,
                    r.duration_days,
                    r.resolved,
                    r.red_flag,
                ]


ROWS = {"endpoint_values": endpoint_rows, "treatments": treatment_rows, "reactions": reaction_rows}


def _parquet(
    table: str, columns: list[tuple[str, str, str, str]], rows: list[list[Any]], path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "text": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
    }
    fields = []
    for i, (_name, kind, _unit, _doc) in enumerate(columns):
        values = [r[i] for r in rows]
        if kind == "date":
            from datetime import date as _date

            values = [
                _date.fromisoformat(v) if isinstance(v, str) and v else v or None for v in values
            ]
        elif kind == "text":
            values = [None if v is None else str(v) for v in values]
        fields.append(pa.array(values, type=types[kind]))
    pq.write_table(pa.Table.from_arrays(fields, names=[c[0] for c in columns]), path)


def write_tables(infos: Iterable[snap.SeriesInfo], folder: Path) -> list[str]:
    """Write the three tables and the data dictionary; returns the file names written."""
    infos = list(infos)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for table, columns in COLUMNS.items():
        name = f"{table}.csv"
        with open(folder / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([c[0] for c in columns])
            for row in ROWS[table](infos):
                writer.writerow([_fmt(x) for x in row])
        names.append(name)
        _parquet(table, columns, list(ROWS[table](infos)), folder / f"{table}.parquet")
        names.append(f"{table}.parquet")
    with open(folder / "data_dictionary.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["table", "column", "type", "unit", "description"])
        for table, columns in COLUMNS.items():
            for column, kind, unit, description in columns:
                writer.writerow([table, column, kind, unit, description])
    names.append("data_dictionary.csv")
    return names
