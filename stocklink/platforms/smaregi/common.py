"""What both Smaregi clients share: production URLs, rate pacing, the product and stock-change
records, and the parsing of values both generations send (platform-apis-smaregi.md)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import requests

from stocklink.domain.linking import is_stock_managed
from stocklink.platforms.base import (
    PlatformError,
    TemporaryError,
    retry_after_seconds,
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

# The product image's URL. Its name in product reads is NOT FOUND in the stored docs; Smaregi's
# image registration (``PUT /products/{id}/image``) and its completion callback call it
# ``imageUrl``, and both generations are read by that name. Product reads therefore ask for
# every column (no ``fields``): a column name Smaregi does not know would make it refuse the
# whole read, while a missing column only leaves ``image_url`` None.
IMAGE_FIELD = "imageUrl"


@dataclass
class SmaregiProduct:
    """One Smaregi product (商品). Variants of a group are separate products sharing ``group_code``."""

    product_id: str
    code: str | None
    name: str
    size: str | None
    color: str | None
    group_code: str | None
    stock_managed: bool  # stockControlDivision (doc §3.8, §4.2), read by domain.linking.is_stock_managed
    image_url: str | None = None  # the product image (:data:`IMAGE_FIELD`); None without one


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
        stock_managed=is_stock_managed(row.get("stockControlDivision")),
        image_url=_text(row.get(IMAGE_FIELD)),
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
