"""Smaregi clients: the legacy スマレジAPI and the Platform API behind one interface.

Both clients offer the same methods (``fetch_stock``, ``iter_products``, ``get_products``,
``set_stock``, ``add_stock``, ``get_stock_change``, ``stock_changes_after``, ``test_connection``)
and differ only in
wire format; :func:`make_smaregi_client` picks one from the merchant's settings. The
sandbox differs from production by base URLs alone (platform-apis-smaregi.md Part A).

Errors (SPEC §6): credentials or merchant-side configuration → :class:`AuthError`;
maintenance, 5xx, 429, timeouts → :class:`TemporaryError`; anything else
→ :class:`PlatformError` carrying Smaregi's code. Messages never contain tokens or secrets.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests

from stocklink.platforms.base import (
    DEFAULT_TIMEOUT,
    AuthError,
    PlatformError,
    TemporaryError,
    new_session,
    retry_after_seconds,
    send,
)

LEGACY_BASE_URL = "https://webapi.smaregi.jp/access/"
PLATFORM_ID_BASE_URL = "https://id.smaregi.jp"
PLATFORM_API_BASE_URL = "https://api.smaregi.jp"

# Everything this client calls (doc §3.3). Scopes must be enabled for the app in
# スマレジ・デベロッパーズ and approved by the contract holder, else the token is refused.
PLATFORM_SCOPES = ("pos.products:read", "pos.stock:read", "pos.stock:write", "pos.stock-changes:read")

# 在庫区分 15 スマレジAPI連携: what API writers should record (doc §1.6, §4.1).
STOCK_DIVISION_API = "15"

PAGE_LIMIT = 1000  # maximum page size of both generations (doc §1.5, §3.5)

# Up to this many ids are read one request each; more are read by scanning the store's
# whole stock (or catalogue) page by page, which is cheaper than thousands of requests.
# Neither API offers an "id IN (…)" filter (doc §1.5: OR is not supported).
SCAN_THRESHOLD = 10

# 在庫変動履歴 reads (``stock_changes_after``): a Platform call covers one product × store (doc §3.9),
# so the calls of one read are spaced to stay within the sandbox plan's GET rate (doc §3.7: 10/s;
# production allows 50/s for the whole app) and a 429 is rarely met; a page of newest-first
# entries usually holds everything after a product's cursor.
HISTORY_READS_PER_SECOND = 10
HISTORY_PAGE = 100
_HISTORY_FIELDS = ["id", "productId", "storeId", "amount", "stockAmount", "stockDivision", "updDateTime"]

# Legacy error codes the merchant must fix (doc §1.7): 1x authentication, 2x settings.
_LEGACY_AUTH_CODES = {13, 14, 21, 22, 23, 24}

_TOKEN_MARGIN = 60.0  # renew the Platform token this many seconds before it expires

# Platform rate limits, counted per app × contract (doc §3.7; the numbers are second-hand [M]):
# Smaregi's sandbox (hosts ``*.smaregi.dev``) GET 10/s and writes 4/s, production 50/s and 20/s.
# The client spaces its requests to stay under them, and a read refused with 429 anyway
# (another worker of the same contract) is sent again after Retry-After, up to RATE_RETRIES
# times, before the failure reaches the caller: a notification naming 1,000 products reads
# 1,000 stock-change histories, which without pacing meets 429 and, retried from the start,
# never completes. The legacy API documents no rate limit and is not paced.
SANDBOX_RATES, PRODUCTION_RATES = (10, 4), (50, 20)
RATE_RETRIES = 3
MAX_RETRY_WAIT = 10.0  # seconds; a longer Retry-After is the caller's to wait (TemporaryError)


JST = timezone(timedelta(hours=9))


@dataclass
class SmaregiProduct:
    """One Smaregi product (商品). Variants of a group are separate products sharing ``group_code``."""

    product_id: str
    code: str | None
    name: str
    size: str | None
    color: str | None
    group_code: str | None
    stock_managed: bool  # stockControlDivision "0" 在庫管理対象 (doc §3.8, §4.2)


@dataclass
class SmaregiStockChange:
    """One 在庫変動履歴 row: ``amount`` is the delta, ``stock_amount`` the stock after it."""

    change_id: str
    product_id: str
    store_id: str
    amount: int
    stock_amount: int
    stock_division: str
    upd_date_time: str


def _text(value: Any) -> str | None:
    """Smaregi sends absent text as null or ""; both mean None here."""
    if value is None or value == "":
        return None
    return str(value)


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise PlatformError(f"Smaregi sent a non-integer {what}", code="bad_response") from None


def _product(row: dict) -> SmaregiProduct:
    return SmaregiProduct(
        product_id=str(row["productId"]),
        code=_text(row.get("productCode")),
        name=str(row.get("productName") or ""),
        size=_text(row.get("size")),
        color=_text(row.get("color")),
        group_code=_text(row.get("groupCode")),
        stock_managed=str(row.get("stockControlDivision", "0")) == "0",
    )


def _change(row: dict) -> SmaregiStockChange:
    return SmaregiStockChange(
        change_id=str(row["id"]),
        product_id=str(row["productId"]),
        store_id=str(row["storeId"]),
        amount=_int(row.get("amount"), "amount"),
        stock_amount=_int(row.get("stockAmount"), "stockAmount"),
        stock_division=str(row.get("stockDivision") or ""),
        upd_date_time=str(row.get("updDateTime") or ""),
    )


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _temporary_or_none(response: requests.Response, api: str) -> TemporaryError | None:
    """429 and 5xx (maintenance included) are worth retrying on both generations."""
    status = response.status_code
    if status == 429:
        return TemporaryError(f"Smaregi {api}: rate limited (HTTP 429)", code="rate_limited",
                              status=status, retry_after=retry_after_seconds(response))
    if status >= 500:
        return TemporaryError(f"Smaregi {api}: HTTP {status}", code=str(status), status=status,
                              retry_after=retry_after_seconds(response))
    return None


class _Pacer:
    """At most ``rate`` requests a second from this process, evenly spaced; thread-safe."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, sleep=time.sleep) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            sleep(at - now)


_PACERS: dict[tuple, _Pacer] = {}
_PACERS_LOCK = threading.Lock()


def _pacer(api_base: str, contract_id: str, write: bool, rate: float) -> _Pacer:
    """One pacer per contract, kind and rate, shared by every client of this process (the
    drain builds a client per batch; the limit is Smaregi's per contract, not per client)."""
    key = (api_base, contract_id, write, rate)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = _Pacer(rate)
        return pacer


def default_rate_limit(api_base_url: str) -> tuple[int, int]:
    """(GET/s, writes/s) Smaregi allows at this API host: the sandbox's or production's."""
    host = (api_base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]).lower()
    return SANDBOX_RATES if host.endswith(".smaregi.dev") else PRODUCTION_RATES


class _Closable:
    _session: requests.Session
    _own_session: bool

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self._session.close()


class LegacySmaregiClient(_Closable):
    """The legacy スマレジAPI: ``POST {base_url}`` with form fields ``proc_name`` and ``params``.

    Auth is the static 契約ID + アクセストークン pair in the ``X_contract_id`` /
    ``X_access_token`` headers (doc §1.3). All response values are strings (doc §1.5).
    """

    api_generation = "legacy"

    def __init__(self, base_url: str, contract_id: str, access_token: str, store_id: str,
                 session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT):
        self._url = base_url or LEGACY_BASE_URL
        self._contract_id = contract_id
        self._access_token = access_token
        self.store_id = str(store_id)
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
            params = {"table_name": table, "fields": fields, "order": order, "limit": PAGE_LIMIT,
                      "page": page}
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

    _PRODUCT_FIELDS = ["productId", "productCode", "productName", "size", "color", "groupCode",
                       "stockControlDivision"]

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

    def test_connection(self) -> str:
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
            return f"スマレジAPI: 商品 {products} 件、店舗 {self.store_id} (店舗情報参照が無効のため未確認)"
        if not stores:
            raise AuthError(f"Smaregi store {self.store_id} does not exist in this contract", code="store")
        name = stores[0].get("storeName") or ""
        return f"スマレジAPI: 商品 {products} 件、店舗 {self.store_id} {name}".strip()


class PlatformSmaregiClient(_Closable):
    """The スマレジ・プラットフォームAPI: client-credentials token, REST/JSON under ``/{contract}/pos``.

    The app token is cached until ~60 s before it expires and renewed once on a 401
    (doc §3.3). Lists are bare arrays paged with ``limit``/``page`` (doc §3.5).
    """

    api_generation = "platform"

    def __init__(self, id_base_url: str, api_base_url: str, contract_id: str, client_id: str,
                 client_secret: str, store_id: str, session: requests.Session | None = None,
                 timeout: float = DEFAULT_TIMEOUT, rate_limit: tuple[float, float] | None = None):
        self._id_base = (id_base_url or PLATFORM_ID_BASE_URL).rstrip("/")
        self._api_base = (api_base_url or PLATFORM_API_BASE_URL).rstrip("/")
        self.rate_limit = rate_limit or default_rate_limit(self._api_base)  # (GET/s, writes/s)
        self._sleep = time.sleep  # replaceable in tests to record the waits
        self._contract_id = contract_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.store_id = str(store_id)
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
        data = {"grant_type": "client_credentials", "scope": " ".join(PLATFORM_SCOPES)}
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

    _PRODUCT_FIELDS = "productId,productCode,productName,size,color,groupCode,stockControlDivision"

    def iter_products(self) -> Iterator[SmaregiProduct]:
        """Every product of the contract, in productId order, fetched 1000 a page."""
        for row in self._pages("/products", {"fields": self._PRODUCT_FIELDS, "sort": "productId"}):
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
                row = self._request("GET", f"/products/{quote(one, safe='')}",
                                    params={"fields": self._PRODUCT_FIELDS})
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

    def test_connection(self) -> str:
        """Obtain a token, count the products and check the store; describe what was found."""
        products = sum(1 for _ in self._pages("/products", {"fields": "productId"}))
        try:
            self._request("GET", "/stock", params={"store_id": self.store_id, "limit": 1})
        except PlatformError as exc:
            if exc.code == "bad_request":  # unknown store: 400 (doc §3.9), a setting to fix
                raise AuthError(f"Smaregi store {self.store_id} was refused: {exc}", code="store",
                                status=exc.status) from exc
            raise
        return f"プラットフォームAPI: 商品 {products} 件、店舗 {self.store_id}"


SmaregiClient = LegacySmaregiClient | PlatformSmaregiClient


def make_smaregi_client(settings: dict, session: requests.Session | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> SmaregiClient:
    """The client the settings ask for; incomplete settings raise :class:`AuthError` (code ``config``).

    Keys (``stocklink.services.merchant_settings`` ``smaregi.*`` without the prefix): ``api_generation``,
    ``contract_id``, ``access_token``, ``client_id``, ``client_secret``, ``store_id``, and the
    base URLs ``legacy_base_url``, ``platform_id_base_url``, ``platform_api_base_url``.
    """
    generation = settings.get("api_generation") or "legacy"
    required = {"legacy": ("contract_id", "access_token", "store_id"),
                "platform": ("contract_id", "client_id", "client_secret", "store_id")}.get(generation)
    if required is None:
        raise AuthError(f"unknown Smaregi API generation {generation!r}", code="config")
    missing = [key for key in required if not str(settings.get(key) or "").strip()]
    if missing:
        raise AuthError(f"Smaregi settings incomplete: {', '.join(missing)}", code="config")
    if generation == "legacy":
        return LegacySmaregiClient(settings.get("legacy_base_url") or LEGACY_BASE_URL,
                                   settings["contract_id"], settings["access_token"], settings["store_id"],
                                   session=session, timeout=timeout)
    return PlatformSmaregiClient(settings.get("platform_id_base_url") or PLATFORM_ID_BASE_URL,
                                 settings.get("platform_api_base_url") or PLATFORM_API_BASE_URL,
                                 settings["contract_id"], settings["client_id"], settings["client_secret"],
                                 settings["store_id"], session=session, timeout=timeout)
