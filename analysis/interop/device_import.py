"""Hair-density CSV files as trichoscopy devices write them, and PROM answers from questionnaire
or tablet exports (:func:`parse_prom`): parse and check, never half-import.

:func:`parse_hair_density` reads the file into :class:`HairRow` values or a list of
:class:`ImportProblem` (line number, column, reason); it never raises for bad content. The
database half (patients, sessions, endpoints, one transaction) is
:func:`analysis.services.interop.import_hair_density`.

Accepted columns (header row required; names are matched case-insensitively, spaces and
hyphens read as ``_``; the aliases are what device software commonly writes):

============================  =========  ==========================================================
column                        required   meaning
============================  =========  ==========================================================
``patient_code``              yes        the clinic's patient code (aliases ``patient``,
                                         ``patient_id``)
``date``                      yes        the visit date, ``YYYY-MM-DD`` (alias ``exam_date``)
``area``                      yes        where it was measured, e.g. ``vertex`` (aliases ``site``,
                                         ``region``)
``density_per_cm2``           yes        hairs per cm² (aliases ``density``, ``hairs_per_cm2``,
                                         ``hairs/cm2``, ``hairs/cm²``)
``terminal_pct``              no         terminal hairs, % of all (alias ``terminal``)
``vellus_pct``                no         vellus hairs, % of all (alias ``vellus``)
``mean_diameter_um``          no         mean shaft diameter in µm (aliases ``mean_diameter``,
                                         ``diameter_um``)
============================  =========  ==========================================================

Comma, semicolon or tab delimited (detected from the header); UTF-8 (a byte-order mark is
accepted). With ``;`` or tab delimiters a decimal comma is accepted. Unknown columns, blank
required values, values out of range, non-finite numbers, duplicate rows and files over
:data:`MAX_BYTES` / :data:`MAX_ROWS` are refused with the line number and the reason.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

MAX_BYTES = 5_000_000
MAX_ROWS = 20_000

#: canonical column -> accepted header spellings (after normalising).
ALIASES: dict[str, tuple[str, ...]] = {
    "patient_code": ("patient_code", "patient", "patient_id"),
    "date": ("date", "exam_date"),
    "area": ("area", "site", "region"),
    "density_per_cm2": ("density_per_cm2", "density", "hairs_per_cm2", "hairs/cm2", "hairs/cm²"),
    "terminal_pct": ("terminal_pct", "terminal", "terminal_%"),
    "vellus_pct": ("vellus_pct", "vellus", "vellus_%"),
    "mean_diameter_um": ("mean_diameter_um", "mean_diameter", "diameter_um"),
}
REQUIRED = ("patient_code", "date", "area", "density_per_cm2")
#: numeric column -> (endpoint code in the clinic's library, lowest, highest accepted).
NUMERIC: dict[str, tuple[str, float, float]] = {
    "density_per_cm2": ("hair_density", 0.0, 1000.0),
    "terminal_pct": ("hair_terminal_pct", 0.0, 100.0),
    "vellus_pct": ("hair_vellus_pct", 0.0, 100.0),
    "mean_diameter_um": ("hair_mean_diameter_um", 1.0, 500.0),
}
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
_AREA = re.compile(r"^[\w][\w \-/]{0,63}$")


@dataclass(frozen=True)
class ImportProblem:
    line: int  # 1 = the header
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class HairRow:
    line: int
    patient_code: str
    on: date
    area: str
    values: dict[str, float]  # endpoint code -> value


def _normalise(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _lookup() -> dict[str, str]:
    return {alias: canon for canon, names in ALIASES.items() for alias in names}


def _number(text: str, *, decimal_comma: bool) -> float | None:
    text = text.strip()
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _open_csv(data: bytes) -> tuple[Any, list[str], str] | ImportProblem:
    """``(reader, header, delimiter)`` of a CSV file, or the problem that stops reading it."""
    if len(data) > MAX_BYTES:
        return ImportProblem(0, "", f"the file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    if b"\x00" in data:
        return ImportProblem(0, "", "the file contains NUL bytes: not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return ImportProblem(line, "", "not UTF-8 text (export the file as UTF-8 CSV)")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return ImportProblem(1, "", "the file is empty or has no header row")
    delimiter = max((",", ";", "\t"), key=lines[0].count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        return ImportProblem(1, "", f"the header row is not valid CSV: {exc}")
    return reader, header, delimiter


def _visit_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _data_rows(
    reader: Any, columns: list[str], problems: list[ImportProblem], rows: list[Any]
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, cells)`` of each non-blank row with as many fields as the header; a row of the
    wrong width is a problem, and the walk stops (with a problem) once ``rows`` holds
    :data:`MAX_ROWS` (the caller appends to ``rows`` as it accepts them)."""
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_ROWS:
            problems.append(ImportProblem(line, "", f"more than {MAX_ROWS:,} rows"))
            return
        if len(record) != len(columns):
            problems.append(
                ImportProblem(line, "", f"{len(record)} fields, the header has {len(columns)}")
            )
            continue
        yield line, dict(zip(columns, (c.strip() for c in record), strict=True))


def _patient_and_date(
    line: int, cells: Mapping[str, str]
) -> tuple[str, date | None, list[ImportProblem]]:
    """The row's patient code and visit date, with a problem for each that does not read."""
    found: list[ImportProblem] = []
    code = cells["patient_code"]
    if not _CODE.match(code):
        found.append(
            ImportProblem(line, "patient_code", "not a patient code (letters, digits, . _ -)")
        )
    on = _visit_date(cells["date"])
    if on is None:
        found.append(
            ImportProblem(line, "date", f"{cells['date'][:20]!r} is not a date in YYYY-MM-DD form")
        )
    return code, on, found


def parse_hair_density(data: bytes) -> tuple[list[HairRow], list[ImportProblem]]:
    """The rows that read well, and every problem found. Import only when there is no problem;
    the rows are returned either way so that the caller can check them too and report all."""
    opened = _open_csv(data)
    if isinstance(opened, ImportProblem):
        return [], [opened]
    reader, header, delimiter = opened
    problems: list[ImportProblem] = []
    names = _lookup()
    columns: list[str] = []
    for raw in header:
        canon = names.get(_normalise(raw))
        if canon is None:
            problems.append(
                ImportProblem(1, raw[:40], "unknown column; accepted: " + ", ".join(ALIASES))
            )
        elif canon in columns:
            problems.append(ImportProblem(1, raw[:40], f"column {canon} appears twice"))
        columns.append(canon or "")
    for need in REQUIRED:
        if need not in columns:
            problems.append(ImportProblem(1, need, "required column is missing"))
    if problems:
        return [], problems

    rows: list[HairRow] = []
    seen: dict[tuple[str, date, str], int] = {}
    decimal_comma = delimiter != ","
    try:
        for line, cells in _data_rows(reader, columns, problems, rows):
            code, on, row_problems = _patient_and_date(line, cells)
            area = cells["area"]
            if not _AREA.match(area):
                row_problems.append(
                    ImportProblem(
                        line, "area", "enter the area (letters, digits, spaces, - /; at most 64)"
                    )
                )
            values: dict[str, float] = {}
            for column, (endpoint, low, high) in NUMERIC.items():
                raw = cells.get(column, "")
                if column not in cells or (raw == "" and column not in REQUIRED):
                    continue
                value = _number(raw, decimal_comma=decimal_comma)
                if value is None or not math.isfinite(value):
                    row_problems.append(
                        ImportProblem(line, column, f"{raw[:20]!r} is not a number")
                    )
                elif not low <= value <= high:
                    row_problems.append(
                        ImportProblem(line, column, f"{value:g} is outside {low:g}-{high:g}")
                    )
                else:
                    values[endpoint] = value
            pct = [values.get("hair_terminal_pct"), values.get("hair_vellus_pct")]
            if None not in pct and pct[0] + pct[1] > 100.5:  # type: ignore[operator]
                row_problems.append(
                    ImportProblem(line, "vellus_pct", "terminal and vellus add up to over 100 %")
                )
            if row_problems:
                problems.extend(row_problems)
                continue
            assert on is not None
            key = (code, on, area.lower())
            if key in seen:
                problems.append(
                    ImportProblem(line, "", f"same patient, date and area as line {seen[key]}")
                )
                continue
            seen[key] = line
            rows.append(HairRow(line, code, on, area, values))
    except csv.Error as exc:
        problems.append(ImportProblem(reader.line_num, "", f"not valid CSV: {exc}"))
    if not rows and not problems:
        problems.append(ImportProblem(2, "", "the file has a header but no rows"))
    return rows, problems


# --- PROM answers (tablet / questionnaire exports) ---------------------------------------------


@dataclass(frozen=True)
class PromEndpoint:
    """What the parser needs to know of a patient-reported endpoint of the clinic's library."""

    kind: str  # numeric | ordinal | count
    scale_min: float | None
    scale_max: float | None


@dataclass(frozen=True)
class PromRow:
    line: int
    patient_code: str
    on: date
    answers: dict[str, float]  # endpoint code -> value


PROM_KEYS: dict[str, tuple[str, ...]] = {
    "patient_code": ALIASES["patient_code"],
    "date": ("date", "visit_date", "answered_on"),
}


def parse_prom(
    data: bytes, endpoints: Mapping[str, PromEndpoint]
) -> tuple[list[PromRow], list[ImportProblem]]:
    """PROM answers in wide form: ``patient_code``, ``date`` and one column per patient-reported
    endpoint code of the clinic's library (``endpoints``); an empty cell is a question not
    answered. Any other column is refused (line 1). Values must be numbers within the endpoint's
    scale (whole numbers for ordinal and count scales)."""
    opened = _open_csv(data)
    if isinstance(opened, ImportProblem):
        return [], [opened]
    reader, header, delimiter = opened
    problems: list[ImportProblem] = []
    keys = {alias: canon for canon, names in PROM_KEYS.items() for alias in names}
    columns: list[str] = []
    for raw in header:
        norm = _normalise(raw)
        canon = keys.get(norm) or (norm if norm in endpoints else None)
        if canon is None:
            problems.append(
                ImportProblem(
                    1,
                    raw[:40],
                    "neither patient_code, date nor a "
                    "patient-reported endpoint of the clinic's library ("
                    + (", ".join(sorted(endpoints)) or "none defined")
                    + ")",
                )
            )
        elif canon in columns:
            problems.append(ImportProblem(1, raw[:40], f"column {canon} appears twice"))
        columns.append(canon or "")
    for need in PROM_KEYS:
        if need not in columns:
            problems.append(ImportProblem(1, need, "required column is missing"))
    if not any(c in endpoints for c in columns):
        problems.append(ImportProblem(1, "", "no endpoint column: nothing to import"))
    if problems:
        return [], problems
    rows: list[PromRow] = []
    seen: dict[tuple[str, date], int] = {}
    try:
        for line, cells in _data_rows(reader, columns, problems, rows):
            code, on, mine = _patient_and_date(line, cells)
            answers: dict[str, float] = {}
            for column, raw in cells.items():
                if column in PROM_KEYS or raw == "":
                    continue
                spec = endpoints[column]
                value = _number(raw, decimal_comma=delimiter != ",")
                if value is None or not math.isfinite(value):
                    mine.append(ImportProblem(line, column, f"{raw[:20]!r} is not a number"))
                elif spec.kind in ("ordinal", "count") and value != int(value):
                    mine.append(
                        ImportProblem(line, column, f"{value:g}: this scale takes whole numbers")
                    )
                elif (spec.scale_min is not None and value < spec.scale_min) or (
                    spec.scale_max is not None and value > spec.scale_max
                ):
                    mine.append(
                        ImportProblem(
                            line,
                            column,
                            f"{value:g} is outside {spec.scale_min:g}-{spec.scale_max:g}"
                            if spec.scale_min is not None and spec.scale_max is not None
                            else f"{value:g} is outside the endpoint's scale",
                        )
                    )
                else:
                    answers[column] = value
            if not mine and not answers:
                mine.append(ImportProblem(line, "", "no answer in this row"))
            if mine:
                problems.extend(mine)
                continue
            assert on is not None
            if (code, on) in seen:
                problems.append(
                    ImportProblem(line, "", f"same patient and date as line {seen[(code, on)]}")
                )
                continue
            seen[(code, on)] = line
            rows.append(PromRow(line, code, on, answers))
    except csv.Error as exc:
        problems.append(ImportProblem(reader.line_num, "", f"not valid CSV: {exc}"))
    if not rows and not problems:
        problems.append(ImportProblem(2, "", "the file has a header but no rows"))
    return rows, problems
