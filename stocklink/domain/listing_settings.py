"""Checking what the merchant types into the grid's cells (seed 004 最小・最大, SPEC §11.7).

Pure functions over strings and integers: a value is either accepted (normalised) or refused
with a :class:`Refusal` whose ``code`` the web layer turns into a sentence. A refused value
changes nothing.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

STOCK_LIMIT = 999_999_999  # Smaregi's stock range (SPEC §3); also within an INTEGER column
_WHOLE = re.compile(r"[0-9]{1,10}")
LISTING_FIELDS = ("sync", "min_stock", "max_stock", "reserve", "ratio_percent")


@dataclass(frozen=True)
class Refusal(Exception):
    """``code``: ``not_whole`` | ``min_above_max`` | ``max_below_min`` | ``ratio_range``;
    ``params`` fill the sentence."""

    code: str
    params: dict = field(default_factory=dict)


def whole_number(raw: str | None, *, limit: int = STOCK_LIMIT) -> int | None:
    """A whole number from 0 to ``limit`` typed in a cell (full-width digits and thousands commas
    accepted, as an IME types them); ``None`` when blank.

    :raise Refusal: ``not_whole`` for anything else (a sign, a decimal point, letters, too large).
    """
    text = unicodedata.normalize("NFKC", raw or "").strip().replace(",", "")
    if not text:
        return None
    if not _WHOLE.fullmatch(text) or int(text) > limit:
        raise Refusal("not_whole", {"limit": limit})
    return int(text)


def check_listing_setting(name: str, raw: str | None, *, min_stock: int | None, max_stock: int | None):
    """The new value of one listing setting, given the listing's current minimum and maximum.

    - ``sync``: ``"on"`` → True, anything else False (an unticked box posts nothing);
    - ``min_stock`` / ``max_stock``: blank clears it (no guard, no cap); the minimum may not be
      above the maximum (:class:`~stocklink.domain.stock.QuantityPolicy` refuses that too);
    - ``reserve``: blank is 0;
    - ``ratio_percent``: 0…100, blank is 100.

    :raise Refusal: the value cannot be used.
    :raise KeyError: ``name`` is not a listing setting.
    """
    if name not in LISTING_FIELDS:
        raise KeyError(name)
    if name == "sync":
        return (raw or "").strip() == "on"
    if name == "ratio_percent":
        value = whole_number(raw, limit=STOCK_LIMIT)
        if value is not None and value > 100:
            raise Refusal("ratio_range")
        return 100 if value is None else value
    value = whole_number(raw)
    if name == "reserve":
        return value or 0
    if name == "min_stock" and value is not None and max_stock is not None and value > max_stock:
        raise Refusal("min_above_max", {"max": max_stock})
    if name == "max_stock" and value is not None and min_stock is not None and value < min_stock:
        raise Refusal("max_below_min", {"min": min_stock})
    return value
