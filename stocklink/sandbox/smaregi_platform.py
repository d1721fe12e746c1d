"""The Platform API of the sandbox: the app token and the ``/{contract}/pos`` stock and product paths.

Follows platform-apis-smaregi.md §3: Basic-auth client-credentials token, Bearer checks
(401) and scopes (403), bare-array lists paged by ``limit``/``page``, numbers as strings,
RFC 7807-like errors (``"NotFound"`` without a space), ±999999999 stock bounds, 400 for an
unknown store and 404 for an unknown product, optional 429 with ``Retry-After``.
"""
from __future__ import annotations

import functools
import time
from datetime import datetime, timedelta

from flask import Blueprint, Response, current_app, jsonify, request

from stocklink.sandbox.smaregi import (
    STOCK_MAX,
    STOCK_MIN,
    Move,
    SandboxError,
    SmaregiSandbox,
    platform_time,
)

bp = Blueprint("smaregi_platform", __name__)

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
          429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
PRODUCT_FIELDS = ("productId", "categoryId", "productCode", "productName", "taxDivision", "price",
                  "groupCode", "size", "color", "stockControlDivision", "displayFlag", "division",
                  "salesDivision", "imageUrl", "insDateTime", "updDateTime")
STOCK_FIELDS = ("storeId", "productId", "stockAmount", "layawayStockAmount", "updDateTime")
CHANGE_FIELDS = ("id", "updDateTime", "targetDateTime", "productId", "storeId", "amount", "stockAmount",
                 "layawayStockAmount", "stockDivision", "fromStoreId", "toStoreId", "memo", "staffId",
                 "staffName")
ADD_MAX = 2 * STOCK_MAX  # relative amounts ∈ [−1999999998, 1999999998] (doc §3.9)


class Problem(Exception):
    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem(status: int, detail: str | None = None, headers: dict | None = None) -> Response:
    """An RFC 7807-like error body (doc §3.6)."""
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.errorhandler(Problem)
def _on_problem(exc: Problem):
    return problem(exc.status, exc.detail, exc.headers)


def _sandbox() -> SmaregiSandbox:
    return current_app.extensions["smaregi_sandbox"]


@bp.post("/app/<contract>/token")
def token(contract: str):
    """Client-credentials token. :raise 401: ``{"error":"invalid_client"}``; 400 for grant/scope."""
    auth = request.authorization
    client_id = auth.username if auth and auth.type == "basic" else None
    secret = auth.password if auth and auth.type == "basic" else None
    status, body = _sandbox().issue_token(contract, client_id, secret, request.form.get("grant_type"),
                                          request.form.get("scope"))
    response = jsonify(body)
    response.status_code = status
    return response


def api(scope: str, write: bool = False):
    """Failure knobs, the rate limit and the Bearer/scope check in front of a ``/pos`` view."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(contract: str, **kwargs):
            sandbox = _sandbox()
            sandbox.log(f"{request.method} {request.full_path.rstrip('?')}")
            failure = sandbox.take_failure()
            if failure is not None and failure.kind == "slow":
                time.sleep(failure.seconds)
            elif failure is not None:
                return _failure(sandbox, failure.kind)
            if sandbox.rate_limited(write):
                return problem(429, "リクエスト数が上限を超えました", {"Retry-After": "1"})
            refused = sandbox.check_bearer(contract, request.headers.get("Authorization"), scope)
            if refused is not None:
                return problem(*refused, headers={"WWW-Authenticate": "Bearer"})
            return view(sandbox, **kwargs)
        return wrapper
    return decorate


def _failure(sandbox: SmaregiSandbox, kind: str) -> Response:
    if kind == "expired_token":
        sandbox.revoke_token((request.headers.get("Authorization") or "").removeprefix("Bearer ").strip())
        return problem(401, "アクセストークンの有効期限が切れています", {"WWW-Authenticate": "Bearer"})
    if kind == "429":
        return problem(429, "リクエスト数が上限を超えました", {"Retry-After": "2"})
    if kind == "maintenance":
        return problem(503, "メンテナンス中です")
    return problem(500)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name} は整数で指定してください") from None
    if not low <= value <= high:
        raise Problem(400, f"{name} は{low}〜{high}で指定してください")
    return value


def _page(rows: list[dict], allowed: tuple[str, ...], sortable: tuple[str, ...],
          default_sort: str) -> Response:
    """``sort``, ``limit`` 1–1000 (default 100), ``page`` ≥ 1 and ``fields`` over a list (doc §3.5)."""
    limit = _int_arg("limit", 100, 1, 1000)
    page = _int_arg("page", 1, 1, 10**9)
    sort = request.args.get("sort") or default_sort
    for item in reversed(sort.split(",")):
        name, _, direction = item.strip().partition(":")
        if name not in sortable or direction not in ("", "asc", "desc"):
            raise Problem(400, f"sort に指定できない項目です: {item}")
        rows.sort(key=lambda r, n=name: (len(r.get(n) or ""), r.get(n) or ""), reverse=direction == "desc")
    fields = _fields(allowed)
    chunk = rows[(page - 1) * limit:page * limit]
    return jsonify([{f: row.get(f) for f in fields} for row in chunk])


def _fields(allowed: tuple[str, ...]) -> tuple[str, ...]:
    raw = request.args.get("fields")
    if not raw:
        return allowed
    fields = tuple(f.strip() for f in raw.split(",") if f.strip())
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise Problem(400, f"fields に指定できない項目です: {', '.join(unknown)}")
    return fields


def _store(sandbox: SmaregiSandbox, store_id: str | None) -> None:
    if store_id is not None and store_id not in sandbox.stores:
        raise Problem(400, "指定された店舗IDのリソースが見つかりません")


def _product(sandbox: SmaregiSandbox, product_id: str) -> None:
    if product_id not in sandbox.products:
        raise Problem(404, "指定されたIDのリソースが見つかりません")


@bp.get("/<contract>/pos/products")
@api("pos.products:read")
def products(sandbox: SmaregiSandbox):
    """Product list, a bare array. Filters: ``product_code``, ``group_code``."""
    rows = sandbox.platform_products()
    for arg, key in (("product_code", "productCode"), ("group_code", "groupCode")):
        if request.args.get(arg) is not None:
            rows = [r for r in rows if r.get(key) == request.args[arg]]
    return _page(rows, PRODUCT_FIELDS, ("productId", "productCode", "updDateTime"), "productId")


@bp.get("/<contract>/pos/products/<product_id>")
@api("pos.products:read")
def product(sandbox: SmaregiSandbox, product_id: str):
    """One product. :raise 404: unknown product (title ``NotFound``)."""
    row = sandbox.platform_product(product_id)
    if row is None:
        raise Problem(404, "指定されたIDのリソースが見つかりません")
    return jsonify({f: row.get(f) for f in _fields(PRODUCT_FIELDS)})


def _date_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:  # YYYY-MM-DDThh:mm:ssTZD only (doc §3.4)
        raise Problem(400, f"{name} の形式が不正です")
    return value


@bp.get("/<contract>/pos/stock")
@api("pos.stock:read")
def stock(sandbox: SmaregiSandbox):
    """Stock rows: only products whose stock has moved have one (doc §3.9). :raise 400: unknown store."""
    store_id, product_id = request.args.get("store_id"), request.args.get("product_id")
    _store(sandbox, store_id)
    since, until = _date_arg("upd_date_time-from"), _date_arg("upd_date_time-to")
    if since and until and until - since > timedelta(days=31):
        raise Problem(400, "From〜Toの期間は最大31日までの指定でご利用ください")
    rows = [row.row(platform_time) for row in sandbox.stock_rows(store_id, product_id)
            if (since is None or row.updated >= since) and (until is None or row.updated <= until)]
    return _page(rows, STOCK_FIELDS, ("productId", "storeId"), "productId,storeId")


def _write_body(sandbox: SmaregiSandbox, product_id: str, low: int, high: int) -> Move:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "リクエストボディが不正です")
    store_id, amount = body.get("storeId"), body.get("stockAmount")
    # Request values are strings like the responses (doc §3.4 examples); numbers are refused.
    if not isinstance(store_id, str) or not store_id.isdigit() or len(store_id) > 9:
        raise Problem(400, "storeId は9桁以内の数字の文字列で指定してください")
    if not isinstance(amount, str) or not amount.lstrip("-").isdigit():
        raise Problem(400, "stockAmount は整数の文字列で指定してください")
    if not low <= int(amount) <= high:
        raise Problem(400, f"stockAmount は{low}〜{high}で指定してください")
    history = body.get("stockHistory") or {}
    memo = str(history.get("memo") or "") if isinstance(history, dict) else ""
    if len(memo) > 100:
        raise Problem(400, "memo は100文字以内で指定してください")
    _product(sandbox, product_id)
    _store(sandbox, store_id)
    return Move(product_id, store_id, int(amount), False, sandbox.platform_write_division, memo)


def _written(sandbox: SmaregiSandbox, move: Move) -> Response:
    try:
        change = sandbox.api_write([move], notify=True)[0]  # echoed as a pos:stock webhook (doc §3.12)
    except SandboxError as exc:
        raise Problem(400, str(exc)) from None
    return jsonify({"productId": change.product_id, "storeId": change.store_id,
                    "stockAmount": str(change.stock_amount), "updDateTime": platform_time(change.at),
                    "stockHistory": {"id": str(change.id), "memo": change.memo}})


@bp.patch("/<contract>/pos/stock/<product_id>")
@api("pos.stock:write", write=True)
def set_stock(sandbox: SmaregiSandbox, product_id: str):
    """Absolute stock. :raise 400: bad body / unknown store; :raise 404: unknown product."""
    return _written(sandbox, _write_body(sandbox, product_id, STOCK_MIN, STOCK_MAX))


@bp.post("/<contract>/pos/stock/<product_id>/add")
@api("pos.stock:write", write=True)
def add_stock(sandbox: SmaregiSandbox, product_id: str):
    """Relative stock. :raise 400: result outside ±999999999 ("更新後の在庫数は[999999999]以下…")."""
    move = _write_body(sandbox, product_id, -ADD_MAX, ADD_MAX)
    return _written(sandbox, move._replace(relative=True))


@bp.get("/<contract>/pos/stock/changes/<product_id>/<store_id>")
@api("pos.stock-changes:read")
def stock_changes(sandbox: SmaregiSandbox, product_id: str, store_id: str):
    """在庫変動履歴 of one product × store; filters ``id``, ``stock_division`` (doc §3.9)."""
    _product(sandbox, product_id)
    _store(sandbox, store_id)
    wanted_id, division = request.args.get("id"), request.args.get("stock_division")
    rows = [c.platform_row() for c in sandbox.changes(product_id, store_id)
            if (wanted_id is None or str(c.id) == wanted_id) and (division is None or c.division == division)]
    return _page(rows, CHANGE_FIELDS, ("id",), "id")
