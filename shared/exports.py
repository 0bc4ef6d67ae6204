"""Tables as downloads: CSV that Excel opens with Chinese intact, and Excel workbooks.

Shared by the review service's statistics and queue exports and the certificate service's collection
lists. A table is its columns, each ``(key, English,
Chinese)``, and its rows, each a mapping from column key to value (a missing key is an empty cell).

- The header row names every column in both languages: ``中文 / English``.
- **CSV** is UTF-8 with a byte-order mark (without it Excel reads UTF-8 as the local code page and the
  Chinese comes out garbled), comma-separated, CRLF line ends (RFC 4180).
- **Excel** (.xlsx, written by openpyxl in streaming mode): the header row bold and frozen, numbers
  as numbers, dates and times as Excel dates, text always as text.
- **Formula injection.** Text comes from buyers (a unit's name, a reason): a cell beginning with
  ``=``, ``+``, ``-`` or ``@`` would be run by a spreadsheet as a formula. In Excel workbooks text
  cells are typed as text, so nothing is run and nothing is changed. In CSV, which has no types, such
  text is prefixed with an apostrophe (OWASP's advice); a plain signed number such as an E.164 mobile
  (``+8613900000000``) is left as it is.
- Values: ``None`` is an empty cell; enums are written as their value; in CSV, dates and times are
  ISO 8601 (an aware time keeps its offset). Excel has no time zones: an aware time is converted to
  ``tz`` (UTC unless given) and written without it, so name the zone in the column's heading.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any

from fastapi import Response
from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped, unused-ignore]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped, unused-ignore]
from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped, unused-ignore]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped, unused-ignore]
from openpyxl.worksheet._write_only import WriteOnlyWorksheet  # type: ignore[import-untyped, unused-ignore]

Column = tuple[str, str, str]  # key, English, Chinese

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_SIGNED_NUMBER = re.compile(r"[+-]\d+(\.\d+)?")
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\\/*?:\[\]]")
_MAX_WIDTH = 60


def heading(column: Column) -> str:
    """A column's name in the header row: Chinese, then English."""
    _, english, chinese = column
    return f"{chinese} / {english}"


def to_csv(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The table as CSV: UTF-8 with a byte-order mark, a bilingual header row, one line per row."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([heading(column) for column in columns])
    for row in rows:
        writer.writerow([_csv_value(row.get(key)) for key, _, _ in columns])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    sheet_title: str = "Export",
    tz: tzinfo | None = None,
) -> bytes:
    """The table as an Excel workbook of one sheet: a frozen bilingual header row, typed cells."""
    workbook = Workbook(write_only=True)
    sheet: WriteOnlyWorksheet = workbook.create_sheet(_sheet_title(sheet_title))
    sheet.freeze_panes = "A2"
    widths = [_display_width(heading(column)) + 2 for column in columns]
    body: list[list[WriteOnlyCell]] = []
    for row in rows:
        cells = []
        for index, (key, _, _) in enumerate(columns):
            cell = _xlsx_cell(sheet, row.get(key), tz or UTC)
            widths[index] = max(widths[index], min(_MAX_WIDTH, _display_width(cell.value) + 2))
            cells.append(cell)
        body.append(cells)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, heading(column))
        cell.font = Font(bold=True)
        cell.alignment = Alignment(vertical="center")
        header.append(cell)
    sheet.append(header)
    for cells in body:
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_START) and not _SIGNED_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Any, tz: tzinfo) -> WriteOnlyCell:
    if isinstance(value, Enum):
        value = value.value
    if value is None or isinstance(value, bool | int | float | Decimal):
        return WriteOnlyCell(sheet, value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz).replace(tzinfo=None)
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", str(value)))
    cell.data_type = "s"  # text, even if it begins with "=": never a formula
    return cell


def _display_width(value: Any) -> int:
    """Roughly how many character widths a value takes: Chinese characters take two."""
    text = "" if value is None else str(value)
    return sum(2 if ord(char) >= 0x2E80 else 1 for char in text)


def _sheet_title(title: str) -> str:
    """Excel's rules: at most 31 characters, none of \\ / * ? : [ ]."""
    return _SHEET_TITLE_FORBIDDEN.sub(" ", title).strip()[:31] or "Sheet"


def download(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    name: str,
    excel: bool,
    sheet_title: str = "Export",
    tz: tzinfo | None = None,
) -> Response:
    """The rows as a file to save: Excel, or CSV (UTF-8 with BOM), named ``name``; ``tz`` as in
    ``to_xlsx``."""
    if excel:
        body = to_xlsx(columns, rows, sheet_title=sheet_title, tz=tz)
        media_type, suffix = XLSX_MEDIA_TYPE, "xlsx"
    else:
        body, media_type, suffix = to_csv(columns, rows), CSV_MEDIA_TYPE, "csv"
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'},
    )
