"""CSV files the merchant opens in a spreadsheet: cells made harmless, bytes in the chosen encoding.

Formula injection (CWE-1236): a spreadsheet runs a cell beginning with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return as a formula, and product names and codes come from Smaregi and
the channels, where anyone who can edit a product can put one. Such a cell gets a leading
``'``, which the spreadsheet shows as text (OWASP's recommendation). Numbers the grid writes
itself (a negative stock) are passed as ``int`` and left as they are.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ENCODINGS = {"utf-8": "utf-8-sig", "cp932": "cp932"}  # UTF-8 with a BOM: Excel reads it as UTF-8


def neutralise_cell(value: object) -> str:
    """The text of one cell: ``None`` is empty; an ``int`` as it is; text that a spreadsheet would
    run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_bytes(rows: Iterable[Iterable[object]], encoding: str) -> Iterable[bytes]:
    """Encode ``rows`` (the first one the header) as CSV lines, every cell neutralised, one chunk
    per row. ``encoding`` is ``utf-8`` (written with a BOM) or ``cp932``; a character CP932 has no
    code for (an emoji, ``①`` is fine) becomes ``?`` instead of failing the whole file.

    :raise ValueError: another encoding.
    """
    try:
        codec = ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unsupported CSV encoding {encoding!r}") from None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    first = True
    for row in rows:
        writer.writerow([neutralise_cell(cell) for cell in row])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if first and codec == "utf-8-sig":
            yield text.encode("utf-8-sig", errors="replace")
        else:
            yield text.encode("utf-8" if codec == "utf-8-sig" else codec, errors="replace")
        first = False
