"""A simulated Smaregi: both API generations, the POS side, and the stock notifications.

:class:`SmaregiSandbox` is the thread-safe in-memory state (products, stock per store, 在庫変動履歴,
issued tokens, the send history, failure knobs) with Python methods for what happens at the
POS (``sell``, ``stocktake``, ``loss``, ``ship``, ``correct``) and for web sales registered
through an API (``register_shipment``, ``register_transaction`` and their cancels, with
``fail_next_registration``). :func:`create_app` serves it: the legacy ``POST /access/``
(:mod:`.smaregi_legacy`), the Platform token and ``/pos`` API (:mod:`.smaregi_platform`), the
registrations of both (:mod:`.smaregi_sales`) and the ``/sandbox/`` control surface
(:mod:`.smaregi_control`).

Behaviour follows /work/shared/platform-apis-smaregi.md; where that doc says NOT FOUND the
behaviour is an attribute here, set conservatively. Serve it with :func:`serve_smaregi`:
the legacy headers ``X_contract_id``/``X_access_token`` contain underscores, which
werkzeug's server (like gunicorn and nginx) silently drops.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import urlencode

import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from stocklink.sandbox.server import RunningServer

JST = timezone(timedelta(hours=9), "JST")
STOCK_MIN, STOCK_MAX = -999_999_999, 999_999_999  # doc §3.9
WEBHOOK_USER_AGENT = "Smaregi-Platform-Api-Webhook/1.2.4(sandbox)"  # captured requests, doc §3.12
APP_SCOPES = ("pos.products:read", "pos.products:write", "pos.stock:read", "pos.stock:write",
              "pos.stock-changes:read", "pos.stores:read", "pos.transactions:read", "pos.transactions:write",
              "pos.shipments:read", "pos.shipments:write")

# 在庫区分 (doc §4.1)
CORRECTION, SALE, STOCKTAKE, SHIPMENT, RETURN, LOSS, API_WRITE = "01", "02", "08", "10", "12", "14", "15"
STOCK_DIVISIONS = {f"{n:02d}" for n in range(1, 19)}

FAILURE_KINDS = ("500", "maintenance", "expired_token", "slow", "429")
# Faults of the registration calls only (shipments and transactions, create and cancel, both
# generations): "500" / "maintenance" refuse without applying; "drop" applies the registration,
# then closes the connection without an answer; "timeout" applies it, then answers only after
# ``seconds`` (longer than the client waits). Both leave the client with an unknown outcome.
REGISTRATION_FAILURE_KINDS = ("500", "maintenance", "drop", "timeout")
# Modelled shipment statuses (NOT FOUND, doc §1.5): shipped, and cancelled with the row kept.
SHIPMENT_SHIPPED, SHIPMENT_CANCELLED = "1", "9"
CONFIG_KEYS = {
    "contract_id", "access_token", "client_id", "client_secret", "app_scopes", "token_lifetime",
    "notify_url", "notify_mode", "notify_timeout", "webhook_secret_header", "webhook_secret",
    "legacy_send_proc_name", "platform_write_division", "reject_unmanaged_writes",
    "disabled_functions", "allowed_ips", "rate_limit", "default_store_id",
}


def now_jst() -> datetime:
    return datetime.now(JST).replace(microsecond=0)


def legacy_time(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` JST, the legacy API's datetime (doc §1.5)."""
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def platform_time(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+09:00``, the Platform API's datetime (doc §3.4)."""
    return moment.astimezone(JST).isoformat(timespec="seconds")


class SandboxError(ValueError):
    """An operation the simulated Smaregi refuses; ``kind`` lets each API pick its own error."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # unknown_product | unknown_store | out_of_range | unmanaged | invalid


class Move(NamedTuple):
    """One stock movement to record: ``value`` is a delta if ``relative``, else the new stock."""

    product_id: str
    store_id: str
    value: int
    relative: bool
    division: str
    memo: str = ""


@dataclass
class Product:
    product_id: str
    name: str
    code: str | None = None
    price: int = 0
    group_code: str | None = None
    size: str | None = None
    color: str | None = None
    stock_control_division: str = "0"  # "0" 在庫管理対象, "1" 在庫管理対象外 (doc §3.8)
    category_id: str = "1"
    image_url: str | None = None  # the product image, as ``imageUrl`` (name NOT FOUND, see common.IMAGE_FIELD)
    created: datetime = field(default_factory=now_jst)
    updated: datetime = field(default_factory=now_jst)

    def row(self, timefmt) -> dict[str, str | None]:
        """The product as both APIs answer it: every value a string (doc §1.5, §3.4)."""
        return {"productId": self.product_id, "categoryId": self.category_id, "productCode": self.code,
                "productName": self.name, "taxDivision": "0", "price": str(self.price),
                "groupCode": self.group_code, "size": self.size, "color": self.color,
                "stockControlDivision": self.stock_control_division, "displayFlag": "1",
                "division": "0", "salesDivision": "0", "imageUrl": self.image_url,
                "insDateTime": timefmt(self.created), "updDateTime": timefmt(self.updated)}


@dataclass
class StockRow:
    store_id: str
    product_id: str
    amount: int
    layaway: int = 0
    updated: datetime = field(default_factory=now_jst)

    def row(self, timefmt) -> dict[str, str]:
        return {"storeId": self.store_id, "productId": self.product_id, "stockAmount": str(self.amount),
                "layawayStockAmount": str(self.layaway), "updDateTime": timefmt(self.updated)}


@dataclass
class StockChange:
    """One 在庫変動履歴 (StockHistory) row: ``amount`` is the delta, ``stock_amount`` the result."""

    id: int
    product_id: str
    store_id: str
    amount: int
    stock_amount: int
    division: str
    at: datetime
    layaway: int = 0
    from_store: str | None = None
    to_store: str | None = None
    memo: str = ""

    def legacy_row(self) -> dict[str, str | None]:
        """Legacy ``StockHistory`` fields (doc §1.5, sumarejidump fixture)."""
        return {"id": str(self.id), "updDateTime": legacy_time(self.at),
                "targetDateTime": legacy_time(self.at), "productId": self.product_id,
                "storeId": self.store_id, "amount": str(self.amount),
                "stockAmount": str(self.stock_amount), "stockDivision": self.division,
                "fromStoreId": self.from_store, "toStoreId": self.to_store}

    def platform_row(self) -> dict[str, str | None]:
        """``GET /stock/changes`` fields (doc §3.9)."""
        return {"id": str(self.id), "updDateTime": platform_time(self.at),
                "targetDateTime": platform_time(self.at), "productId": self.product_id,
                "storeId": self.store_id, "amount": str(self.amount), "stockAmount": str(self.stock_amount),
                "layawayStockAmount": str(self.layaway), "stockDivision": self.division,
                "fromStoreId": self.from_store, "toStoreId": self.to_store, "memo": self.memo,
                "staffId": None, "staffName": None}

    def send_row(self) -> dict[str, str]:
        """A row of the legacy 在庫情報送信 (doc §2.2, kecbigmt parser)."""
        return {"storeId": self.store_id, "productId": self.product_id, "amount": str(self.amount),
                "stockAmount": str(self.stock_amount), "layawayStockAmount": str(self.layaway),
                "stockDivision": self.division, "fromStoreId": self.from_store or "",
                "toStoreId": self.to_store or "", "updDateTime": legacy_time(self.at)}


@dataclass
class Attempt:
    at: datetime
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    response_body: str
    ok: bool


@dataclass
class Send:
    """One outgoing notification (API送信履歴); a resend re-posts ``body`` and ``headers`` as they are."""

    id: int
    mode: str
    url: str
    headers: dict[str, str]
    body: bytes
    payload: dict
    created: datetime
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def ok(self) -> bool:
        return bool(self.last and self.last.ok)

    @property
    def status(self) -> str:
        """成功 / 失敗 / 送信中, as the API送信履歴一覧 shows it (doc §2.4)."""
        if self.last is None:
            return "sending"
        return "success" if self.last.ok else "failed"

    def to_json(self) -> dict:
        last = self.last
        return {"id": self.id, "mode": self.mode, "url": self.url, "time": self.created.isoformat(),
                "status": self.status, "status_code": last.status if last else None,
                "response_body": last.response_body if last else None, "headers": self.headers,
                "payload": self.payload,
                "attempts": [{"time": a.at.isoformat(), "status_code": a.status, "ok": a.ok,
                              "response_body": a.response_body} for a in self.attempts]}


@dataclass
class ShipmentLine:
    product_id: str
    quantity: int
    cost: int | None = None
    memo: str = ""


@dataclass
class Shipment:
    """A 出荷 (shipment to a non-store recipient), modelled on the legacy ``Shipment`` /
    ``ShipmentDetail`` tables (doc §1.5); the Platform ``/shipments`` path uses the same fields
    (its official schema is NOT FOUND, doc §3.11)."""

    id: int
    store_id: str
    identification_no: str
    shipment_date: datetime
    lines: list[ShipmentLine]
    recipient_name: str = ""
    memo: str = ""
    status: str = SHIPMENT_SHIPPED
    modified: datetime = field(default_factory=now_jst)
    change_ids: list[int] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.status == SHIPMENT_CANCELLED

    def row(self, timefmt) -> dict[str, str | None]:
        """The head as both APIs answer it, every value a string."""
        return {"shipmentId": str(self.id), "shipmentStoreId": self.store_id, "recipientType": "2",
                "recipientId": None, "recipientName": self.recipient_name or None, "shipmentDivision": "1",
                "shipmentDate": self.shipment_date.astimezone(JST).strftime("%Y-%m-%d"),
                "status": self.status, "identificationNo": self.identification_no, "memo": self.memo,
                "modified": timefmt(self.modified)}

    def detail_rows(self, products: dict[str, Product], timefmt) -> list[dict[str, str | None]]:
        rows = []
        for line in self.lines:
            product = products.get(line.product_id)
            rows.append({"shipmentId": str(self.id), "productId": line.product_id,
                         "productCode": product.code if product else None,
                         "productName": product.name if product else None,
                         "size": product.size if product else None, "color": product.color if product else None,
                         "groupCode": product.group_code if product else None, "supplierProductNo": None,
                         "cost": None if line.cost is None else str(line.cost), "quantity": str(line.quantity),
                         "memo": line.memo, "modified": timefmt(self.modified)})
        return rows


@dataclass
class TransactionLine:
    detail_id: int
    product_id: str
    quantity: int
    sales_price: int
    price: int
    division: str = "1"  # transactionDetailDivision 1 通常 (doc §4.2)


@dataclass
class Transaction:
    """A 取引 (transaction head with its details, doc §3.10); 取消 sets ``cancel_division`` "1"
    on it and keeps it (no counter-record)."""

    id: int
    store_id: str
    terminal_id: str
    terminal_tran_id: str
    terminal_tran_at: datetime
    subtotal: int
    total: int
    lines: list[TransactionLine]
    division: str = "1"  # transactionHeadDivision 1 通常
    memo: str = ""
    cancel_division: str = "0"
    created: datetime = field(default_factory=now_jst)
    updated: datetime = field(default_factory=now_jst)
    change_ids: list[int] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel_division == "1"

    def row(self, timefmt) -> dict[str, str | None]:
        return {"transactionHeadId": str(self.id), "transactionDateTime": timefmt(self.created),
                "transactionHeadDivision": self.division, "cancelDivision": self.cancel_division,
                "disposeDivision": "0", "subtotal": str(self.subtotal), "total": str(self.total),
                "storeId": self.store_id, "terminalId": self.terminal_id, "terminalTranId": self.terminal_tran_id,
                "terminalTranDateTime": timefmt(self.terminal_tran_at), "memo": self.memo,
                "sumDate": self.terminal_tran_at.astimezone(JST).strftime("%Y-%m-%d"),
                "updDateTime": timefmt(self.updated)}

    def detail_rows(self) -> list[dict[str, str]]:
        return [{"transactionHeadId": str(self.id), "transactionDetailId": str(line.detail_id),
                 "transactionDetailDivision": line.division, "productId": line.product_id,
                 "price": str(line.price), "salesPrice": str(line.sales_price), "quantity": str(line.quantity)}
                for line in self.lines]


@dataclass
class Token:
    value: str
    contract_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class Failure:
    kind: str
    remaining: int
    seconds: float


class SmaregiSandbox:
    """The state of one simulated Smaregi contract. Every public method is thread-safe.

    Notifications are sent with the lock released, so a receiver may call back into the
    sandbox while it handles one.
    """

    def __init__(self, contract_id: str = "sb_demo001", access_token: str = "sandbox-access-token",
                 client_id: str = "sandbox-client-id", client_secret: str = "sandbox-client-secret",
                 stores: dict[str, str] | None = None):
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._send_ids = itertools.count(1)
        self.contract_id = contract_id
        self.access_token = access_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_scopes: set[str] = set(APP_SCOPES)
        self.token_lifetime = 3600  # "現在のところ3600秒" (doc §3.3)
        self.stores: dict[str, str] = dict(stores or {"1": "本店"})
        self.default_store_id = next(iter(self.stores))
        self.products: dict[str, Product] = {}
        self.stock: dict[tuple[str, str], StockRow] = {}
        self.history: list[StockChange] = []
        self.tokens: dict[str, Token] = {}
        self.tokens_issued = 0
        self.notify_url: str | None = None
        self.notify_mode = "legacy"  # legacy | platform
        self.notify_timeout = 10.0
        self.webhook_secret_header: str | None = None  # e.g. x-sdsch-secret (doc §3.12)
        self.webhook_secret: str | None = None
        self.legacy_send_proc_name: str | None = "stock_upd"  # NOT FOUND (doc §2.2); None omits it
        self.platform_write_division = API_WRITE  # NOT FOUND (doc §3.9): 15 or 01
        self.reject_unmanaged_writes = False  # NOT FOUND (doc §3.8)
        self.disabled_functions: set[str] = set()  # legacy error 23 (doc §1.2)
        self.allowed_ips: set[str] | None = None  # legacy error 24
        self.rate_limit: tuple[int, int] | None = None  # (GET/s, writes/s); sandbox plan 10/4 (doc §3.7)
        self.sends: list[Send] = []
        self.api_log: list[str] = []
        self.registration_log: list[tuple[str, dict]] = []  # (proc_name or "METHOD path", body) as received
        self._failures: list[Failure] = []
        self._registration_failures: list[Failure] = []
        self.shipments: dict[int, Shipment] = {}
        self.transactions: dict[int, Transaction] = {}
        self._shipment_ids = itertools.count(1)
        self._transaction_ids = itertools.count(1)
        self._rate_window: tuple[int, int, int] = (0, 0, 0)
        self._threads: list[threading.Thread] = []
        # Smaregi's timestamps have whole seconds; a test may hold the clock still so that
        # movements land in one second (their legacy notifications are then byte-identical).
        self.clock = now_jst

    def configure(self, **values) -> None:
        """Set any of :data:`CONFIG_KEYS` (notify_url, notify_mode, credentials, knobs)."""
        unknown = set(values) - CONFIG_KEYS
        if unknown:
            raise SandboxError("invalid", f"unknown setting: {', '.join(sorted(unknown))}")
        if values.get("notify_mode", "legacy") not in ("legacy", "platform"):
            raise SandboxError("invalid", "notify_mode must be legacy or platform")
        with self._lock:
            for key, value in values.items():
                if key in ("app_scopes", "disabled_functions", "allowed_ips") and value is not None:
                    value = set(value)
                if key == "rate_limit" and value is not None:
                    value = (int(value[0]), int(value[1]))
                if key in ("token_lifetime",):
                    value = int(value)
                if key == "notify_timeout":
                    value = float(value)
                if key == "reject_unmanaged_writes":
                    value = value in (True, "1", "true", "on")
                setattr(self, key, value)

    def add_store(self, store_id: str, name: str) -> None:
        with self._lock:
            self.stores[str(store_id)] = name

    def add_product(self, product_id: str, name: str, *, code: str | None = None, price: int = 0,
                    group_code: str | None = None, size: str | None = None, color: str | None = None,
                    stock_control_division: str = "0", stock: int | None = None,
                    store_id: str | None = None, image_url: str | None = None) -> Product:
        """Register a product; ``stock`` (if given) creates its stock row with a 01 修正 history row;
        ``image_url`` is its image (null in both APIs without one).

        Without ``stock`` the product has no stock row, as in Smaregi before its first movement.
        """
        product_id = str(product_id)
        if not product_id.isdigit() or len(product_id) > 15:  # productId ≤ 15 digits (doc §3.9)
            raise SandboxError("invalid", f"productId must be 1–15 digits: {product_id!r}")
        if stock_control_division not in ("0", "1"):
            raise SandboxError("invalid", "stockControlDivision must be 0 or 1")
        product = Product(product_id, name, code=code, price=price, group_code=group_code, size=size,
                          color=color, stock_control_division=stock_control_division, image_url=image_url)
        with self._lock:
            if product_id in self.products:
                raise SandboxError("invalid", f"product {product_id} exists")
            self.products[product_id] = product
            if stock is not None:
                self.seed_stock(product_id, stock, store_id)
        return product

    def seed_stock(self, product_id: str, stock: int, store_id: str | None = None) -> StockChange:
        """Set a stock silently (a 01 修正 history row, no notification): for loading demo data."""
        store = str(store_id or self.default_store_id)
        return self._record([Move(str(product_id), store, int(stock), False, CORRECTION, "初期在庫")])[0]

    def stock_of(self, product_id: str, store_id: str | None = None) -> int | None:
        """The stock of one product in a store, or None when it has no stock row yet."""
        with self._lock:
            row = self.stock.get((str(store_id or self.default_store_id), str(product_id)))
            return None if row is None else row.amount

    def _record(self, moves: Iterable[Move], skip_unmanaged: bool = False) -> list[StockChange]:
        """Apply the moves all or none (bounds ±999999999, doc §3.9); returns the history rows."""
        moves = list(moves)
        with self._lock:
            planned: dict[tuple[str, str], int] = {}
            for product_id, store_id, value, relative, _division, _memo in moves:
                product = self.products.get(product_id)
                if product is None:
                    raise SandboxError("unknown_product",
                                       f"指定されたIDのリソースが見つかりません ({product_id})")
                if store_id not in self.stores:
                    raise SandboxError("unknown_store", "指定された店舗IDのリソースが見つかりません")
                key = (store_id, product_id)
                current = planned.get(key, self.stock[key].amount if key in self.stock else 0)
                new = current + value if relative else value
                if new > STOCK_MAX:
                    raise SandboxError("out_of_range",
                                       f"更新後の在庫数は[{STOCK_MAX}]以下である必要があります")
                if new < STOCK_MIN:
                    raise SandboxError("out_of_range",
                                       f"更新後の在庫数は[{STOCK_MIN}]以上である必要があります")
                planned[key] = new
            changes = []
            at = self.clock()
            for product_id, store_id, value, relative, division, memo in moves:
                if skip_unmanaged and self.products[product_id].stock_control_division == "1":
                    continue  # POS movements skip 在庫管理対象外 products
                key = (store_id, product_id)
                row = self.stock.setdefault(key, StockRow(store_id, product_id, 0, updated=at))
                new = row.amount + value if relative else value
                change = StockChange(next(self._ids), product_id, store_id, new - row.amount, new, division,
                                     at, layaway=row.layaway, memo=memo)
                row.amount, row.updated = new, at
                self.history.append(change)
                changes.append(change)
            return changes

    def _pos(self, lines: Iterable[tuple[str, int]], store_id: str | None, division: str, memo: str,
             relative: bool = True, sign: int = -1) -> list[StockChange]:
        store = str(store_id or self.default_store_id)
        moves = [Move(str(pid), store, sign * int(qty) if relative else int(qty), relative, division, memo)
                 for pid, qty in lines]
        changes = self._record(moves, skip_unmanaged=True)
        self._notify(changes, wait=True)
        return changes

    def sell(self, lines: Iterable[tuple[str, int]], store_id: str | None = None) -> list[StockChange]:
        """A POS sale (在庫区分 02) of several lines: one notification carrying every row."""
        return self._pos(lines, store_id, SALE, "POS売上")

    def refund(self, lines: Iterable[tuple[str, int]], store_id: str | None = None) -> list[StockChange]:
        """A POS return (在庫区分 12 返品) of several lines: the pieces come back, one notification."""
        return self._pos(lines, store_id, RETURN, "POS返品", sign=1)

    def ship(self, lines: Iterable[tuple[str, int]], store_id: str | None = None) -> list[StockChange]:
        """A 出荷 (在庫区分 10) of several lines: one notification."""
        return self._pos(lines, store_id, SHIPMENT, "出荷")

    def loss(self, product_id: str, quantity: int, store_id: str | None = None) -> list[StockChange]:
        """A ロス (在庫区分 14) of ``quantity`` pieces."""
        return self._pos([(product_id, quantity)], store_id, LOSS, "ロス")

    def stocktake(self, product_id: str, stock: int, store_id: str | None = None) -> list[StockChange]:
        """A 棚卸 (在庫区分 08) result: the counted ``stock`` becomes the stock."""
        return self._pos([(product_id, stock)], store_id, STOCKTAKE, "棚卸", relative=False)

    def correct(self, product_id: str, stock: int, store_id: str | None = None) -> list[StockChange]:
        """A manual 修正 (在庫区分 01) in 管理画面: the stock is set to ``stock``."""
        return self._pos([(product_id, stock)], store_id, CORRECTION, "在庫修正", relative=False)

    def register_shipment(self, store_id: str, lines: list[ShipmentLine], identification_no: str,
                          shipment_date: datetime, recipient_name: str = "", memo: str = "") -> Shipment:
        """A 出荷 registered through an API: stock leaves the store (在庫区分 10) and the change is
        notified as every stock movement is, echo included. :raise SandboxError: bad lines."""
        if not lines:
            raise SandboxError("invalid", "details are required")
        if len(identification_no) > 32:
            raise SandboxError("invalid", "identificationNo は32文字以内で指定してください")
        if any(line.quantity < 1 or line.quantity > 99_999 for line in lines):
            raise SandboxError("invalid", "quantity は1〜99999で指定してください")
        with self._lock:
            self._store_exists(store_id)
            moves = [Move(line.product_id, store_id, -line.quantity, True, SHIPMENT, f"出荷 {identification_no}")
                     for line in lines]
            changes = self._record(moves, skip_unmanaged=True)
            shipment = Shipment(next(self._shipment_ids), store_id, identification_no, shipment_date,
                                list(lines), recipient_name=recipient_name, memo=memo, modified=self.clock(),
                                change_ids=[c.id for c in changes])
            self.shipments[shipment.id] = shipment
        self._notify(changes, wait=False)
        return shipment

    def cancel_shipment(self, shipment_id: int) -> Shipment:
        """Cancel a shipment (modelled, doc §3.11): the pieces come back (在庫区分 10, plus) and the
        row stays with status 9. Cancelling a cancelled one changes nothing. :raise SandboxError:
        unknown id (kind ``not_found``)."""
        with self._lock:
            shipment = self.shipments.get(int(shipment_id))
            if shipment is None:
                raise SandboxError("not_found", f"出荷 {shipment_id} が見つかりません")
            if shipment.cancelled:
                return shipment
            moves = [Move(line.product_id, shipment.store_id, line.quantity, True, SHIPMENT,
                          f"出荷取消 {shipment.identification_no}") for line in shipment.lines]
            changes = self._record(moves, skip_unmanaged=True)
            shipment.status, shipment.modified = SHIPMENT_CANCELLED, self.clock()
            shipment.change_ids += [c.id for c in changes]
        self._notify(changes, wait=False)
        return shipment

    def register_transaction(self, store_id: str, terminal_id: str, terminal_tran_id: str,
                             terminal_tran_at: datetime, subtotal: int, total: int,
                             lines: list[TransactionLine], memo: str = "", division: str = "1") -> Transaction:
        """A 取引 registered through an API: the pieces leave the store (在庫区分 02 売上), notified
        as every stock movement is. :raise SandboxError: subtotal ≠ Σ salesPrice × quantity,
        bad detail ids or divisions, unknown store or product."""
        if not lines:
            raise SandboxError("invalid", "details は必須です")
        if subtotal != sum(line.sales_price * line.quantity for line in lines):
            raise SandboxError("invalid", "subtotal は明細の合計と一致する必要があります")
        if any(not 1 <= line.detail_id <= 999 or line.division not in ("1", "2", "3") for line in lines):
            raise SandboxError("invalid", "transactionDetailId は1〜999、transactionDetailDivision は1〜3です")
        if division != "1":
            raise SandboxError("invalid", "transactionHeadDivision 1 (通常) only in the sandbox")
        with self._lock:
            self._store_exists(store_id)
            moves = [Move(line.product_id, store_id, -line.quantity if line.division != "2" else line.quantity,
                          True, SALE, f"取引 {terminal_id}-{terminal_tran_id}")
                     for line in lines if line.division != "3"]
            changes = self._record(moves, skip_unmanaged=True)
            at = self.clock()
            transaction = Transaction(next(self._transaction_ids), store_id, terminal_id, terminal_tran_id,
                                      terminal_tran_at, subtotal, total, list(lines), division=division,
                                      memo=memo, created=at, updated=at, change_ids=[c.id for c in changes])
            self.transactions[transaction.id] = transaction
        self._notify(changes, wait=False)
        return transaction

    def cancel_transaction(self, transaction_id: int) -> Transaction:
        """取消 (doc §3.10): cancelDivision becomes "1" on the original and the pieces come back
        (在庫区分 02, plus). Cancelling a cancelled one changes nothing. :raise SandboxError: unknown id."""
        with self._lock:
            transaction = self.transactions.get(int(transaction_id))
            if transaction is None:
                raise SandboxError("not_found", f"取引 {transaction_id} が見つかりません")
            if transaction.cancelled:
                return transaction
            moves = [Move(line.product_id, transaction.store_id,
                          line.quantity if line.division != "2" else -line.quantity, True, SALE,
                          f"取引取消 {transaction.terminal_id}-{transaction.terminal_tran_id}")
                     for line in transaction.lines if line.division != "3"]
            changes = self._record(moves, skip_unmanaged=True)
            transaction.cancel_division, transaction.updated = "1", self.clock()
            transaction.change_ids += [c.id for c in changes]
        self._notify(changes, wait=False)
        return transaction

    def shipment_records(self) -> list[Shipment]:
        """Copies of the shipments, oldest first."""
        with self._lock:
            return [replace(s, lines=list(s.lines), change_ids=list(s.change_ids)) for s in self.shipments.values()]

    def transaction_records(self) -> list[Transaction]:
        """Copies of the transactions, oldest first."""
        with self._lock:
            return [replace(t, lines=list(t.lines), change_ids=list(t.change_ids))
                    for t in self.transactions.values()]

    def _store_exists(self, store_id: str) -> None:
        if store_id not in self.stores:
            raise SandboxError("unknown_store", "指定された店舗IDのリソースが見つかりません")

    def fail_next_registration(self, kind: str, count: int = 1, seconds: float = 3.0) -> None:
        """Make the next ``count`` registration calls (:data:`REGISTRATION_FAILURE_KINDS`) fail."""
        if kind not in REGISTRATION_FAILURE_KINDS:
            raise SandboxError("invalid", f"kind must be one of {', '.join(REGISTRATION_FAILURE_KINDS)}")
        with self._lock:
            self._registration_failures.append(Failure(kind, int(count), float(seconds)))

    def take_registration_failure(self) -> Failure | None:
        with self._lock:
            while self._registration_failures and self._registration_failures[0].remaining <= 0:
                self._registration_failures.pop(0)
            if not self._registration_failures:
                return None
            failure = self._registration_failures[0]
            failure.remaining -= 1
            return Failure(failure.kind, 1, failure.seconds)

    def api_write(self, moves: list[Move], *, notify: bool) -> list[StockChange]:
        """A write through an API: legacy ``stock_upd`` (``notify=False``, doc §2.5) or Platform (echo)."""
        if self.reject_unmanaged_writes:
            with self._lock:
                for move in moves:
                    product = self.products.get(move.product_id)
                    if product is not None and product.stock_control_division == "1":
                        raise SandboxError("unmanaged", f"在庫管理対象外の商品です ({move.product_id})")
        changes = self._record(moves)
        if notify:
            self._notify(changes, wait=False)  # webhooks are asynchronous to the API call
        return changes

    def _notify(self, changes: list[StockChange], *, wait: bool) -> Send | None:
        """Send one notification for ``changes`` in :attr:`notify_mode`, if a URL is configured."""
        with self._lock:
            if not changes or not self.notify_url:
                return None
            send = self._build_send(changes)
            self.sends.append(send)
        if wait:
            self._deliver(send)
        else:
            thread = threading.Thread(target=self._deliver, args=(send,), name=f"smaregi-send-{send.id}",
                                      daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()
        return send

    def _build_send(self, changes: list[StockChange]) -> Send:
        if self.notify_mode == "legacy":
            # 在庫情報送信 (doc §2.2): form POST, params = data[].table_name/rows, the two legacy headers.
            params = {"data": [{"table_name": "Stock", "rows": [c.send_row() for c in changes]}]}
            form = {"params": json.dumps(params, ensure_ascii=False)}
            if self.legacy_send_proc_name:
                form = {"proc_name": self.legacy_send_proc_name, **form}
            headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
                       "X_contract_id": self.contract_id, "X_access_token": self.access_token}
            payload = {**form, "params": params}
            body = urlencode(form).encode("ascii")
        else:
            # pos:stock webhook (doc §3.12): no quantities, ids[].id is the 在庫変動履歴ID.
            payload = {"contractId": self.contract_id, "event": "pos:stock", "action": "edited",
                       "ids": [{"id": str(c.id), "productId": c.product_id, "storeId": c.store_id}
                               for c in changes]}
            headers = {"Content-Type": "application/json", "User-Agent": WEBHOOK_USER_AGENT,
                       "Smaregi-Event": "pos:stock", "Smaregi-Event-Id": str(uuid.uuid4()),
                       "Smaregi-Contract-Id": self.contract_id}
            if self.webhook_secret_header and self.webhook_secret:
                headers[self.webhook_secret_header] = self.webhook_secret
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return Send(next(self._send_ids), self.notify_mode, self.notify_url, headers, body, payload,
                    now_jst())

    def _deliver(self, send: Send) -> None:
        """POST the send once; any non-2xx answer or transport failure marks it 失敗 (doc §2.3)."""
        try:
            response = requests.post(send.url, data=send.body, headers=send.headers,
                                     timeout=self.notify_timeout)
            status = response.status_code
            attempt = Attempt(now_jst(), status, response.text[:2000], 200 <= status < 300)
        except requests.RequestException as exc:
            attempt = Attempt(now_jst(), None, f"{type(exc).__name__}: {exc}"[:2000], False)
        with self._lock:
            send.attempts.append(attempt)

    def resend(self, send_id: int) -> Send:
        """再送: post the identical body and headers again (Platform: the same Smaregi-Event-Id)."""
        with self._lock:
            send = next((s for s in self.sends if s.id == int(send_id)), None)
        if send is None:
            raise SandboxError("invalid", f"no send {send_id}")
        self._deliver(send)
        return send

    def wait_for_sends(self, timeout: float = 5.0) -> None:
        """Wait for asynchronous webhook deliveries (Platform write echoes) to finish."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def issue_token(self, contract_id: str, client_id: str | None, client_secret: str | None,
                    grant_type: str | None, scope: str | None) -> tuple[int, dict]:
        """The token endpoint's answer as ``(status, body)``; error bodies are OAuth-style (doc §3.3)."""
        with self._lock:
            if (contract_id != self.contract_id or client_id != self.client_id
                    or client_secret != self.client_secret):
                return 401, {"error": "invalid_client"}
            if grant_type != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            wanted = set((scope or "").split()) or set(self.app_scopes)
            if not wanted <= self.app_scopes:
                return 400, {"error": "invalid_scope"}
            value = uuid.uuid4().hex + uuid.uuid4().hex
            expires_at = time.time() + self.token_lifetime
            self.tokens[value] = Token(value, contract_id, frozenset(wanted), expires_at)
            self.tokens_issued += 1
            return 200, {"access_token": value, "token_type": "Bearer", "expires_in": self.token_lifetime,
                         "scope": " ".join(sorted(wanted))}

    def check_bearer(self, contract_id: str, authorization: str | None, scope: str) -> tuple[int, str] | None:
        """None if the bearer token may use ``scope`` on this contract, else ``(401|403, detail)``."""
        value = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            token = self.tokens.get(value)
            if (not value or token is None or token.expires_at <= time.time()
                    or token.contract_id != contract_id):
                return 401, "アクセストークンが無効です"
            if scope not in token.scopes:
                return 403, f"スコープ {scope} が許可されていません"
        return None

    def expire_tokens(self) -> None:
        """Every issued Platform token expires now."""
        with self._lock:
            for token in self.tokens.values():
                token.expires_at = 0.0

    def revoke_token(self, value: str) -> None:
        with self._lock:
            self.tokens.pop(value, None)

    def fail_next(self, kind: str, count: int = 1, seconds: float = 2.0) -> None:
        """Make the next ``count`` API requests (either generation, not the token endpoint) fail.

        ``500``; ``maintenance`` (503); ``429`` (with ``Retry-After``); ``expired_token`` (legacy
        error 13, Platform 401 and the token revoked); ``slow`` (sleep ``seconds``, then answer).
        """
        if kind not in FAILURE_KINDS:
            raise SandboxError("invalid", f"kind must be one of {', '.join(FAILURE_KINDS)}")
        with self._lock:
            self._failures.append(Failure(kind, int(count), float(seconds)))

    def take_failure(self) -> Failure | None:
        with self._lock:
            while self._failures and self._failures[0].remaining <= 0:
                self._failures.pop(0)
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.remaining -= 1
            return Failure(failure.kind, 1, failure.seconds)

    def rate_limited(self, write: bool) -> bool:
        """Count one Platform request against :attr:`rate_limit` (per second); True if over it."""
        with self._lock:
            if self.rate_limit is None:
                return False
            second = int(time.time())
            start, reads, writes = self._rate_window
            if start != second:
                reads, writes = 0, 0
            reads, writes = (reads, writes + 1) if write else (reads + 1, writes)
            self._rate_window = (second, reads, writes)
            return writes > self.rate_limit[1] if write else reads > self.rate_limit[0]

    def log_registration(self, call: str, body: dict) -> None:
        with self._lock:
            self.registration_log.append((call, body))

    def log(self, entry: str) -> None:
        with self._lock:
            self.api_log.append(entry)

    def platform_products(self) -> list[dict]:
        with self._lock:
            return [p.row(platform_time) for p in self.products.values()]

    def platform_product(self, product_id: str) -> dict | None:
        with self._lock:
            product = self.products.get(product_id)
            return product.row(platform_time) if product else None

    def stock_rows(self, store_id: str | None = None, product_id: str | None = None) -> list[StockRow]:
        """Copies of the stock rows, optionally of one store and/or product."""
        with self._lock:
            return [replace(r) for r in self.stock.values()
                    if (store_id is None or r.store_id == store_id)
                    and (product_id is None or r.product_id == product_id)]

    def changes(self, product_id: str, store_id: str) -> list[StockChange]:
        """The 在庫変動履歴 of one product in one store, oldest first."""
        with self._lock:
            return [c for c in self.history if c.product_id == product_id and c.store_id == store_id]

    def legacy_table(self, table: str) -> list[dict]:
        """A snapshot of a legacy table's rows (string values) for ``*_ref``."""
        with self._lock:
            if table == "Product":
                return [p.row(legacy_time) for p in self.products.values()]
            if table == "Stock":
                return [r.row(legacy_time) for r in self.stock.values()]
            if table == "StockHistory":
                return [c.legacy_row() for c in self.history]
            if table == "Shipment":
                return [sh.row(legacy_time) for sh in self.shipments.values()]
            if table == "ShipmentDetail":
                return [row for sh in self.shipments.values() for row in sh.detail_rows(self.products, legacy_time)]
            if table == "TransactionHead":
                return [t.row(legacy_time) for t in self.transactions.values()]
            if table == "TransactionDetail":
                return [row for t in self.transactions.values() for row in t.detail_rows()]
            if table == "Store":
                return [{"storeId": sid, "storeName": name, "storeAbbr": name, "division": "1"}
                        for sid, name in self.stores.items()]
        raise SandboxError("invalid", f"unknown table {table}")

    def snapshot(self) -> dict:
        """Products with their stock per store, for the control page and ``GET /sandbox/state``."""
        with self._lock:
            products = [{**p.row(platform_time),
                         "stock": {sid: (self.stock[(sid, p.product_id)].amount
                                         if (sid, p.product_id) in self.stock else None)
                                   for sid in self.stores}}
                        for p in sorted(self.products.values(), key=lambda p: int(p.product_id))]
            return {"contract_id": self.contract_id, "stores": dict(self.stores),
                    "default_store_id": self.default_store_id, "notify_url": self.notify_url,
                    "notify_mode": self.notify_mode, "products": products,
                    "history": [c.platform_row() for c in self.history[-50:]],
                    "shipments": [sh.row(platform_time) for sh in list(self.shipments.values())[-20:]],
                    "transactions": [t.row(platform_time) for t in list(self.transactions.values())[-20:]]}


def create_app(sandbox: SmaregiSandbox) -> Flask:
    """The simulated Smaregi: ``/access/``, ``/app/<contract>/token``, ``/<contract>/pos/``, ``/sandbox/``."""
    from stocklink.sandbox import smaregi_control, smaregi_legacy, smaregi_platform, smaregi_sales

    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.extensions["smaregi_sandbox"] = sandbox
    app.register_blueprint(smaregi_legacy.bp)
    app.register_blueprint(smaregi_platform.bp)
    app.register_blueprint(smaregi_sales.bp)
    app.register_blueprint(smaregi_control.bp)
    return app


class _KeepUnderscoreHeaders(WSGIRequestHandler):
    """Pass header names containing ``_`` on, PHP-style (``X_contract_id`` → ``HTTP_X_CONTRACT_ID``).

    werkzeug drops them to prevent spoofing; Smaregi accepts them (doc §1.3).
    """

    def make_environ(self):
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value.replace("\r\n", "")
        return environ


def serve_smaregi(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Like :func:`stocklink.sandbox.server.serve_in_thread`, but keeping underscore headers.

    Use it for the Smaregi sandbox (legacy requests carry ``X_contract_id``) and for test
    receivers that want to see the legacy 在庫情報送信 headers.
    """
    server = make_server(host, port, app, threaded=True, request_handler=_KeepUnderscoreHeaders)
    # A short poll interval makes stop() quick (serve_forever's default waits up to 0.5 s).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="smaregi-sandbox-http", daemon=True)
    thread.start()
    return RunningServer(url=f"http://{host}:{server.server_port}", _server=server, _thread=thread)
