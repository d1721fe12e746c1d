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
``POST /sandbox/orders/<id>/cancel``, ``GET /sandbox/orders`` (:mod:`stocklink.sandbox.orders`);
the order book itself: :mod:`stocklink.sandbox.colorme_sales`.
"""
from __future__ import annotations

import secrets
import time

from flask import Flask, jsonify, request

from stocklink.sandbox.colorme_sales import SalesBook
from stocklink.sandbox.common import SandboxState, install
from stocklink.sandbox.orders import install_order_controls

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


def _error(kind: tuple[int, int, str], message: str | None = None):
    status, code, text = kind
    body = {"errors": [{"code": code, "message": message or text, "status": status}]}
    return jsonify(body), status


def _same_option(a: str | None, b: str | None) -> bool:
    return (a or "") == (b or "")


class ColorMeSandbox(SalesBook, SandboxState):
    """In-memory ColorMe shop: products, per-option variants, sales and access tokens."""

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
                       scope="read_products write_products read_sales"), 201

    @app.post("/sandbox/tokens/revoke")
    def _revoke_token():
        sandbox.revoke_token((request.get_json(silent=True) or {}).get("access_token", ""))
        return jsonify(ok=True)

    @app.post("/sandbox/throttle")
    def _throttle():
        body = request.get_json(silent=True) or {}
        sandbox.throttle_next(int(body.get("count", 1)), float(body.get("retry_after", 2)))
        return jsonify(ok=True)

    install_order_controls(app, sandbox)
