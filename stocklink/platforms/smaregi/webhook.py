"""Parsing Smaregi's stock notifications, both generations (platform-apis-smaregi.md Part A).

Pure functions over the request's headers and body: no Flask, no database. A notification
is only a trigger (SPEC §3): stocklink re-reads the stock before trusting any number, but
keeps each movement's own fields for the NextEngine delta rules.

Everything in a body is checked before it is trusted, so bad input is a
:class:`MalformedNotification` (HTTP 400 with its reason), never an exception of another
kind: nesting depth is measured on the raw text before ``json.loads`` (whose recursion a
deeply nested body would exhaust), ids must be ASCII digits within Smaregi's documented
lengths (``str.isdigit`` and ``int`` also take "²", "١٢٣" and "１２３"), and every field has the
type Smaregi sends.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate


class MalformedNotification(ValueError):
    """The body is not a Smaregi notification stocklink understands; the message says why."""


# The deepest documented body is a legacy send, {"data":[{"rows":[{…}]}]}: five levels. Other
# Platform events nest an object or two more (pos:adjustments' cashAdjustment); 16 leaves room.
MAX_DEPTH = 16
# Smaregi's documented lengths (doc §3.9): storeId ≤ 9 digits, productId ≤ 15 digits. The
# 在庫変動履歴ID's length is not documented; ids are "format: int" strings (doc §3.4), so at
# most the 19 digits of a 64-bit integer.
PRODUCT_ID = re.compile(r"[0-9]{1,15}")
STORE_ID = re.compile(r"[0-9]{1,9}")
HISTORY_ID = re.compile(r"[0-9]{1,19}")
DIVISION = re.compile(r"[0-9]{1,2}")
INTEGER = re.compile(r"-?[0-9]{1,10}")
# Stock is within ±999 999 999 and a relative change within ±1 999 999 998 (doc §3.9).
STOCK_BOUND, AMOUNT_BOUND = 999_999_999, 1_999_999_998
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")  # deleted by bytes.translate
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


@dataclass(frozen=True)
class StockMovement:
    product_id: str
    store_id: str | None
    amount: int | None = None        # signed change (legacy rows carry it)
    stock_after: int | None = None   # stock after the change (legacy ``stockAmount``)
    division: str | None = None      # 在庫区分 ``stockDivision``
    history_id: str | None = None    # 在庫変動履歴ID (Platform ``ids[].id``)
    at: str | None = None


@dataclass(frozen=True)
class Notification:
    generation: str                  # legacy | platform
    event: str                       # "stock" for legacy 在庫情報送信, Smaregi-Event for Platform
    dedupe_key: str
    movements: tuple[StockMovement, ...] = ()
    payload: dict = field(default_factory=dict)

    @property
    def product_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.movements:
            seen.setdefault(m.product_id, None)
        return list(seen)


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``limit`` — without recursion, and before ``json.loads``.

    Strings are removed first (a bracket inside one does not count), then the running depth
    of the brackets left is summed. Text that is not JSON may be measured wrongly; ``json.loads``
    then refuses it anyway.
    """
    if text.count("[") + text.count("{") <= limit:
        return
    # Loops in C, a block at a time so a deep body stops at its first block: UTF-8 never has a
    # bracket byte inside a multi-byte character, so deleting every other byte keeps the brackets.
    brackets = _STRING.sub("", text).encode("utf-8", "replace").translate(None, _NOT_BRACKET)
    depth = 0
    for start in range(0, len(brackets), 4096):
        running = list(accumulate(map(_STEP.__getitem__, brackets[start:start + 4096]), initial=depth))
        if max(running) > limit:
            raise MalformedNotification(f"JSON is nested deeper than {limit} levels")
        depth = running[-1]


def _loads(text: str | bytes, what: str):
    """``json.loads`` that fails only with :class:`MalformedNotification`."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        check_depth(text)
        return json.loads(text)
    except MalformedNotification:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MalformedNotification(f"{what} is not JSON") from None


def _scalar(value, name: str) -> str | None:
    """A value Smaregi sends as a string (a JSON number is taken too); None for null or ""."""
    kind = type(value)
    if kind is str:
        return value.strip() or None
    if kind is int:  # bool is not
        return str(value)
    if value is None:
        return None
    raise MalformedNotification(f"{name} must be a string")


def _id(value, name: str, pattern: re.Pattern, *, required: bool = False) -> str | None:
    text = _scalar(value, name)
    if text is None:
        if required:
            raise MalformedNotification(f"{name} is missing")
        return None
    if not pattern.fullmatch(text):
        digits = pattern.pattern.rsplit(",", 1)[-1].rstrip("}")
        raise MalformedNotification(f"{name} must be 1-{digits} ASCII digits: {text[:20]!r}")
    return text


def _int(value, name: str, bound: int) -> int | None:
    text = _scalar(value, name)
    if text is None:
        return None
    if not INTEGER.fullmatch(text) or abs(int(text)) > bound:
        raise MalformedNotification(f"{name} is not an integer within ±{bound}: {text[:20]!r}")
    return int(text)


def _text(value, name: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise MalformedNotification(f"{name} must be a string of at most {limit} characters")
    return value


def parse_legacy(form: Mapping[str, str]) -> Notification:
    """A legacy API送信 form body: ``params`` = JSON ``{"data":[{"table_name","rows":[…]}]}``.

    Rows with a ``productId`` are stock movements (在庫情報送信); a send of other tables
    (取引情報送信 …) parses to a notification without movements. The dedupe key is a hash
    of the params, so a resend from API送信履歴 is recognised (SPEC §11.1).
    """
    raw = form.get("params")
    if raw is None or not str(raw).strip():
        raise MalformedNotification("params is missing")
    proc_name = _text(form.get("proc_name"), "proc_name", 64)
    params = _loads(str(raw), "params")
    data = params.get("data") if isinstance(params, dict) else None
    if not isinstance(data, list):
        raise MalformedNotification("params.data is not a list")
    movements = []
    for table in data:
        if not isinstance(table, dict) or not isinstance(table.get("rows", []), list):
            raise MalformedNotification("params.data[] must be objects with rows")
        for row in table.get("rows", []):
            if not isinstance(row, dict):
                raise MalformedNotification("a row is not an object")
            if "productId" not in row:
                continue
            division = _id(row.get("stockDivision"), "stockDivision", DIVISION)
            movements.append(StockMovement(
                product_id=_id(row["productId"], "productId", PRODUCT_ID, required=True),
                store_id=_id(row.get("storeId"), "storeId", STORE_ID),
                amount=_int(row.get("amount"), "amount", AMOUNT_BOUND),
                stock_after=_int(row.get("stockAmount"), "stockAmount", STOCK_BOUND),
                division=division.zfill(2) if division else None,
                at=_text(row.get("updDateTime"), "updDateTime", 32)))
    canonical = json.dumps(params, sort_keys=True, ensure_ascii=False)
    key = "legacy:" + hashlib.sha256(canonical.encode()).hexdigest()
    event = "stock" if movements else "other"
    return Notification("legacy", event, key, tuple(movements), {"proc_name": proc_name, "params": params})


def parse_platform(headers: Mapping[str, str], body: bytes) -> Notification:
    """A Platform webhook: JSON body, ``Smaregi-Event`` and ``Smaregi-Event-Id`` headers.

    ``pos:stock`` carries ``ids: [{id, productId, storeId}]`` and no quantities; other events
    are stored but carry no movements. The dedupe key is contract + event id.
    """
    event = headers.get("Smaregi-Event", "").strip()
    event_id = headers.get("Smaregi-Event-Id", "").strip()
    if not event or len(event) > 60:  # the inbox column holds 60
        raise MalformedNotification("Smaregi-Event header is missing or too long")
    if not event_id or len(event_id) > 64:
        raise MalformedNotification("Smaregi-Event-Id header is missing or too long")
    payload = _loads(body, "body")
    if not isinstance(payload, dict) or not payload.get("contractId"):
        raise MalformedNotification("contractId is missing")
    if not isinstance(payload["contractId"], str) or len(payload["contractId"]) > 64:
        raise MalformedNotification("contractId must be a string of at most 64 characters")
    movements = []
    if event == "pos:stock":
        ids = payload.get("ids")
        if not isinstance(ids, list):
            raise MalformedNotification("ids is not a list")
        for item in ids:
            if not isinstance(item, dict):
                raise MalformedNotification("ids[] must be objects")
            movements.append(StockMovement(
                product_id=_id(item.get("productId"), "ids[].productId", PRODUCT_ID, required=True),
                store_id=_id(item.get("storeId"), "ids[].storeId", STORE_ID),
                history_id=_id(item.get("id"), "ids[].id", HISTORY_ID)))
    key = f"platform:{payload['contractId']}:{event_id}"
    return Notification("platform", event, key, tuple(movements), payload)
