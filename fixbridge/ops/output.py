"""Rendering operator results as a table, JSON or CSV, exactly.

Values keep their exact form in every format: a Decimal is written in plain positional notation
(``0.000000000000000001``, never ``1E-18`` and never through a float), integers of any size as
digits, timestamps as ISO 8601 in UTC (``2026-01-15T10:00:00.123456+00:00``).
In JSON, decimals are strings (JSON numbers are read as floats by most tools); integers stay numbers.
"""
from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

FORMATS = ("table", "json", "csv")


def text(value: Any) -> str:
    """One value as exact text ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return text(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        s = format(value, "f")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return "0" if s in ("-0", "") else s
    if isinstance(value, float):  # never expected: refuse to print money through a float
        raise TypeError(f"refusing to render float {value!r}")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` for json.dumps without losing anything: Decimal -> exact string, datetime -> ISO."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, (Decimal, datetime, date, float)):
        return text(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def to_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2) + "\n"


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """RFC 4180 CSV with a header row; every value as exact text (see ``text``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([text(row.get(c)) for c in columns])
    return buf.getvalue()


def to_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str | None = None,
             headers: Mapping[str, str] | None = None):
    """A rich Table (print it with a rich Console)."""
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column((headers or {}).get(c, c), overflow="fold")
    for row in rows:
        t.add_row(*[_cell(row.get(c)) for c in columns])
    return t


def _cell(value: Any) -> str:
    """Table cells: timestamps shortened to milliseconds (UTC) to save width; the rest exact."""
    if isinstance(value, datetime) and value.tzinfo:
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return text(value)
