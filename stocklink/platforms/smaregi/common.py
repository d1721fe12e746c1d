"""What both Smaregi clients share: production URLs, rate pacing, the product and stock-change
records, and the parsing of values both generations send (platform-apis-smaregi.md)."""
from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
# What registering web sales adds (doc §3.10 ``pos.transactions:write``; the shipments scope is
# modelled, its name NOT FOUND). Asked for only by a client built with ``register_sales``, so an
# app without them keeps syncing stock.
SALE_SCOPES = ("pos.transactions:read", "pos.transactions:write", "pos.shipments:read", "pos.shipments:write")

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


# Web sales registered in Smaregi (issue 14; seed 001 出荷, seed 003 取引).
SALE_MODES = ("shipment", "transaction")
REFERENCE_MAX = 32  # identificationNo ≤ 32 characters (doc §3.11, the 出庫 field 出荷 is modelled on)
# Shipment status. The legacy Shipment table has a ``status`` column (doc §1.5) whose values are
# NOT FOUND; these two are modelled (the sandbox uses them): a registered shipment is shipped,
# a cancelled one keeps its row with status 9 so that it can still be found by its reference.
SHIPMENT_SHIPPED, SHIPMENT_CANCELLED = "1", "9"
# The window around ``occurred_at`` a Platform transaction is looked for in
# (``terminal_tran_date_time-from/-to``, doc §3.10): the sale's time as stocklink sent it.
FIND_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class SaleLine:
    """One line of a web sale: a Smaregi product, pieces sold, the unit price in yen (tax
    included) or None when the order does not say (allowed for shipments only)."""

    product_id: str  # Smaregi productId
    quantity: int
    unit_price: int | None = None


@dataclass(frozen=True)
class SaleRegistration:
    """A web sale to register in Smaregi as a shipment (出荷) or a transaction (取引).

    ``reference`` is stocklink's idempotency key; it is written into the Smaregi record
    (shipment: ``identificationNo``; transaction: ``memo``, see the clients) and is how
    ``find_sale`` finds the record again. Invalid values raise :class:`ValueError` at
    construction: a mode other than :data:`SALE_MODES`, an empty or longer than 32
    characters reference, no lines, a quantity below 1, a transaction line without a price.
    """

    mode: str  # "shipment" | "transaction"
    reference: str
    lines: tuple[SaleLine, ...]
    occurred_at: datetime  # aware; when the web order was placed
    memo: str = ""

    def __post_init__(self):
        if self.mode not in SALE_MODES:
            raise ValueError(f"mode must be one of {', '.join(SALE_MODES)}: {self.mode!r}")
        if not self.reference or len(self.reference) > REFERENCE_MAX or not self.reference.isprintable() \
                or self.reference != self.reference.strip():
            raise ValueError(f"reference must be 1–{REFERENCE_MAX} printable characters: {self.reference!r}")
        if not self.lines:
            raise ValueError("a sale needs at least one line")
        for line in self.lines:
            if not str(line.product_id).isdigit():
                raise ValueError(f"productId must be digits: {line.product_id!r}")
            if int(line.quantity) < 1:
                raise ValueError(f"quantity must be at least 1 (product {line.product_id})")
            if self.mode == "transaction" and line.unit_price is None:
                raise ValueError(f"a transaction line needs a unit price (product {line.product_id})")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


class UnknownOutcome(TemporaryError):
    """Smaregi accepted a registration but its answer does not name the record (or the legacy
    read-back failed): ``outcome_unknown`` like a timeout, settled with ``find_sale``."""

    @property
    def outcome_unknown(self) -> bool:
        return True


@dataclass(frozen=True)
class FoundSale:
    """A registration found in Smaregi by its reference: Smaregi's id and whether it is cancelled."""

    smaregi_id: str
    cancelled: bool


def pick_found(candidates: Iterable[tuple[str, bool]]) -> FoundSale | None:
    """The record found from ``(id, cancelled)`` pairs: the first live one, else the first cancelled."""
    found = [FoundSale(smaregi_id, cancelled) for smaregi_id, cancelled in candidates]
    return next((f for f in found if not f.cancelled), found[0] if found else None)


def sale_memo(registration: SaleRegistration) -> str:
    """The memo written into a transaction: the reference tag first, the sale's memo after it."""
    tag = f"stocklink:{registration.reference}"
    return f"{tag} {registration.memo}".strip()[:MEMO_MAX] if registration.memo else tag


MEMO_MAX = 1000  # memo ≤ 1000 characters (doc §3.11, 出庫; the transaction limit is NOT FOUND)


def memo_has_reference(memo: str | None, reference: str) -> bool:
    """Whether a Smaregi memo was written by :func:`sale_memo` for ``reference``."""
    tag = f"stocklink:{reference}"
    return memo is not None and (memo == tag or memo.startswith(tag + " "))


def terminal_tran_id(reference: str) -> str:
    """The 端末取引ID a transaction is registered with: derived from the reference (CRC-32, at
    most 10 digits), so every attempt of one registration carries the same one."""
    return str(zlib.crc32(reference.encode("utf-8")) or 1)


def sale_time(moment: datetime, generation: str) -> str:
    """``occurred_at`` as each generation writes datetimes (doc §1.5 legacy, §3.4 Platform), JST."""
    moment = moment.astimezone(JST)
    if generation == "legacy":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.isoformat(timespec="seconds")
