"""Ids, page numbers and return paths read from URLs and forms, checked before they are used.

Every primary key is an ``INTEGER`` (PostgreSQL: at most 2**31 - 1); SQLite cannot even bind
a Python int above 2**63 - 1 (``OverflowError``, a 500). Here an id is ASCII digits within
1..:data:`MAX_ID`: in a URL anything else is no such page (404), in a form it is no such row
(skipped, as a deleted row is), and a page number outside 1..:data:`MAX_ID` is a bad request
(400, with the reason).

:class:`IdConverter` replaces Flask's ``int`` converter for the whole app
(:func:`install`), so a new ``<int:…>`` route is bounded without anyone remembering to.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import abort, request, url_for
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")  # MAX_ID has 10 digits; int() refuses 4,300+


class IdConverter(IntegerConverter):
    """``<int:…>`` as a database id: ASCII digits only (``\\d`` would take ``١٢٣``), 1..MAX_ID."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits: int = 0, min: int | None = 1, max: int | None = MAX_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=False)


def install(app) -> None:
    """Before any route is added: rules bind their converter when they are registered."""
    app.url_map.converters["int"] = IdConverter


def parse_id(value: str) -> int | None:
    """A database id, or None when ``value`` cannot be one."""
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def form_ids(name: str = "ids") -> list[int]:
    """The ids ticked in a form; values that cannot be an id match no row, so they are dropped."""
    return [number for number in map(parse_id, request.form.getlist(name)) if number is not None]


def page_arg(name: str = "page") -> int:
    """``?page=``: absent or blank is page 1.

    :raise 400: not a whole number from 1 to MAX_ID.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return 1
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        abort(400, description=_("The page number must be a whole number from 1 to %(max)d.", max=MAX_ID))
    return int(raw)


def safe_next(target: str | None) -> str:
    """Where to go after a form that names its return page (``next``): only a same-site path
    (``/…``, not ``//host``, no scheme or host), so a link cannot send the operator to another
    site; anything else goes to the dashboard."""
    if not target or urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target
