"""A batch's scenes as a CSV table: a header row naming the columns, then one row per scene.

Column names are matched without regard to case, and ``-`` and ``_`` are
the same (``TILE_SIZE``, ``tile-size``). Comma, semicolon and tab
separators are recognised (spreadsheets in many locales write semicolons),
as is the byte-order mark Excel puts before UTF-8. Blank rows and rows whose
first cell starts with ``#`` are skipped. Relative paths in a row are taken
relative to the CSV file's folder, so a table travels with its data.
"""

import csv
import os
from dataclasses import dataclass, field
from typing import Collection, Dict, List, Optional

from .gdal_io import is_virtual
from .progress import CoreError

#: Columns every table has (a cell of S1 may be empty, for a model without radar).
REQUIRED_COLUMNS = ("S2", "S1", "OUTPUT")
SEPARATORS = ",;\t"


@dataclass(frozen=True)
class Row:
    """One scene's row: ``number`` as a spreadsheet counts (the header is row 1) and its non-empty cells."""

    number: int
    cells: Dict[str, str] = field(default_factory=dict)  # column key -> cell text, stripped
    problem: Optional[str] = None  # why the row cannot run, found while reading it


def column_key(name: str) -> str:
    """The form column names are compared in: ``tile-size`` -> ``TILE_SIZE``."""
    return name.strip().upper().replace("-", "_")


def resolve_path(text: str, table_path: str) -> str:
    """``text`` as a path: absolute, a GDAL virtual name, or relative to the table's folder."""
    expanded = os.path.expanduser(text)
    if os.path.isabs(expanded) or is_virtual(expanded):
        return expanded
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(table_path)), expanded))


def _dialect(sample: str) -> "type[csv.Dialect]":
    """The CSV dialect of a scene table, told from its first line."""
    try:
        return csv.Sniffer().sniff(sample.splitlines()[0] if sample else "", delimiters=SEPARATORS)
    except csv.Error:  # a single column, or nothing to tell by: plain commas
        return csv.excel


def read_rows(path: str, known_columns: Collection[str]) -> List[Row]:
    """The rows of the table at ``path``, whose columns must be among ``known_columns`` (keys).

    Raises :class:`CoreError` naming the problem when the file cannot be
    read, lacks a required column, names an unknown or repeated column, or
    holds no scene. A row with more cells than the header has a ``problem``.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise CoreError(f"Scene table not found: {path}; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CoreError(f"Cannot read the scene table {path} ({exc}); save it as UTF-8 CSV") from None
    lines = list(csv.reader(text.splitlines(), _dialect(text)))
    header = [column_key(name) for name in (lines[0] if lines else [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise CoreError(f"The scene table {path} has no {' or '.join(missing)} column; its first line must name "
                        f"the columns {', '.join(REQUIRED_COLUMNS[:-1])} and {REQUIRED_COLUMNS[-1]} (and any options)")
    for position, name in enumerate(header):
        if name not in known_columns:
            raise CoreError(f"The scene table {path} has a column '{lines[0][position].strip()}' that is no option; "
                            f"use {', '.join(sorted(known_columns))}")
        if header.index(name) != position:
            raise CoreError(f"The scene table {path} names the column {name} twice; keep one")
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells) or cells[0].strip().startswith("#"):
            continue
        problem = None
        if len(cells) > len(header):
            problem = f"it has {len(cells)} cells but the header names {len(header)} columns"
        rows.append(Row(number, {name: cell.strip() for name, cell in zip(header, cells) if cell.strip()}, problem))
    if not rows:
        raise CoreError(f"The scene table {path} lists no scene; add one row per scene below its header")
    return rows
