"""The legacy スマレジAPI of the sandbox: ``POST /access/`` with ``proc_name`` + ``params``.

Implements ``product_ref``, ``stock_ref`` (``Stock``, ``StockHistory``), ``store_ref`` and
``stock_upd`` as described in platform-apis-smaregi.md §1, and the web-sale registrations
``shipment_upd`` / ``shipment_ref`` (``Shipment``, ``ShipmentDetail``) and ``transaction_upd`` /
``transaction_ref`` (``TransactionHead``, ``TransactionDetail``) as modelled in :mod:`.smaregi_sales`.
Every error is HTTP 400 with
``{"error_code", "error", "error_description"}`` (§1.7; the per-code status is NOT FOUND).
"""
from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qsl, unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request

from stocklink.sandbox.smaregi import STOCK_DIVISIONS, Move, SandboxError, SmaregiSandbox
from stocklink.sandbox.smaregi_sales import (
    SHIPMENT_COLUMNS,
    SHIPMENT_DETAIL_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTION_DETAIL_COLUMNS,
    after_registration,
    before_registration,
    legacy_shipment_upd,
    legacy_transaction_upd,
)

bp = Blueprint("smaregi_legacy", __name__)

# Our own wording except 14, which is the recorded text (sumarejidump testdata/error_14.json).
MESSAGES = {11: "リクエストデータが不正です。", 13: "アクセストークンが無効です。", 14: "契約IDが無効です。",
            15: "処理名が不正です。", 23: "機能が無効です。", 24: "IPアドレスが許可されていません。",
            31: "テーブル名が不正です。", 32: "処理区分が不正です。", 33: "処理詳細区分が不正です。",
            41: "入力データが不正です。"}

TABLES = {
    "product_ref": {"Product": ("productId", ["productId", "categoryId", "productCode", "productName",
                                              "taxDivision", "price", "groupCode", "size", "color",
                                              "stockControlDivision", "displayFlag", "division",
                                              "salesDivision", "imageUrl", "insDateTime",
                                              "updDateTime"])},
    "stock_ref": {"Stock": ("productId", ["storeId", "productId", "stockAmount", "layawayStockAmount",
                                          "updDateTime"]),
                  "StockHistory": ("id", ["id", "updDateTime", "targetDateTime", "productId", "storeId",
                                          "amount", "stockAmount", "stockDivision", "fromStoreId",
                                          "toStoreId"])},
    "store_ref": {"Store": ("storeId", ["storeId", "storeName", "storeAbbr", "division"])},
    "shipment_ref": {"Shipment": ("shipmentId", SHIPMENT_COLUMNS),
                     "ShipmentDetail": ("shipmentId", SHIPMENT_DETAIL_COLUMNS)},
    "transaction_ref": {"TransactionHead": ("transactionHeadId", TRANSACTION_COLUMNS),
                        "TransactionDetail": ("transactionHeadId", TRANSACTION_DETAIL_COLUMNS)},
}
OPERATORS = ("=", "!=", "<>", ">=", "<=", ">", "<")
UPDATE_ROW_LIMIT = 500  # clients' batch size (doc §1.6); the server's own limit is NOT FOUND


class LegacyError(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


def _sandbox() -> SmaregiSandbox:
    return current_app.extensions["smaregi_sandbox"]


def _error(code: int, description: str) -> Response:
    response = jsonify({"error_code": code, "error": MESSAGES.get(code, "エラーが発生しました。"),
                        "error_description": description})
    response.status_code = 400
    return response


def _loads(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_body(raw: bytes) -> tuple[str, object]:
    """``proc_name`` and decoded ``params`` from a form body, URL-encoded or not (doc §1.3)."""
    text = raw.decode("utf-8", errors="replace")
    if re.search(r"(?:^|&)params=\s*[\[{]", text):
        # Raw JSON after "params=", as some clients send it: '&' and '+' inside must survive.
        match = re.search(r"(?:^|&)params=(.*?)(?=&proc_name=|$)", text, re.S)
        params = _loads(match.group(1)) if match else None
        if params is None and match:
            params = _loads(unquote_plus(match.group(1)))
        proc = re.search(r"(?:^|&)proc_name=([^&]*)", text)
        return (unquote_plus(proc.group(1)) if proc else ""), params
    fields = dict(parse_qsl(text, keep_blank_values=True))
    return fields.get("proc_name", ""), _loads(fields.get("params"))


def _authenticate(sandbox: SmaregiSandbox) -> None:
    # Both spellings arrive as the same WSGI key (X_contract_id / X-contract-id), as in PHP (doc §1.3).
    contract = request.headers.get("X-Contract-Id", "")
    token = request.headers.get("X-Access-Token", "")
    if not contract:
        raise LegacyError(14, "パラメータ不正です。(contractId is empty; a proxy or WSGI server may have "
                              "dropped the X_contract_id header)")
    if contract != sandbox.contract_id:
        raise LegacyError(14, "パラメータ不正です。(contractId is invalid)")
    if not token or token != sandbox.access_token:
        raise LegacyError(13, "パラメータ不正です。(accessToken is invalid)")
    if sandbox.allowed_ips is not None and request.remote_addr not in sandbox.allowed_ips:
        raise LegacyError(24, f"パラメータ不正です。(IP address {request.remote_addr})")


def _number(value) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _compare(left, op: str, right) -> bool:
    if left is None:
        return op in ("!=", "<>") and right is not None
    a, b = _number(left), _number(right)
    if a is None or b is None:
        a, b = str(left), str(right)
    return {"=": a == b, "!=": a != b, "<>": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]


def _condition(key: str, columns: list[str]) -> tuple[str, str]:
    parts = key.strip().split()
    column, op = (parts[0], "=") if len(parts) == 1 else (parts[0], parts[1]) if len(parts) == 2 else ("", "")
    if column not in columns or op not in OPERATORS:
        raise LegacyError(41, f"パラメータ不正です。(conditions: {key})")
    return column, op


def _sort_key(value):
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0, "" if value is None else str(value))


def _ref(sandbox: SmaregiSandbox, proc_name: str, params: dict) -> dict:
    """``*_ref``: fields, conditions (AND of operator-in-key maps), order, limit ≤ 1000, page (doc §1.5)."""
    table = params.get("table_name")
    if table not in TABLES[proc_name]:
        raise LegacyError(31, f"パラメータ不正です。(table_name: {table})")
    primary, columns = TABLES[proc_name][table]
    fields = params.get("fields") or columns
    conditions = params.get("conditions") or []
    order = params.get("order") or [primary]
    limit, page = _number(params.get("limit", 100)), _number(params.get("page", 1))
    if not isinstance(fields, list) or any(f not in columns for f in fields):
        raise LegacyError(41, "パラメータ不正です。(fields)")
    if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
        raise LegacyError(41, "パラメータ不正です。(conditions must be an array of objects)")
    if limit is None or not 1 <= limit <= 1000 or page is None or page < 1:
        raise LegacyError(41, "パラメータ不正です。(limit is 1-1000, page from 1)")
    if not isinstance(order, list):
        raise LegacyError(41, "パラメータ不正です。(order)")
    # OR is not supported (doc §1.5): every map of the array must hold, like every key of a map.
    tests = [(*_condition(key, columns), value) for cond in conditions for key, value in cond.items()]
    rows = [row for row in sandbox.legacy_table(table)
            if all(_compare(row.get(column), op, value) for column, op, value in tests)]
    for item in reversed(order):
        parts = str(item).split()
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        if not parts or parts[0] not in columns or direction not in ("asc", "desc"):
            raise LegacyError(41, f"パラメータ不正です。(order: {item})")
        rows.sort(key=lambda r, c=parts[0]: _sort_key(r.get(c)), reverse=direction == "desc")
    chunk = rows[(page - 1) * limit:page * limit]
    return {"total_count": str(len(rows)), "result": [{f: row.get(f) for f in fields} for row in chunk]}


def _stock_upd(sandbox: SmaregiSandbox, params: dict) -> dict:
    """``stock_upd``: proc_division U only, proc_detail_division 1 absolute / 2 relative (doc §1.6)."""
    info = params.get("proc_info")
    if not isinstance(info, dict):
        raise LegacyError(11, "パラメータ不正です。(proc_info)")
    if str(info.get("proc_division")) != "U":  # "U (Update) is fixed for Stocks. (Delete is prohibited)"
        raise LegacyError(32, "パラメータ不正です。(proc_division)")
    detail = str(info.get("proc_detail_division"))
    if detail not in ("1", "2"):
        raise LegacyError(33, "パラメータ不正です。(proc_detail_division)")
    data = params.get("data")
    if not isinstance(data, list) or not data:
        raise LegacyError(11, "パラメータ不正です。(data)")
    moves: list[Move] = []
    for item in data:
        if not isinstance(item, dict) or item.get("table_name") != "Stock":
            raise LegacyError(31, "パラメータ不正です。(table_name)")
        rows = item.get("rows")
        if not isinstance(rows, list):
            raise LegacyError(11, "パラメータ不正です。(rows)")
        for row in rows:
            amount = _number(row.get("stockAmount")) if isinstance(row, dict) else None
            division = str(row.get("stockDivision", "")) if isinstance(row, dict) else ""
            if amount is None or division not in STOCK_DIVISIONS:
                raise LegacyError(41, f"パラメータ不正です。(row {len(moves) + 1}: stockAmount, division)")
            moves.append(Move(str(row.get("productId")), str(row.get("storeId")), amount, detail == "2",
                              division, str(row.get("memo") or "")))
    if len(moves) > UPDATE_ROW_LIMIT:
        raise LegacyError(41, f"パラメータ不正です。(at most {UPDATE_ROW_LIMIT} rows)")
    try:
        # Changes made through stock_upd are not sent back by API送信 (doc §2.5).
        sandbox.api_write(moves, notify=False)
    except SandboxError as exc:
        raise LegacyError(41, f"パラメータ不正です。({exc})") from None
    return {"result": {"Stock": str(len(moves))}}  # the success body's content is NOT FOUND (doc §1.6)


def _registration(upd):
    def handler(sandbox: SmaregiSandbox, params: dict) -> dict:
        try:
            return upd(sandbox, params)
        except SandboxError as exc:
            code = 11 if exc.kind == "request" else 41
            raise LegacyError(code, f"パラメータ不正です。({exc})") from None
    return handler


PROCS = {"product_ref": _ref, "stock_ref": _ref, "store_ref": _ref, "stock_upd": _stock_upd,
         "shipment_ref": _ref, "transaction_ref": _ref,
         "shipment_upd": _registration(legacy_shipment_upd), "transaction_upd": _registration(legacy_transaction_upd)}
REGISTRATIONS = ("shipment_upd", "transaction_upd")


def _failure(sandbox: SmaregiSandbox) -> Response | None:
    failure = sandbox.take_failure()
    if failure is None:
        return None
    if failure.kind == "slow":
        time.sleep(failure.seconds)
        return None
    return _failure_response(failure.kind)


def _failure_response(kind: str) -> Response:
    if kind == "expired_token":
        return _error(13, "パラメータ不正です。(accessToken is invalid)")
    if kind == "429":
        return Response("Too Many Requests", status=429, headers={"Retry-After": "1"})
    if kind == "maintenance":
        return Response("<html><body>ただいまメンテナンス中です。</body></html>", status=503,
                        mimetype="text/html")
    return Response("<html><body>Internal Server Error</body></html>", status=500, mimetype="text/html")


@bp.post("/access/")
def access():
    """The one legacy endpoint. :raise 400: ``error_code`` body for every refusal."""
    sandbox = _sandbox()
    proc_name, params = parse_body(request.get_data())
    sandbox.log(f"legacy {proc_name}")
    failed = _failure(sandbox)
    if failed is not None:
        return failed
    try:
        _authenticate(sandbox)
        handler = PROCS.get(proc_name)
        if handler is None:
            raise LegacyError(15, f"パラメータ不正です。(proc_name: {proc_name})")
        if proc_name in sandbox.disabled_functions:
            raise LegacyError(23, f"パラメータ不正です。({proc_name} is disabled)")
        if not isinstance(params, dict):
            raise LegacyError(11, "パラメータ不正です。(params is not JSON)")
        registration = None
        if proc_name in REGISTRATIONS:
            registration = sandbox.take_registration_failure()
            refused = before_registration(registration, lambda: _failure_response("maintenance"),
                                          lambda: _failure_response("500"))
            if refused is not None:
                return refused
        body = handler(sandbox, proc_name, params) if handler is _ref else handler(sandbox, params)
    except LegacyError as exc:
        return _error(exc.code, exc.description)
    after_registration(registration)
    return jsonify(body)
