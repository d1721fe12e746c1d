"""Parsing Smaregi's stock notifications, both generations (platform-apis-smaregi.md Part A).

Pure functions over the request's headers and body: no Flask, no database. A notification
is only a trigger (SPEC §3): stocklink re-reads the stock before trusting any number, but
keeps each movement's own fields for the NextEngine delta rules.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field


class MalformedNotification(ValueError):
    """The body is not a Smaregi notification stocklink understands; the message says why."""


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


def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise MalformedNotification(f"{name} is not a number: {str(value)[:20]!r}") from None


def parse_legacy(form: Mapping[str, str]) -> Notification:
    """A legacy API送信 form body: ``params`` = JSON ``{"data":[{"table_name","rows":[…]}]}``.

    Rows with a ``productId`` are stock movements (在庫情報送信); a send of other tables
    (取引情報送信 …) parses to a notification without movements. The dedupe key is a hash
    of the params, so a resend from API送信履歴 is recognised (SPEC §11.1).
    """
    raw = form.get("params")
    if raw is None or not str(raw).strip():
        raise MalformedNotification("params is missing")
    try:
        params = json.loads(raw)
    except ValueError:
        raise MalformedNotification("params is not JSON") from None
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
            product_id = str(row["productId"]).strip()
            if not product_id.isdigit():
                raise MalformedNotification(f"productId is not a number: {product_id[:20]!r}")
            movements.append(StockMovement(
                product_id=product_id,
                store_id=str(row["storeId"]) if row.get("storeId") not in (None, "") else None,
                amount=_int(row.get("amount"), "amount"),
                stock_after=_int(row.get("stockAmount"), "stockAmount"),
                division=(str(row["stockDivision"]).zfill(2) if row.get("stockDivision") else None),
                at=row.get("updDateTime")))
    canonical = json.dumps(params, sort_keys=True, ensure_ascii=False)
    key = "legacy:" + hashlib.sha256(canonical.encode()).hexdigest()
    event = "stock" if movements else "other"
    return Notification("legacy", event, key, tuple(movements),
                        {"proc_name": form.get("proc_name"), "params": params})


def parse_platform(headers: Mapping[str, str], body: bytes) -> Notification:
    """A Platform webhook: JSON body, ``Smaregi-Event`` and ``Smaregi-Event-Id`` headers.

    ``pos:stock`` carries ``ids: [{id, productId, storeId}]`` and no quantities; other events
    are stored but carry no movements. The dedupe key is contract + event id.
    """
    event = headers.get("Smaregi-Event", "").strip()
    event_id = headers.get("Smaregi-Event-Id", "").strip()
    if not event:
        raise MalformedNotification("Smaregi-Event header is missing")
    if not event_id or len(event_id) > 64:
        raise MalformedNotification("Smaregi-Event-Id header is missing or too long")
    try:
        payload = json.loads(body)
    except ValueError:
        raise MalformedNotification("body is not JSON") from None
    if not isinstance(payload, dict) or not payload.get("contractId"):
        raise MalformedNotification("contractId is missing")
    movements = []
    if event == "pos:stock":
        ids = payload.get("ids")
        if not isinstance(ids, list):
            raise MalformedNotification("ids is not a list")
        for item in ids:
            if not isinstance(item, dict) or not str(item.get("productId", "")).isdigit():
                raise MalformedNotification("ids[] needs a numeric productId")
            movements.append(StockMovement(product_id=str(item["productId"]),
                                           store_id=str(item.get("storeId")) if item.get("storeId") else None,
                                           history_id=str(item.get("id")) if item.get("id") else None))
    key = f"platform:{payload['contractId']}:{event_id}"
    return Notification("platform", event, key, tuple(movements), payload)
