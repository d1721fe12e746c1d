"""A simulated ColorMe Shop API (platform-apis-channels.md §1).

Speaks the real paths (``/v1/products/{id}.json``, ``/v1/stocks.json``; the ``.json``
suffix is optional, §1.3), bearer-token auth (§1.2), the ``{"errors": [...]}``
envelope (§1.8) and both stock write forms (§1.5). Python control methods on
:class:`ColorMeSandbox`, mirrored as JSON endpoints by :func:`create_app`:

- ``add_product(name, stocks=…, variants=[{"option1_value", "option2_value", "stocks"}])``
  — ``POST /sandbox/products``
- ``stock(product_id, option1=None, option2=None)`` — ``GET /sandbox/products/<id>``
- ``set_stock(product_id, stocks, option1=None, option2=None)`` (the shop's own sale)
  — ``POST /sandbox/products/<id>/stock``
- ``issue_token()`` / ``revoke_token(token)`` / ``revoke_tokens()`` — ``POST /sandbox/tokens``,
  ``POST /sandbox/tokens/revoke``
- ``throttle_next(count, retry_after=2)`` — ``POST /sandbox/throttle`` (429 with ``Retry-After``)
- ``advance(seconds)`` (the sandbox clock every ``make_date`` / ``update_date`` is read from)
- maintenance, forced 5xx, delay and the request log: :mod:`stocklink.sandbox.common`.

Orders (受注 = ``sales``, §1.6), served by ``GET /v1/sales``: ``place_order(lines, status=…)``
(``lines`` as ``(identifier, quantity)``, the identifier the client writes stock by: ``"123"`` or
``"123:白:S"``; the ordered stock is deducted as the shop does), ``edit_order(order_id, lines)``,
``set_order_status(order_id, status)`` (``unpaid`` / ``paid`` / ``delivered``),
``cancel_order(order_id)`` (``canceled`` true, every ``product_num`` 0, stock restocked) and
``recent_orders(limit)`` — ``POST /sandbox/orders``, ``POST /sandbox/orders/<id>``,
``POST /sandbox/orders/<id>/cancel``, ``GET /sandbox/orders``.
"""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone

from flask import Flask, jsonify, request

from stocklink.sandbox.common import SandboxState, install

# §1.8: the only documented code. The 401/422/429/503 bodies are NOT FOUND in the
# spec (§9), so they reuse the same envelope with codes of our own making.
NOT_FOUND = (404, 404100, "レコードが見つかりませんでした。")
UNAUTHORIZED = (401, 401000, "アクセストークンが無効です。")
INVALID = (422, 422000, "パラメータが不正です。")
THROTTLED = (429, 429000, "リクエスト数が上限を超えました。")
MAINTENANCE = (503, 503000, "ただいまメンテナンス中です。")
SERVER_ERROR = (500, 500000, "サーバーエラーが発生しました。")

PAGE_LIMIT_MAX = 50  # §1.4: limit default 10, max 50 (clamped: meta.limit is the 実効limit)
SALES_LIMIT_MAX = 100  # §1.6: /v1/sales limit default 10, max 100
SALES_DEFAULT_DAYS = 7  # §1.6: no date given → from 00:00 seven days ago
UNIT_PRICE = 1000  # the sandbox's products have no price of their own
ORDER_STATUSES = ("unpaid", "paid", "delivered")  # the paid / delivered flags, as one word
JST = timezone(timedelta(hours=9))


class OrderRefused(ValueError):
    """An order the shop would not take (unknown item, too little stock, bad quantity)."""


def _error(kind: tuple[int, int, str], message: str | None = None):
    status, code, text = kind
    body = {"errors": [{"code": code, "message": message or text, "status": status}]}
    return jsonify(body), status


def _same_option(a: str | None, b: str | None) -> bool:
    return (a or "") == (b or "")


class ColorMeSandbox(SandboxState):
    """In-memory ColorMe shop: products, per-option variants and access tokens."""

    def __init__(self, account_id: str = "PA01234567") -> None:
        super().__init__()
        self.account_id = account_id
        self.products: dict[int, dict] = {}
        self.tokens: set[str] = set()
        self.sales: dict[int, dict] = {}
        self._throttle = 0
        self._retry_after = "2"
        self._next_id = 100001
        self._next_sale = 5000001
        self._next_detail = 9000001
        self._offset = 0

    def now(self) -> int:
        """The sandbox clock in unix seconds (ColorMe's dates, §1.6)."""
        return int(time.time()) + self._offset

    def advance(self, seconds: int) -> None:
        """Move the sandbox clock forward (orders placed after it are that much later)."""
        with self.lock:
            self._offset += int(seconds)

    def issue_token(self) -> str:
        """A new valid bearer token (ColorMe tokens never expire, §1.2)."""
        token = secrets.token_hex(32)
        with self.lock:
            self.tokens.add(token)
        return token

    def revoke_token(self, token: str) -> None:
        """The shop owner revoked the app (許可済みアプリ一覧, §1.2)."""
        with self.lock:
            self.tokens.discard(token)

    def revoke_tokens(self) -> None:
        """Every issued token stops working (the app was removed from the shop)."""
        with self.lock:
            self.tokens.clear()

    def throttle_next(self, count: int = 1, retry_after: float = 2) -> None:
        """Answer the next ``count`` API requests with 429 and ``Retry-After: retry_after``
        (throttling body NOT FOUND, §1.8)."""
        with self.lock:
            self._throttle += count
            self._retry_after = f"{retry_after:g}"

    def add_product(self, name: str = "商品", *, stocks: int | None = 0, model_number: str = "",
                    variants: list[dict] | None = None, stock_managed: bool = True,
                    image_url: str | None = None) -> int:
        """Add a product (with per-option ``variants`` if given) and return its id.

        ``image_url`` is the product's main image (ColorMe's ``image_url``; null without one)."""
        now = self.now()
        with self.lock:
            product_id = self._next_id
            self._next_id += 1
            rows = []
            for v in variants or []:
                o1, o2 = v.get("option1_value"), v.get("option2_value")
                rows.append({
                    "product_id": product_id, "account_id": self.account_id,
                    "option1_value": o1, "option2_value": o2,
                    "title": "\u3000x\u3000".join(x for x in (o1, o2) if x),
                    "stocks": int(v.get("stocks", 0)), "few_num": 0,
                    "model_number": v.get("model_number", ""),
                    "make_date": now, "update_date": now,
                })
            self.products[product_id] = {
                "id": product_id, "account_id": self.account_id, "name": name,
                "model_number": model_number, "stock_managed": stock_managed,
                "stocks": stocks if stock_managed else None, "few_num": 0,
                "display_state": "showing", "variants": rows, "image_url": image_url,
                "make_date": now, "update_date": now,
            }
            return product_id

    def stock(self, product_id: int, option1: str | None = None, option2: str | None = None):
        """The current stock of a product or of one of its variants (``None`` if unknown)."""
        with self.lock:
            product = self.products.get(int(product_id))
            if product is None:
                return None
            if option1 is None and option2 is None:
                return self._product_stocks(product)
            variant = self._variant(product, option1, option2)
            return None if variant is None else variant["stocks"]

    def set_stock(self, product_id: int, stocks: int, option1: str | None = None,
                  option2: str | None = None) -> None:
        """Overwrite stock as the shop itself would (a sale on ColorMe, a manual edit)."""
        with self.lock:
            product = self.products[int(product_id)]
            target = product if option1 is None and option2 is None else \
                self._variant(product, option1, option2)
            if target is None:
                raise KeyError("no such variant")
            target["stocks"] = int(stocks)
            target["update_date"] = self.now()

    @staticmethod
    def _variant(product: dict, option1, option2) -> dict | None:
        for v in product["variants"]:
            if _same_option(v["option1_value"], option1) and _same_option(v["option2_value"], option2):
                return v
        return None

    @staticmethod
    def _product_stocks(product: dict):
        if not product["stock_managed"]:
            return None
        if product["variants"]:
            # Our assumption: the product row shows the sum of its options' stock.
            return sum(v["stocks"] for v in product["variants"])
        return product["stocks"]

    def product_json(self, product_id: int) -> dict:
        with self.lock:
            product = dict(self.products[int(product_id)])
            product["stocks"] = self._product_stocks(product)
            product["variants"] = [dict(v) for v in product["variants"]]
            return product

    # Orders (sales, §1.6) --------------------------------------------------
    def place_order(self, lines: list[tuple[str, int]], *, status: str | None = None) -> str:
        """A customer's order of ``lines`` (``(identifier, quantity)``); returns the sale id.

        The ordered stock is deducted as the shop does; a line the shop could not sell (an
        unknown item, more than its managed stock) refuses the whole order, changing nothing.

        :raise OrderRefused: an unknown identifier, a quantity < 1, too little stock, a bad status."""
        wanted = _merged(lines, minimum=1)
        flags = _status_flags(status or "unpaid")
        with self.lock:
            now = self.now()
            sale_id = self._next_sale
            details = [self._new_detail(sale_id, ident, qty) for ident, qty in wanted.items()]
            self._take_stock({ident: qty for ident, qty in wanted.items()})
            self._next_sale += 1
            self.sales[sale_id] = {"id": sale_id, "account_id": self.account_id, "make_date": now,
                                   "update_date": now, **flags, "canceled": False, "details": details,
                                   "sale_deliveries": []}
            self._total(self.sales[sale_id])
            return str(sale_id)

    def edit_order(self, order_id: str | int, lines: list[tuple[str, int]]) -> None:
        """The merchant edits the sale to hold exactly ``lines``: a line's new quantity, new lines
        added, a line left out (or given quantity 0) removed; the stock moves by the difference
        and ``update_date`` moves.

        :raise OrderRefused: unknown sale, a cancelled one, an unknown item, too little stock,
            no line left (cancel the sale instead)."""
        wanted = {ident: qty for ident, qty in _merged(lines, minimum=0).items() if qty > 0}
        if not wanted:
            raise OrderRefused("an order needs at least one line: cancel it instead")
        with self.lock:
            sale = self._sale(order_id)
            held = {self._detail_identifier(d): d for d in sale["details"]}
            change = {ident: wanted.get(ident, 0) - (held[ident]["product_num"] if ident in held else 0)
                      for ident in {*held, *wanted}}
            added = [self._new_detail(sale["id"], ident, qty) for ident, qty in wanted.items()
                     if ident not in held]
            self._take_stock(change)
            details = []
            for ident, detail in held.items():
                qty = wanted.get(ident, 0)
                if qty > 0:
                    detail["product_num"] = qty
                    details.append(detail)
            sale["details"] = details + added
            sale["update_date"] = self.now()
            self._total(sale)

    def set_order_status(self, order_id: str | int, status: str) -> None:
        """Set the sale's ``paid`` / ``delivered`` flags to ``status`` (``unpaid``, ``paid`` or
        ``delivered``); ``update_date`` moves. :raise OrderRefused: unknown sale or status."""
        flags = _status_flags(status)
        with self.lock:
            sale = self._sale(order_id, cancelled_ok=True)
            sale.update(flags)
            sale["update_date"] = self.now()

    def cancel_order(self, order_id: str | int) -> None:
        """Cancel the sale as ``PUT /v1/sales/{id}/cancel`` with ``restock`` does (§1.6):
        ``canceled`` true, every ``product_num`` 0, the ordered stock put back.

        :raise OrderRefused: unknown or already cancelled sale."""
        with self.lock:
            sale = self._sale(order_id)
            self._take_stock({self._detail_identifier(d): -d["product_num"] for d in sale["details"]})
            for detail in sale["details"]:
                detail["product_num"] = 0
            sale["canceled"] = True
            sale["update_date"] = self.now()
            self._total(sale)

    def recent_orders(self, limit: int = 20) -> list[dict]:
        """The newest sales first, summed up for the control page: ``order_id``, ``placed``,
        ``updated`` (JST text), ``status``, ``cancelled`` and ``lines`` ``[(identifier, quantity)]``."""
        with self.lock:
            sales = sorted(self.sales.values(), key=lambda s: s["id"], reverse=True)[:limit]
            return [{"order_id": str(s["id"]), "placed": _jst(s["make_date"]), "updated": _jst(s["update_date"]),
                     "status": _status_word(s), "cancelled": s["canceled"],
                     "lines": [(self._detail_identifier(d), d["product_num"]) for d in s["details"]]}
                    for s in sales]

    def _sale(self, order_id, *, cancelled_ok: bool = False) -> dict:
        sale = self.sales.get(int(order_id)) if str(order_id).isdigit() else None
        if sale is None:
            raise OrderRefused(f"no such sale: {order_id}")
        if sale["canceled"] and not cancelled_ok:
            raise OrderRefused(f"sale {order_id} is cancelled")
        return sale

    def _target(self, identifier: str) -> tuple[dict, dict]:
        """``(product, product-or-variant)`` an identifier names. :raise OrderRefused: none."""
        parts = identifier.split(":")
        product = self.products.get(int(parts[0])) if parts[0].isdigit() and len(parts) <= 3 else None
        if product is None:
            raise OrderRefused(f"no such item: {identifier}")
        if len(parts) == 1:
            if product["variants"]:
                raise OrderRefused(f"{identifier} is sold by its options")
            return product, product
        values = [_unescape(p) for p in parts[1:]] + [None]
        variant = self._variant(product, values[0], values[1])
        if variant is None:
            raise OrderRefused(f"no such item: {identifier}")
        return product, variant

    def _detail_identifier(self, detail: dict) -> str:
        parts = [str(detail["product_id"])]
        if detail["option1_value"] is not None or detail["option2_value"] is not None:
            parts.append(_escape(detail["option1_value"] or ""))
            if detail["option2_value"]:
                parts.append(_escape(detail["option2_value"]))
        return ":".join(parts)

    def _new_detail(self, sale_id: int, identifier: str, quantity: int) -> dict:
        product, target = self._target(identifier)
        variant = target if target is not product else None
        title = f"{product['name']}（{variant['title']}）" if variant else product["name"]
        price = int(product.get("price") or UNIT_PRICE)
        detail_id = self._next_detail
        self._next_detail += 1
        return {"id": detail_id, "sale_id": sale_id, "account_id": self.account_id,
                "product_id": product["id"],
                "option1_value": variant["option1_value"] if variant else None,
                "option2_value": variant["option2_value"] if variant else None,
                "product_model_number": (variant and variant["model_number"]) or product["model_number"],
                "product_name": product["name"], "pristine_product_full_name": title,
                "price": price, "product_num": quantity, "subtotal_price": price * quantity}

    def _take_stock(self, change: dict[str, int]) -> None:
        """Deduct ``change`` per identifier (negative: put back), all or nothing; an item whose
        stock is not managed is sold without counting. :raise OrderRefused: too little stock."""
        moves = []
        for identifier, quantity in change.items():
            product, target = self._target(identifier)
            if quantity == 0 or not product["stock_managed"]:
                continue
            if quantity > 0 and target["stocks"] < quantity:
                raise OrderRefused(f"{identifier}: only {target['stocks']} in stock")
            moves.append((product, target, quantity))
        now = self.now()
        for product, target, quantity in moves:
            target["stocks"] -= quantity
            target["update_date"] = product["update_date"] = now

    @staticmethod
    def _total(sale: dict) -> None:
        for detail in sale["details"]:
            detail["subtotal_price"] = detail["price"] * detail["product_num"]
        total = sum(d["subtotal_price"] for d in sale["details"])
        sale["product_total_price"] = sale["total_price"] = total

    def sales_rows(self, args) -> list[dict]:
        """The sales ``GET /v1/sales`` answers for its query ``args`` (§1.6), newest first.

        :raise ValueError: a date that is neither ``YYYY-MM-DD`` nor ``YYYY-MM-DD HH:MM:SS``."""
        bounds = {name: _parse_date(args[name], end=name.endswith("max") or name == "before")
                  for name in ("after", "before", "update_date_min", "update_date_max") if args.get(name)}
        if not bounds:
            today = datetime.fromtimestamp(self.now(), JST).replace(hour=0, minute=0, second=0)
            bounds["after"] = int((today - timedelta(days=SALES_DEFAULT_DAYS)).timestamp())
        checks = {"after": lambda s, v: s["make_date"] >= v, "before": lambda s, v: s["make_date"] <= v,
                  "update_date_min": lambda s, v: s["update_date"] >= v,
                  "update_date_max": lambda s, v: s["update_date"] <= v}
        ids = {int(x) for x in args.get("ids", "").split(",") if x.strip().isdigit()}
        flags = {name: args[name] == "true" for name in ("paid", "delivered", "canceled") if args.get(name)}
        with self.lock:
            rows = []
            for sale in sorted(self.sales.values(), key=lambda s: s["id"], reverse=True):
                if ids and sale["id"] not in ids:
                    continue
                if all(checks[name](sale, value) for name, value in bounds.items()) and \
                        all(sale[name] == value for name, value in flags.items()):
                    rows.append({**sale, "details": [dict(d) for d in sale["details"]]})
            return rows

    def take_throttle(self) -> bool:
        with self.lock:
            if self._throttle:
                self._throttle -= 1
                return True
            return False

    def apply_update(self, product_id: int, body: dict) -> None:
        """Apply one ``PUT /v1/products/{id}`` body (§1.5); raises ValueError if malformed."""
        spec = body.get("product") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ValueError("product is required")
        variants = spec.get("variants", [])
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            raise ValueError("variants must be an array of objects")
        with self.lock:
            product = self.products[product_id]
            now = self.now()
            changes: list[tuple[dict, int]] = []
            if "stocks" in spec:
                new = _new_stocks(product["stocks"], spec["stocks"])
                # §1.5: "商品オプションごとに在庫管理している場合、このパラメータは無視されます"
                if not product["variants"] and product["stock_managed"]:
                    changes.append((product, new))
            for v in variants:
                if "stocks" not in v:
                    continue
                target = self._variant(product, v.get("option1_value"), v.get("option2_value"))
                new = _new_stocks(target["stocks"] if target else 0, v["stocks"])
                # Unknown option values: the spec says nothing (§9); we ignore them silently,
                # so a client must check the product it gets back.
                if target is not None:
                    changes.append((target, new))
            for target, new in changes:  # all validated: apply all or nothing
                target["stocks"] = new
                target["update_date"] = now
            product["update_date"] = now


def _merged(lines, *, minimum: int) -> dict[str, int]:
    """``(identifier, quantity)`` lines as identifier → quantity (repeated lines summed)."""
    merged: dict[str, int] = {}
    for identifier, quantity in lines:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < minimum:
            raise OrderRefused(f"{identifier}: quantity must be a whole number {minimum} or more")
        merged[str(identifier).strip()] = merged.get(str(identifier).strip(), 0) + quantity
    if not merged:
        raise OrderRefused("an order needs at least one line")
    return merged


def _status_flags(status: str) -> dict:
    if status not in ORDER_STATUSES:
        raise OrderRefused(f"unknown status {status!r}: one of {', '.join(ORDER_STATUSES)}")
    return {"paid": status in ("paid", "delivered"), "delivered": status == "delivered"}


def _status_word(sale: dict) -> str:
    return "delivered" if sale["delivered"] else "paid" if sale["paid"] else "unpaid"


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


def _unescape(value: str) -> str:
    return value.replace("%3A", ":").replace("%3a", ":").replace("%25", "%")


def _jst(moment: int) -> str:
    return datetime.fromtimestamp(moment, JST).strftime("%Y-%m-%d %H:%M:%S")


def _parse_date(text: str, *, end: bool) -> int:
    """§1.6 dates, read as Japan time: ``YYYY-MM-DD`` (the whole day: its last second for a
    ``max`` / ``before`` bound) or ``YYYY-MM-DD HH:MM:SS``; unix seconds."""
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text.strip(), fmt).replace(tzinfo=JST)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and end:
            moment += timedelta(days=1, seconds=-1)
        return int(moment.timestamp())
    raise ValueError(f"not a date: {text!r}")


def _new_stocks(current: int | None, value) -> int:
    """§1.5: ``stocks`` is an integer (absolute) or ``{"increment": n}`` (relative)."""
    if isinstance(value, bool):
        raise ValueError("stocks must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and set(value) == {"increment"} and isinstance(value["increment"], int) \
            and not isinstance(value["increment"], bool):
        return (current or 0) + value["increment"]
    raise ValueError("stocks must be an integer or {\"increment\": n}")


def create_app(sandbox: ColorMeSandbox) -> Flask:
    """The Flask app serving ``sandbox`` at ColorMe's paths."""
    app = Flask(__name__)

    def fault(status, maintenance):
        if maintenance:
            return _error(MAINTENANCE)
        return _error((status, status * 1000, SERVER_ERROR[2]))

    install(app, sandbox, fault)

    @app.before_request
    def _auth():
        if request.path.startswith("/sandbox/"):
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        with sandbox.lock:
            valid = token in sandbox.tokens
        if not valid:
            return _error(UNAUTHORIZED)
        if sandbox.take_throttle():
            response, status = _error(THROTTLED)
            with sandbox.lock:
                response.headers["Retry-After"] = sandbox._retry_after
            return response, status
        return None

    def fields_filter(rows: list[dict]) -> list[dict]:
        fields = [f for f in request.args.get("fields", "").split(",") if f]
        return [{k: r.get(k) for k in fields} for r in rows] if fields else rows

    def page(rows: list[dict], key: str):
        limit = min(max(request.args.get("limit", 10, type=int), 1), PAGE_LIMIT_MAX)
        offset = max(request.args.get("offset", 0, type=int), 0)
        chunk = fields_filter(rows[offset:offset + limit])
        return jsonify({key: chunk, "meta": {"total": len(rows), "limit": limit, "offset": offset}})

    def ids_filter() -> set[int] | None:
        raw = request.args.get("ids")
        return {int(x) for x in raw.split(",") if x.strip()} if raw else None

    @app.get("/v1/products")
    @app.get("/v1/products.json")
    def products_index():
        ids = ids_filter()
        with sandbox.lock:
            rows = [sandbox.product_json(pid) for pid in sorted(sandbox.products)
                    if ids is None or pid in ids]
        return page(rows, "products")

    @app.get("/v1/products/<int:product_id>")
    @app.get("/v1/products/<int:product_id>.json")
    def products_show(product_id: int):
        with sandbox.lock:
            if product_id not in sandbox.products:
                return _error(NOT_FOUND)
            return jsonify(product=sandbox.product_json(product_id))

    @app.get("/v1/products/<int:product_id>/variants")
    @app.get("/v1/products/<int:product_id>/variants.json")
    def variants_index(product_id: int):
        with sandbox.lock:
            if product_id not in sandbox.products:
                return _error(NOT_FOUND)
            rows = sandbox.product_json(product_id)["variants"]
        return page(rows, "variants")

    @app.put("/v1/products/<int:product_id>")
    @app.put("/v1/products/<int:product_id>.json")
    def products_update(product_id: int):
        body = request.get_json(silent=True)
        with sandbox.lock:
            if product_id not in sandbox.products:
                return _error(NOT_FOUND)
            try:
                sandbox.apply_update(product_id, body)
            except ValueError as exc:
                return _error(INVALID, str(exc))
            return jsonify(product=sandbox.product_json(product_id))

    @app.get("/v1/stocks")
    @app.get("/v1/stocks.json")
    def stocks_index():
        # §1.4: one row per product, or per option for option-managed products.
        ids = ids_filter()
        rows = []
        with sandbox.lock:
            for pid in sorted(sandbox.products):
                if ids is not None and pid not in ids:
                    continue
                product = sandbox.product_json(pid)
                base = {"account_id": product["account_id"], "product_id": pid,
                        "name": product["name"], "model_number": product["model_number"],
                        "few_num": 0, "display_state": product["display_state"]}
                if not product["variants"]:
                    rows.append({**base, "option1_value": None, "option2_value": None,
                                 "stocks": product["stocks"], "variant_model_number": None})
                for v in product["variants"]:
                    rows.append({**base, "option1_value": v["option1_value"],
                                 "option2_value": v["option2_value"], "stocks": v["stocks"],
                                 "variant_model_number": v["model_number"]})
        return page(rows, "stocks")

    @app.get("/v1/sales")
    @app.get("/v1/sales.json")
    def sales_index():
        try:
            rows = sandbox.sales_rows(request.args)
        except ValueError as exc:
            return _error(INVALID, str(exc))
        limit = min(max(request.args.get("limit", 10, type=int), 1), SALES_LIMIT_MAX)
        offset = max(request.args.get("offset", 0, type=int), 0)
        chunk = fields_filter(rows[offset:offset + limit])
        return jsonify({"sales": chunk, "meta": {"total": len(rows), "limit": limit, "offset": offset}})

    @app.errorhandler(404)
    def _not_found(_exc):
        return _error(NOT_FOUND)

    _controls(app, sandbox)
    return app


def _controls(app: Flask, sandbox: ColorMeSandbox) -> None:
    @app.post("/sandbox/products")
    def _add_product():
        body = request.get_json(silent=True) or {}
        product_id = sandbox.add_product(
            body.get("name", "商品"), stocks=body.get("stocks", 0),
            model_number=body.get("model_number", ""), variants=body.get("variants"),
            stock_managed=body.get("stock_managed", True), image_url=body.get("image_url"))
        return jsonify(product=sandbox.product_json(product_id)), 201

    @app.get("/sandbox/products/<int:product_id>")
    def _show_product(product_id: int):
        with sandbox.lock:
            if product_id not in sandbox.products:
                return jsonify(error="not found"), 404
            return jsonify(product=sandbox.product_json(product_id))

    @app.post("/sandbox/products/<int:product_id>/stock")
    def _set_stock(product_id: int):
        body = request.get_json(silent=True) or {}
        try:
            sandbox.set_stock(product_id, int(body["stocks"]), body.get("option1_value"),
                              body.get("option2_value"))
        except KeyError:
            return jsonify(error="not found"), 404
        return jsonify(product=sandbox.product_json(product_id))

    @app.post("/sandbox/tokens")
    def _issue_token():
        return jsonify(access_token=sandbox.issue_token(), token_type="bearer",
                       scope="read_products write_products"), 201

    @app.post("/sandbox/tokens/revoke")
    def _revoke_token():
        sandbox.revoke_token((request.get_json(silent=True) or {}).get("access_token", ""))
        return jsonify(ok=True)

    @app.post("/sandbox/throttle")
    def _throttle():
        body = request.get_json(silent=True) or {}
        sandbox.throttle_next(int(body.get("count", 1)), float(body.get("retry_after", 2)))
        return jsonify(ok=True)

    def _order_lines(body: dict) -> list[tuple[str, int]]:
        return [(str(line[0]), line[1]) for line in body.get("lines") or []]

    @app.post("/sandbox/orders")
    def _place_order():
        body = request.get_json(silent=True) or {}
        try:
            order_id = sandbox.place_order(_order_lines(body), status=body.get("status"))
        except OrderRefused as exc:
            return jsonify(error=str(exc)), 422
        return jsonify(order_id=order_id), 201

    @app.post("/sandbox/orders/<order_id>")
    def _edit_order(order_id: str):
        body = request.get_json(silent=True) or {}
        try:
            if "lines" in body:
                sandbox.edit_order(order_id, _order_lines(body))
            if "status" in body:
                sandbox.set_order_status(order_id, body["status"])
        except OrderRefused as exc:
            return jsonify(error=str(exc)), 422
        return jsonify(ok=True)

    @app.post("/sandbox/orders/<order_id>/cancel")
    def _cancel_order(order_id: str):
        try:
            sandbox.cancel_order(order_id)
        except OrderRefused as exc:
            return jsonify(error=str(exc)), 422
        return jsonify(ok=True)

    @app.get("/sandbox/orders")
    def _orders():
        return jsonify(orders=sandbox.recent_orders(int(request.args.get("limit", 20))))
