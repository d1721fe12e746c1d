"""The legacy スマレジAPI client (platform-apis-smaregi.md §1): one form-encoded POST endpoint,
``proc_name`` per operation, every value a string."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

import requests

from stocklink.platforms.base import (
    DEFAULT_TIMEOUT,
    AuthError,
    ConnectionCheck,
    PlatformError,
    TemporaryError,
    new_session,
    send,
)
from stocklink.platforms.smaregi.common import (
    _HISTORY_FIELDS,
    _LEGACY_AUTH_CODES,
    JST,
    LEGACY_BASE_URL,
    PAGE_LIMIT,
    SCAN_THRESHOLD,
    SHIPMENT_CANCELLED,
    STOCK_DIVISION_API,
    FoundSale,
    SaleRegistration,
    SmaregiProduct,
    SmaregiStockChange,
    UnknownOutcome,
    _change,
    _Closable,
    _int,
    _json,
    _product,
    _temporary_or_none,
    _unique,
    memo_has_reference,
    pick_found,
    sale_memo,
    sale_time,
    terminal_tran_id,
)


class LegacySmaregiClient(_Closable):
    """The legacy スマレジAPI: ``POST {base_url}`` with form fields ``proc_name`` and ``params``.

    Auth is the static 契約ID + アクセストークン pair in the ``X_contract_id`` /
    ``X_access_token`` headers (doc §1.3). All response values are strings (doc §1.5).
    """

    api_generation = "legacy"

    def __init__(self, base_url: str, contract_id: str, access_token: str, store_id: str,
                 session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT,
                 terminal_id: str = "1"):
        self._url = base_url or LEGACY_BASE_URL
        self._contract_id = contract_id
        self._access_token = access_token
        self.store_id = str(store_id)
        self.terminal_id = str(terminal_id)
        self._own_session = session is None
        self._session = session or new_session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"LegacySmaregiClient({self._url!r}, contract={self._contract_id!r}, store={self.store_id!r})"

    def _call(self, proc_name: str, params: dict) -> dict:
        """One API call; returns the decoded body (which has a ``result`` key) or raises."""
        # Underscore header names, as most clients send them (doc §1.3).
        headers = {"X_contract_id": self._contract_id, "X_access_token": self._access_token}
        form = {"proc_name": proc_name, "params": json.dumps(params, ensure_ascii=False)}
        response = send(self._session, "POST", self._url, timeout=self._timeout, data=form, headers=headers)
        temporary = _temporary_or_none(response, f"legacy {proc_name}")
        if temporary:
            raise temporary
        body = _json(response)
        if isinstance(body, dict) and body.get("error_code") not in (None, 0, "0"):
            raise self._error(proc_name, body, response.status_code)
        if not response.ok or not isinstance(body, dict) or "result" not in body:
            status = response.status_code
            raise PlatformError(f"Smaregi legacy {proc_name}: unexpected answer (HTTP {status})",
                                code=str(status), status=status)
        return body

    @staticmethod
    def _error(proc_name: str, body: dict, status: int) -> PlatformError:
        """Map an ``error_code`` body (doc §1.7): 1x/2x are the merchant's to fix, the rest data errors."""
        code = body.get("error_code")
        detail = " ".join(str(body.get(k) or "") for k in ("error", "error_description")).strip()
        message = f"Smaregi legacy {proc_name}: error {code}: {detail}"
        try:
            number = int(code)
        except (TypeError, ValueError):
            number = None
        cls = AuthError if number in _LEGACY_AUTH_CODES else PlatformError
        return cls(message, code=str(code), status=status)

    def _ref(self, proc_name: str, table: str, fields: list[str], conditions: list[dict],
             order: list[str]) -> Iterator[dict]:
        """Every row of a ``*_ref`` query, 1000 rows a page (doc §1.5)."""
        page = 1
        while True:
            params = {"table_name": table, "order": order, "limit": PAGE_LIMIT, "page": page}
            if fields:  # optional (doc §1.5): without it every column is answered
                params["fields"] = fields
            if conditions:
                params["conditions"] = conditions
            body = self._call(proc_name, params)
            rows = body.get("result") or []
            yield from rows
            total = _int(body.get("total_count", 0), "total_count")
            if not rows or page * PAGE_LIMIT >= total:
                return
            page += 1

    def _select(self, proc_name: str, table: str, fields: list[str], key: str, ids: list[str],
                base: dict) -> Iterator[dict]:
        """Rows whose ``key`` is in ``ids``: one query per id for few ids, a scan otherwise."""
        if len(ids) <= SCAN_THRESHOLD:
            for one in ids:
                yield from self._ref(proc_name, table, fields, [{**base, key: one}], [key])
            return
        wanted = set(ids)
        conditions = [base] if base else []
        for row in self._ref(proc_name, table, fields, conditions, [key]):
            if str(row.get(key)) in wanted:
                yield row

    def fetch_stock(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Current stock of the configured store for each id; a product without a stock row is 0."""
        ids = _unique(product_ids)
        stock = dict.fromkeys(ids, 0)
        rows = self._select("stock_ref", "Stock", ["productId", "stockAmount"], "productId", ids,
                            {"storeId": self.store_id})
        for row in rows:
            stock[str(row["productId"])] = _int(row.get("stockAmount"), "stockAmount")
        return stock

    def stock_updated_since(self, since: datetime) -> dict[str, int]:
        """Stock of every product whose stock row changed at or after ``since`` (backfill, SPEC §11.2)."""
        conditions = [{"storeId": self.store_id, "updDateTime >=": since.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")}]
        return {str(row["productId"]): _int(row.get("stockAmount"), "stockAmount") for row in self._ref(
            "stock_ref", "Stock", ["productId", "stockAmount", "updDateTime"], conditions, ["productId"])}

    _PRODUCT_FIELDS: list[str] = []  # every column, the image's included (common.IMAGE_FIELD)

    def iter_products(self) -> Iterator[SmaregiProduct]:
        """Every product of the contract, in productId order, fetched 1000 a page."""
        for row in self._ref("product_ref", "Product", self._PRODUCT_FIELDS, [], ["productId"]):
            yield _product(row)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, SmaregiProduct]:
        """The products with these ids; unknown ids are absent from the result."""
        rows = self._select("product_ref", "Product", self._PRODUCT_FIELDS, "productId",
                            _unique(product_ids), {})
        return {p.product_id: p for p in map(_product, rows)}

    def _stock_upd(self, product_id: str, amount: int, detail_division: str, memo: str) -> None:
        row = {"storeId": self.store_id, "productId": str(product_id), "stockAmount": str(int(amount)),
               "stockDivision": STOCK_DIVISION_API}
        if memo:
            row["memo"] = memo
        params = {"proc_info": {"proc_division": "U", "proc_detail_division": detail_division},
                  "data": [{"table_name": "Stock", "rows": [row]}]}
        self._call("stock_upd", params)

    def set_stock(self, product_id: str, amount: int, memo: str = "") -> int:
        """Set the store's stock to ``amount`` (proc_detail_division 1 = absolute); returns ``amount``.

        Changes made through ``stock_upd`` are not sent back by API送信 (doc §2.5).
        """
        self._stock_upd(product_id, amount, "1", memo)
        return int(amount)

    def add_stock(self, product_id: str, delta: int, memo: str = "") -> int:
        """Change the store's stock by ``delta`` (proc_detail_division 2 = relative); returns the stock now.

        The legacy update answers no quantity (doc §1.6), so the result is read back; a POS
        sale in between is included in it.
        """
        self._stock_upd(product_id, delta, "2", memo)
        return self.fetch_stock([product_id])[str(product_id)]

    def get_stock_change(self, product_id: str, change_id: str,
                         store_id: str | None = None) -> SmaregiStockChange | None:
        """One 在庫変動履歴 row by id (table StockHistory), or None if there is none."""
        conditions = [{"id": str(change_id), "productId": str(product_id),
                       "storeId": str(store_id or self.store_id)}]
        fields = ["id", "productId", "storeId", "amount", "stockAmount", "stockDivision", "updDateTime"]
        for row in self._ref("stock_ref", "StockHistory", fields, conditions, ["id"]):
            return _change(row)
        return None

    def stock_changes_after(self, after: Mapping[str, int],
                            since: Mapping[str, str] | None = None) -> dict[str, list[SmaregiStockChange]]:
        """The configured store's 在庫変動履歴 entries (table StockHistory), oldest first, per product:
        those with an id greater than ``after[product]``, or for a product only in ``since``,
        those recorded at or after ``since[product]`` (legacy ``YYYY-MM-DD HH:MM:SS``, JST).

        Few products: one query each (``productId`` and ``id >`` / ``updDateTime >=``
        conditions, doc §1.5). More: one scan of the store's entries after the smallest
        cursor (OR is not supported), filtered here.
        """
        after = {str(k): int(v) for k, v in after.items()}
        since = {str(k): str(v) for k, v in (since or {}).items() if str(k) not in after}
        wanted = set(after) | set(since)
        base = {"storeId": self.store_id}
        if len(wanted) <= SCAN_THRESHOLD:
            queries = [[{**base, "productId": pid, "id >": str(last)}] for pid, last in after.items()]
            queries += [[{**base, "productId": pid, "updDateTime >=": moment}] for pid, moment in since.items()]
        else:
            queries = [[{**base, "id >": str(min(after.values()))}]] if after else []
            queries += [[{**base, "updDateTime >=": min(since.values())}]] if since else []
        found: dict[str, dict[str, SmaregiStockChange]] = {pid: {} for pid in wanted}
        for conditions in queries:
            for row in self._ref("stock_ref", "StockHistory", _HISTORY_FIELDS, conditions, ["id"]):
                change = _change(row)
                pid = change.product_id
                if pid in after and int(change.change_id) > after[pid] or \
                        pid in since and change.upd_date_time >= since[pid]:
                    found[pid][change.change_id] = change
        return {pid: sorted(rows.values(), key=lambda c: int(c.change_id)) for pid, rows in found.items()}

    def register_sale(self, registration: SaleRegistration) -> str:
        """Register a web sale in the configured store; returns Smaregi's id of the record.

        Shipment: ``shipment_upd`` with one ``Shipment`` row (``shipmentStoreId`` the store,
        ``identificationNo`` the reference) and a ``ShipmentDetail`` row per line. Transaction:
        ``transaction_upd`` with one ``TransactionHead`` (通常, the configured terminal,
        ``terminalTranId`` derived from the reference, ``memo`` tagged with it — see
        :func:`~stocklink.platforms.smaregi.common.sale_memo`) and a ``TransactionDetail`` per line.
        The legacy update answers no id (doc §1.6: its success body is NOT FOUND), so the record
        is read back by its reference (:meth:`find_sale`).

        Errors as every call. ``outcome_unknown`` errors — a timeout or a lost connection
        (:class:`TemporaryError` codes ``timeout``/``connection``), or :class:`UnknownOutcome` when
        the update was accepted but cannot be read back — and 5xx answers may leave the sale
        registered: settle it with :meth:`find_sale` before sending it again.
        """
        if registration.mode == "shipment":
            head = {"shipmentStoreId": self.store_id, "identificationNo": registration.reference,
                    "shipmentDate": sale_time(registration.occurred_at, "legacy")[:10], "memo": registration.memo,
                    "status": "1"}
            details = [{"productId": str(line.product_id), "quantity": str(int(line.quantity))}
                       for line in registration.lines]
            tables, proc = ("Shipment", "ShipmentDetail"), "shipment_upd"
        else:
            head, details = self._transaction_rows(registration)
            tables, proc = ("TransactionHead", "TransactionDetail"), "transaction_upd"
        self._call(proc, {"proc_info": {"proc_division": "U"},
                          "data": [{"table_name": tables[0], "rows": [head]},
                                   {"table_name": tables[1], "rows": details}]})
        try:
            found = self.find_sale(registration)
        except TemporaryError as exc:
            raise UnknownOutcome(f"Smaregi legacy {proc}: accepted, but the read-back failed: {exc}",
                                 code="read_back", status=exc.status, retry_after=exc.retry_after) from exc
        if found is None:
            raise UnknownOutcome(f"Smaregi legacy {proc}: accepted, but {registration.reference} cannot be read back",
                                 code="read_back")
        return found.smaregi_id

    def _transaction_rows(self, registration: SaleRegistration) -> tuple[dict, list[dict]]:
        details = [{"transactionDetailId": str(n), "transactionDetailDivision": "1", "productId": str(line.product_id),
                    "price": str(line.unit_price), "salesPrice": str(line.unit_price), "quantity": str(line.quantity)}
                   for n, line in enumerate(registration.lines, start=1)]
        subtotal = sum(int(line.unit_price or 0) * int(line.quantity) for line in registration.lines)
        head = {"transactionHeadDivision": "1", "storeId": self.store_id, "terminalId": self.terminal_id,
                "terminalTranId": terminal_tran_id(registration.reference),
                "terminalTranDateTime": sale_time(registration.occurred_at, "legacy"),
                "subtotal": str(subtotal), "total": str(subtotal), "memo": sale_memo(registration)}
        return head, details

    def find_sale(self, registration: SaleRegistration) -> FoundSale | None:
        """The record registered for ``registration.reference``, cancelled or not, or None.

        Shipment: ``shipment_ref`` on ``identificationNo`` and the store (a cancelled shipment has
        the modelled status 9; should Smaregi delete the row instead, this answers None — the
        shipment is gone either way). Transaction: ``transaction_ref`` on store, terminal and the
        derived ``terminalTranId``, then the memo's tag; ``cancelDivision`` "1" is cancelled.
        A live record is preferred to a cancelled one with the same reference.
        """
        if registration.mode == "shipment":
            rows = self._ref("shipment_ref", "Shipment", ["shipmentId", "status", "identificationNo"],
                             [{"identificationNo": registration.reference, "shipmentStoreId": self.store_id}],
                             ["shipmentId"])
            return pick_found((str(r["shipmentId"]), str(r.get("status")) == SHIPMENT_CANCELLED)
                              for r in rows if r.get("identificationNo") == registration.reference)
        rows = self._ref("transaction_ref", "TransactionHead", ["transactionHeadId", "cancelDivision", "memo"],
                         [{"storeId": self.store_id, "terminalId": self.terminal_id,
                           "terminalTranId": terminal_tran_id(registration.reference)}], ["transactionHeadId"])
        return pick_found((str(r["transactionHeadId"]), str(r.get("cancelDivision")) == "1")
                          for r in rows if memo_has_reference(r.get("memo"), registration.reference))

    def _cancelled(self, mode: str, smaregi_id: str) -> bool | None:
        """Whether the record is cancelled (None: no such record)."""
        if mode == "shipment":
            rows = list(self._ref("shipment_ref", "Shipment", ["shipmentId", "status"],
                                  [{"shipmentId": str(smaregi_id)}], ["shipmentId"]))
            return str(rows[0].get("status")) == SHIPMENT_CANCELLED if rows else None
        rows = list(self._ref("transaction_ref", "TransactionHead", ["transactionHeadId", "cancelDivision"],
                              [{"transactionHeadId": str(smaregi_id)}], ["transactionHeadId"]))
        return str(rows[0].get("cancelDivision")) == "1" if rows else None

    def cancel_sale(self, mode: str, smaregi_id: str) -> None:
        """Cancel a registered sale; cancelling a cancelled one is harmless.

        Transaction: ``transaction_upd`` U with ``transactionHeadId`` and ``cancelDivision`` "1"
        (取消, doc §3.10: the original is flagged, no counter-record). Shipment: ``shipment_upd``
        with ``proc_division`` "D" and the ``shipmentId`` — gap: whether Smaregi accepts a delete
        of a shipment, and whether it deletes or cancels, is NOT FOUND (doc §1.4); the sandbox
        keeps the row with status 9. A refusal is checked against the record's state: already
        cancelled passes, anything else is raised.
        """
        if mode == "shipment":
            proc, division, table = "shipment_upd", "D", "Shipment"
            row = {"shipmentId": str(smaregi_id)}
        elif mode == "transaction":
            proc, division, table = "transaction_upd", "U", "TransactionHead"
            row = {"transactionHeadId": str(smaregi_id), "cancelDivision": "1"}
        else:
            raise ValueError(f"unknown sale mode {mode!r}")
        params = {"proc_info": {"proc_division": division}, "data": [{"table_name": table, "rows": [row]}]}
        try:
            self._call(proc, params)
        except (AuthError, TemporaryError):
            raise
        except PlatformError:
            if self._cancelled(mode, smaregi_id):
                return
            raise

    def test_connection(self) -> ConnectionCheck:
        """Check credentials, the enabled functions and the store; describe what was found."""
        body = self._call("product_ref", {"table_name": "Product", "fields": ["productId"], "limit": 1})
        products = _int(body.get("total_count", 0), "total_count")
        self._call("stock_ref", {"table_name": "Stock", "fields": ["productId"], "limit": 1,
                                 "conditions": [{"storeId": self.store_id}]})
        try:
            stores = self._call("store_ref", {"table_name": "Store", "fields": ["storeId", "storeName"],
                                              "conditions": [{"storeId": self.store_id}]})["result"]
        except AuthError as exc:
            if exc.code != "23":
                raise
            # 店舗情報参照 is not needed for syncing; without it the store id goes unchecked.
            return ConnectionCheck(products=products, store=self.store_id, store_checked=False)
        if not stores:
            raise AuthError(f"Smaregi store {self.store_id} does not exist in this contract", code="store")
        return ConnectionCheck(products=products, store=self.store_id, store_name=stores[0].get("storeName") or None)
