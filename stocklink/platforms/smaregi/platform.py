"""The スマレジ・プラットフォームAPI client (platform-apis-smaregi.md §3): OAuth client credentials,
JSON over REST, lists paged with ``limit`` / ``page``."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from stocklink.platforms.base import (
    DEFAULT_TIMEOUT,
    AuthError,
    ConnectionCheck,
    PlatformError,
    new_session,
    retry_after_seconds,
    send,
)
from stocklink.platforms.smaregi.common import (
    _HISTORY_FIELDS,
    _TOKEN_MARGIN,
    FIND_WINDOW,
    HISTORY_PAGE,
    HISTORY_READS_PER_SECOND,
    JST,
    MAX_RETRY_WAIT,
    PAGE_LIMIT,
    PLATFORM_API_BASE_URL,
    PLATFORM_ID_BASE_URL,
    PLATFORM_SCOPES,
    RATE_RETRIES,
    SALE_SCOPES,
    SCAN_THRESHOLD,
    SHIPMENT_CANCELLED,
    FoundSale,
    SaleRegistration,
    SmaregiProduct,
    SmaregiStockChange,
    UnknownOutcome,
    _change,
    _Closable,
    _int,
    _json,
    _pacer,
    _product,
    _temporary_or_none,
    _unique,
    default_rate_limit,
    memo_has_reference,
    pick_found,
    sale_memo,
    sale_time,
    terminal_tran_id,
)


class PlatformSmaregiClient(_Closable):
    """The スマレジ・プラットフォームAPI: client-credentials token, REST/JSON under ``/{contract}/pos``.

    The app token is cached until ~60 s before it expires and renewed once on a 401
    (doc §3.3). Lists are bare arrays paged with ``limit``/``page`` (doc §3.5).
    """

    api_generation = "platform"

    def __init__(self, id_base_url: str, api_base_url: str, contract_id: str, client_id: str,
                 client_secret: str, store_id: str, session: requests.Session | None = None,
                 timeout: float = DEFAULT_TIMEOUT, rate_limit: tuple[float, float] | None = None,
                 terminal_id: str = "1", register_sales: bool = False):
        self._id_base = (id_base_url or PLATFORM_ID_BASE_URL).rstrip("/")
        self._api_base = (api_base_url or PLATFORM_API_BASE_URL).rstrip("/")
        self.rate_limit = rate_limit or default_rate_limit(self._api_base)  # (GET/s, writes/s)
        self._sleep = time.sleep  # replaceable in tests to record the waits
        self._contract_id = contract_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.store_id = str(store_id)
        self.terminal_id = str(terminal_id)
        # The sale scopes are asked for only when sales are registered (common.SALE_SCOPES).
        self.scopes = PLATFORM_SCOPES + (SALE_SCOPES if register_sales else ())
        self._own_session = session is None
        self._session = session or new_session()
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._clock = time.monotonic  # replaceable in tests to move time forward

    def __repr__(self) -> str:
        return (f"PlatformSmaregiClient({self._api_base!r}, contract={self._contract_id!r}, "
                f"store={self.store_id!r})")

    def _access_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._token_renew_at:
                self._token, lifetime = self._request_token()
                margin = min(_TOKEN_MARGIN, lifetime / 2)
                self._token_renew_at = self._clock() + lifetime - margin
            return self._token

    def _forget_token(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _request_token(self) -> tuple[str, float]:
        """``POST {id}/app/{contract}/token`` with Basic auth (doc §3.3)."""
        url = f"{self._id_base}/app/{quote(self._contract_id, safe='')}/token"
        data = {"grant_type": "client_credentials", "scope": " ".join(self.scopes)}
        response = send(self._session, "POST", url, timeout=self._timeout, data=data,
                        auth=(self._client_id, self._client_secret))
        temporary = _temporary_or_none(response, "token")
        if temporary:
            raise temporary
        body = _json(response)
        if response.status_code in (400, 401, 403):
            # Token error bodies are OAuth-style guesses (doc §3.3 NOT FOUND); name the error only.
            reason = body.get("error") if isinstance(body, dict) else None
            raise AuthError(f"Smaregi refused the app token ({reason or response.status_code})",
                            code=str(reason or response.status_code), status=response.status_code)
        if not response.ok or not isinstance(body, dict) or not body.get("access_token"):
            raise PlatformError(f"Smaregi token: unexpected answer (HTTP {response.status_code})",
                                code=str(response.status_code), status=response.status_code)
        lifetime = float(body.get("expires_in") or 3600)
        return str(body["access_token"]), lifetime

    def _request(self, method: str, path: str, *, params: dict | None = None,
                 body: dict | None = None) -> Any:
        """One API call under ``/{contract}/pos``, paced under the rate limit; a 401 renews the
        token and retries once, a read refused with 429 is sent again after Retry-After."""
        url = f"{self._api_base}/{quote(self._contract_id, safe='')}/pos{path}"
        write = method != "GET"
        pacer = _pacer(self._api_base, self._contract_id, write, self.rate_limit[1 if write else 0])
        renewed, throttled = False, 0
        while True:
            token = self._access_token()
            pacer.wait(self._sleep)
            response = send(self._session, method, url, timeout=self._timeout, params=params, json=body,
                            headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401 and not renewed:
                renewed = True
                self._forget_token(token)
                continue
            if response.status_code == 429 and not write and throttled < RATE_RETRIES:
                # Refused, so nothing happened: safe to send again. Writes are left to the
                # caller, which knows whether its write may be repeated.
                wait = retry_after_seconds(response) or 1.0
                if wait <= MAX_RETRY_WAIT:
                    throttled += 1
                    self._sleep(wait)
                    continue
            break
        return self._check(method, path, response)

    @staticmethod
    def _check(method: str, path: str, response: requests.Response) -> Any:
        """Decode a 2xx answer or raise; error bodies are RFC 7807-like (doc §3.6)."""
        what = f"{method} {path.split('?')[0]}"
        temporary = _temporary_or_none(response, what)
        if temporary:
            raise temporary
        body = _json(response)
        status = response.status_code
        if response.ok:
            if body is None:
                raise PlatformError(f"Smaregi {what}: answer is not JSON", code="bad_response", status=status)
            return body
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or "")
        message = f"Smaregi {what}: HTTP {status} {detail}".strip()
        if status in (401, 403):
            code = "unauthorized" if status == 401 else "forbidden"
            raise AuthError(message, code=code, status=status)
        if status == 404:
            raise PlatformError(message, code="not_found", status=status)
        raise PlatformError(message, code="bad_request" if status == 400 else str(status), status=status)

    def _pages(self, path: str, params: dict) -> Iterator[dict]:
        """Every item of a list endpoint; a page shorter than the limit is the last (doc §3.5)."""
        page = 1
        while True:
            items = self._request("GET", path, params={**params, "limit": PAGE_LIMIT, "page": page})
            if not isinstance(items, list):
                raise PlatformError(f"Smaregi GET {path}: expected a list", code="bad_response")
            yield from items
            if len(items) < PAGE_LIMIT:
                return
            page += 1

    def fetch_stock(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Current stock of the configured store for each id; a product without a stock row is 0.

        "商品の在庫情報はその商品の在庫数が変動してはじめて取得できます" (doc §3.9): no row means 0.
        """
        ids = _unique(product_ids)
        stock = dict.fromkeys(ids, 0)
        fields = "productId,stockAmount"
        if len(ids) <= SCAN_THRESHOLD:
            rows: Iterable[dict] = (row for one in ids for row in self._pages(
                "/stock", {"store_id": self.store_id, "product_id": one, "fields": fields}))
        else:
            rows = self._pages("/stock", {"store_id": self.store_id, "fields": fields, "sort": "productId"})
        for row in rows:
            if str(row.get("productId")) in stock:
                stock[str(row["productId"])] = _int(row.get("stockAmount"), "stockAmount")
        return stock

    def stock_updated_since(self, since: datetime) -> dict[str, int]:
        """Stock of every product whose stock row changed at or after ``since`` (backfill, SPEC §11.2).

        ``upd_date_time-from`` ranges are capped at 31 days (doc §3.5): an older ``since`` is
        moved forward to 30 days ago.
        """
        floor = datetime.now(UTC) - timedelta(days=30)
        since = max(since, floor)
        params = {"store_id": self.store_id, "fields": "productId,stockAmount", "sort": "productId",
                  "upd_date_time-from": since.astimezone(JST).isoformat(timespec="seconds")}
        return {str(row["productId"]): _int(row.get("stockAmount"), "stockAmount")
                for row in self._pages("/stock", params)}

    def iter_products(self) -> Iterator[SmaregiProduct]:
        """Every product of the contract, in productId order, fetched 1000 a page (every field:
        the image's name is not documented, :data:`~stocklink.platforms.smaregi.common.IMAGE_FIELD`)."""
        for row in self._pages("/products", {"sort": "productId"}):
            yield _product(row)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, SmaregiProduct]:
        """The products with these ids; unknown ids are absent from the result."""
        ids = _unique(product_ids)
        if len(ids) > SCAN_THRESHOLD:
            wanted = set(ids)
            return {p.product_id: p for p in self.iter_products() if p.product_id in wanted}
        found = {}
        for one in ids:
            try:
                row = self._request("GET", f"/products/{quote(one, safe='')}")
            except PlatformError as exc:
                if exc.code == "not_found":
                    continue
                raise
            found[one] = _product(row)
        return found

    def _write(self, method: str, path: str, amount: int, memo: str) -> int:
        body: dict[str, Any] = {"storeId": self.store_id, "stockAmount": str(int(amount))}
        if memo:
            body["stockHistory"] = {"memo": memo[:100]}  # memo ≤ 100 chars (doc §3.9)
        answer = self._request(method, path, body=body)
        return _int(answer.get("stockAmount") if isinstance(answer, dict) else None, "stockAmount")

    def set_stock(self, product_id: str, amount: int, memo: str = "") -> int:
        """Set the store's stock to ``amount`` (``PATCH /stock/{id}``); returns the stock Smaregi holds.

        Platform writes come back as ``pos:stock`` webhooks to the writer too (doc §3.12 Echo).
        """
        return self._write("PATCH", f"/stock/{quote(str(product_id), safe='')}", amount, memo)

    def add_stock(self, product_id: str, delta: int, memo: str = "") -> int:
        """Change the store's stock by ``delta`` (``POST /stock/{id}/add``); returns the new total."""
        return self._write("POST", f"/stock/{quote(str(product_id), safe='')}/add", delta, memo)

    def get_stock_change(self, product_id: str, change_id: str,
                         store_id: str | None = None) -> SmaregiStockChange | None:
        """One 在庫変動履歴 row (``GET /stock/changes/{product}/{store}?id=``), or None."""
        path = (f"/stock/changes/{quote(str(product_id), safe='')}/"
                f"{quote(str(store_id or self.store_id), safe='')}")
        try:
            rows = self._request("GET", path, params={"id": str(change_id)})
        except PlatformError as exc:
            if exc.code == "not_found":
                return None
            raise
        return _change(rows[0]) if rows else None

    def stock_changes_after(self, after: Mapping[str, int],
                            since: Mapping[str, str] | None = None) -> dict[str, list[SmaregiStockChange]]:
        """The configured store's 在庫変動履歴 entries, oldest first, per product: those with an id
        greater than ``after[product]`` (or, for a product only in ``since``, recorded at or
        after that JST ``YYYY-MM-DD HH:MM:SS``).

        ``GET /stock/changes/{product}/{store}`` one product per call (doc §3.9), newest first
        (``sort=id:desc``, doc §3.5) and paged until the cursor is reached. Should Smaregi
        answer in another order, every page is read, so nothing after the cursor is missed.
        An unknown product has no entries.
        """
        after = {str(k): int(v) for k, v in after.items()}
        since = {str(k): datetime.strptime(str(v), "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST)
                 for k, v in (since or {}).items() if str(k) not in after}
        wanted = list(after) + list(since)
        spacing = 1.0 / HISTORY_READS_PER_SECOND if len(wanted) > HISTORY_READS_PER_SECOND else 0.0
        found = {}
        for index, pid in enumerate(wanted):
            if index and spacing:
                time.sleep(spacing)

            def fresh(change: SmaregiStockChange, pid=pid) -> bool:
                if pid in after:
                    return int(change.change_id) > after[pid]
                return datetime.fromisoformat(change.upd_date_time) >= since[pid]

            found[pid] = self._changes_of(pid, fresh)
        return found

    def _changes_of(self, product_id: str, fresh) -> list[SmaregiStockChange]:
        path = f"/stock/changes/{quote(product_id, safe='')}/{quote(self.store_id, safe='')}"
        kept: dict[str, SmaregiStockChange] = {}
        page = 1
        while True:
            try:
                items = self._request("GET", path, params={"sort": "id:desc", "limit": HISTORY_PAGE,
                                                           "page": page, "fields": ",".join(_HISTORY_FIELDS)})
            except PlatformError as exc:
                if exc.code == "not_found":
                    return []
                raise
            if not isinstance(items, list):
                raise PlatformError(f"Smaregi GET {path}: expected a list", code="bad_response")
            changes = [_change(item) for item in items]
            kept.update((c.change_id, c) for c in changes if fresh(c))
            ids = [int(c.change_id) for c in changes]
            newest_first = ids == sorted(ids, reverse=True)
            if len(items) < HISTORY_PAGE or (newest_first and not fresh(changes[-1])):
                break
            page += 1
        return sorted(kept.values(), key=lambda c: int(c.change_id))

    def register_sale(self, registration: SaleRegistration) -> str:
        """Register a web sale in the configured store; returns Smaregi's id of the record.

        Shipment: ``POST /shipments``, modelled on the legacy Shipment fields (doc §3.11: the
        official schema is NOT FOUND) — ``shipmentStoreId``, ``shipmentDate``, ``identificationNo``
        (the reference), ``memo``, ``details[] {productId, quantity}``; answers ``shipmentId``.
        Transaction: ``POST /transactions`` with the required fields (doc §3.10): 通常, the
        configured store and terminal, ``subtotal`` = ``total`` = Σ price × quantity, the lines
        as ``details[]``. The reference goes into ``memo`` as a tag (``stocklink:<reference>``,
        :func:`~stocklink.platforms.smaregi.common.sale_memo`): the free text Smaregi keeps as
        written. ``terminalTranId`` is numeric, so it holds a number derived from the reference
        (:func:`~stocklink.platforms.smaregi.common.terminal_tran_id`): every attempt of one
        registration carries the same 端末取引ID, and the find narrows on it. Answers
        ``transactionHeadId``.

        Errors as every call; a write refused with 429 is not sent again here. After an
        ``outcome_unknown`` error (timeout, lost connection; :class:`UnknownOutcome` for an answer
        without the id) or a 5xx the sale may be registered: settle it with :meth:`find_sale`
        before sending it again.
        """
        if registration.mode == "shipment":
            body = {"shipmentStoreId": self.store_id, "identificationNo": registration.reference,
                    "shipmentDate": sale_time(registration.occurred_at, "platform")[:10],
                    "memo": registration.memo, "status": "1",
                    "details": [{"productId": str(line.product_id), "quantity": str(int(line.quantity))}
                                for line in registration.lines]}
            answer, key = self._request("POST", "/shipments", body=body), "shipmentId"
        else:
            subtotal = sum(int(line.unit_price or 0) * int(line.quantity) for line in registration.lines)
            body = {"transactionHeadDivision": "1", "storeId": self.store_id, "terminalId": self.terminal_id,
                    "terminalTranId": terminal_tran_id(registration.reference),
                    "terminalTranDateTime": sale_time(registration.occurred_at, "platform"),
                    "subtotal": str(subtotal), "total": str(subtotal), "memo": sale_memo(registration),
                    "details": [{"transactionDetailId": str(n), "transactionDetailDivision": "1",
                                 "productId": str(line.product_id), "price": str(line.unit_price),
                                 "salesPrice": str(line.unit_price), "quantity": str(int(line.quantity))}
                                for n, line in enumerate(registration.lines, start=1)]}
            answer, key = self._request("POST", "/transactions", body=body), "transactionHeadId"
        if not isinstance(answer, dict) or not answer.get(key):
            # Registered, but the answer does not say as what: settle it by the reference.
            raise UnknownOutcome(f"Smaregi POST {registration.mode}: answer without {key}", code="read_back")
        return str(answer[key])

    def find_sale(self, registration: SaleRegistration) -> FoundSale | None:
        """The record registered for ``registration.reference``, cancelled or not, or None.

        Shipment: ``GET /shipments?identification_no=&store_id=`` (modelled filters); status 9
        is cancelled (modelled, :data:`~stocklink.platforms.smaregi.common.SHIPMENT_CANCELLED`).
        Transaction: ``GET /transactions`` of the store within :data:`FIND_WINDOW` either side of
        ``occurred_at`` (``terminal_tran_date_time-from/-to``, the narrowest documented filter,
        doc §3.10), matched on terminal, ``terminalTranId`` and the memo's tag;
        ``cancelDivision`` "1" is cancelled. A live record is preferred to a cancelled one.
        """
        if registration.mode == "shipment":
            rows = self._pages("/shipments", {"identification_no": registration.reference, "store_id": self.store_id,
                                              "fields": "shipmentId,status,identificationNo"})
            return pick_found((str(r["shipmentId"]), str(r.get("status")) == SHIPMENT_CANCELLED)
                              for r in rows if r.get("identificationNo") == registration.reference)
        moment = registration.occurred_at
        params = {"store_id": self.store_id,
                  "terminal_tran_date_time-from": sale_time(moment - FIND_WINDOW, "platform"),
                  "terminal_tran_date_time-to": sale_time(moment + FIND_WINDOW, "platform"),
                  "fields": "transactionHeadId,cancelDivision,terminalId,terminalTranId,memo"}
        tran_id = terminal_tran_id(registration.reference)
        return pick_found((str(r["transactionHeadId"]), str(r.get("cancelDivision")) == "1")
                          for r in self._pages("/transactions", params)
                          if str(r.get("terminalId")) == self.terminal_id and str(r.get("terminalTranId")) == tran_id
                          and memo_has_reference(r.get("memo"), registration.reference))

    def cancel_sale(self, mode: str, smaregi_id: str) -> None:
        """Cancel a registered sale; cancelling a cancelled one is harmless.

        ``POST /transactions/{id}/cancel`` (取消, doc §3.10) or the modelled
        ``POST /shipments/{id}/cancel``. A 400 is checked against the record
        (``GET …/{id}``): already cancelled passes, anything else is raised. :raise PlatformError:
        ``not_found`` for an unknown id.
        """
        if mode not in ("shipment", "transaction"):
            raise ValueError(f"unknown sale mode {mode!r}")
        path = f"/{mode}s/{quote(str(smaregi_id), safe='')}"
        try:
            self._request("POST", f"{path}/cancel", body={})
        except PlatformError as exc:
            if exc.code != "bad_request":
                raise
            record = self._request("GET", path)
            flag = (record.get("status") == SHIPMENT_CANCELLED if mode == "shipment"
                    else record.get("cancelDivision") == "1") if isinstance(record, dict) else False
            if not flag:
                raise

    def test_connection(self) -> ConnectionCheck:
        """Obtain a token, count the products and check the store; describe what was found."""
        products = sum(1 for _ in self._pages("/products", {"fields": "productId"}))
        try:
            self._request("GET", "/stock", params={"store_id": self.store_id, "limit": 1})
        except PlatformError as exc:
            if exc.code == "bad_request":  # unknown store: 400 (doc §3.9), a setting to fix
                raise AuthError(f"Smaregi store {self.store_id} was refused: {exc}", code="store",
                                status=exc.status) from exc
            raise
        return ConnectionCheck(products=products, store=self.store_id)
