"""Web sales registered in the sandbox: 出荷 (shipments) and 取引 (transactions), both generations.

Legacy: ``shipment_upd`` takes one ``Shipment`` row and its ``ShipmentDetail`` rows
(``proc_division`` "U" registers; "D" with ``shipmentId`` cancels); ``transaction_upd`` takes one
``TransactionHead`` row and its ``TransactionDetail`` rows, or a head with ``transactionHeadId``
and ``cancelDivision`` "1" to cancel (取消, doc §3.10). Neither upd is documented (doc §1.4
NOT FOUND): the fields are those of the ``*_ref`` tables (doc §1.5) and the Platform bodies.

Platform: ``POST/GET /pos/transactions``, ``GET /pos/transactions/{id}``,
``POST /pos/transactions/{id}/cancel`` (doc §3.10) and the same four paths under
``/pos/shipments``, modelled on the legacy Shipment fields (doc §3.11: official schema NOT FOUND).
Cancelling a cancelled record is refused with 400 there, as an API that checks state would.

Stock effect, notifications and the registration faults are the state's
(:meth:`SmaregiSandbox.register_shipment` and friends, ``fail_next_registration``).
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import datetime

from flask import Blueprint, Response, jsonify, request

from stocklink.sandbox.smaregi import (
    JST,
    Failure,
    SandboxError,
    ShipmentLine,
    SmaregiSandbox,
    TransactionLine,
    platform_time,
)
from stocklink.sandbox.smaregi_platform import Problem, _date_arg, _page, api, problem

bp = Blueprint("smaregi_sales", __name__)
bp.register_error_handler(Problem, lambda exc: problem(exc.status, exc.detail, exc.headers))

SHIPMENT_COLUMNS = ["shipmentId", "shipmentStoreId", "recipientType", "recipientId", "recipientName",
                    "shipmentDivision", "shipmentDate", "status", "identificationNo", "memo", "modified"]
SHIPMENT_DETAIL_COLUMNS = ["shipmentId", "productId", "productCode", "productName", "size", "color", "groupCode",
                           "supplierProductNo", "cost", "quantity", "memo", "modified"]
TRANSACTION_COLUMNS = ["transactionHeadId", "transactionDateTime", "transactionHeadDivision", "cancelDivision",
                       "disposeDivision", "subtotal", "total", "storeId", "terminalId", "terminalTranId",
                       "terminalTranDateTime", "memo", "sumDate", "updDateTime"]
TRANSACTION_DETAIL_COLUMNS = ["transactionHeadId", "transactionDetailId", "transactionDetailDivision",
                              "productId", "price", "salesPrice", "quantity"]


def _invalid(message: str) -> SandboxError:
    return SandboxError("invalid", message)


def _integer(row: dict, key: str, *, required: bool = True) -> int | None:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise _invalid(f"{key} は必須です")
        return None
    if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
        raise _invalid(f"{key} は整数で指定してください")
    return int(str(value))


def _text(row: dict, key: str, limit: int) -> str:
    value = str(row.get(key) or "")
    if len(value) > limit:
        raise _invalid(f"{key} は{limit}文字以内で指定してください")
    return value


def _moment(value, legacy: bool) -> datetime:
    """A datetime as each generation writes it (legacy ``YYYY-MM-DD HH:MM:SS`` JST, Platform ISO)."""
    try:
        if legacy:
            return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST)
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _invalid(f"日時の形式が不正です: {value!r}")
    return moment


def _date(value) -> datetime:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").replace(tzinfo=JST)
    except ValueError:
        raise _invalid(f"shipmentDate は YYYY-MM-DD で指定してください: {value!r}") from None


def _shipment_lines(details) -> list[ShipmentLine]:
    if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
        raise _invalid("明細 (ShipmentDetail / details) は必須です")
    products = [str(d.get("productId") or "") for d in details]
    if len(set(products)) != len(products):  # duplicate productId not allowed (出庫, doc §3.11)
        raise _invalid("明細の商品IDが重複しています")
    return [ShipmentLine(pid, _integer(d, "quantity"), _integer(d, "cost", required=False), _text(d, "memo", 1000))
            for pid, d in zip(products, details, strict=True)]


def _register_shipment(sandbox: SmaregiSandbox, head: dict, details) -> dict:
    store_id = str(head.get("shipmentStoreId") or "")
    shipment = sandbox.register_shipment(store_id, _shipment_lines(details), _text(head, "identificationNo", 32),
                                         _date(head.get("shipmentDate")), _text(head, "recipientName", 85),
                                         _text(head, "memo", 1000))
    return shipment


def _transaction_lines(details) -> list[TransactionLine]:
    if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
        raise _invalid("明細 (TransactionDetail / details) は必須です")
    lines = []
    for d in details:
        sales_price = _integer(d, "salesPrice")
        price = _integer(d, "price", required=False)
        lines.append(TransactionLine(_integer(d, "transactionDetailId"), str(d.get("productId") or ""),
                                     _integer(d, "quantity"), sales_price, sales_price if price is None else price,
                                     str(d.get("transactionDetailDivision") or "1")))
    return lines


def _register_transaction(sandbox: SmaregiSandbox, head: dict, details, legacy: bool):
    for key in ("storeId", "terminalId", "terminalTranId", "terminalTranDateTime", "transactionHeadDivision"):
        if not head.get(key):
            raise _invalid(f"{key} は必須です")
    return sandbox.register_transaction(
        str(head["storeId"]), str(head["terminalId"]), str(head["terminalTranId"]),
        _moment(head["terminalTranDateTime"], legacy), _integer(head, "subtotal"), _integer(head, "total"),
        _transaction_lines(details), memo=_text(head, "memo", 1000), division=str(head["transactionHeadDivision"]))


def _tables(params: dict, allowed: tuple[str, str]) -> tuple[str, dict[str, list[dict]]]:
    info = params.get("proc_info")
    if not isinstance(info, dict) or str(info.get("proc_division")) not in ("U", "D"):
        raise SandboxError("request", "proc_info.proc_division は U または D です")
    data = params.get("data")
    if not isinstance(data, list) or not data:
        raise SandboxError("request", "data は必須です")
    tables: dict[str, list[dict]] = {}
    for item in data:
        if not isinstance(item, dict) or item.get("table_name") not in allowed:
            raise _invalid(f"table_name は {' / '.join(allowed)} です")
        rows = item.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SandboxError("request", "rows は配列です")
        tables.setdefault(item["table_name"], []).extend(rows)
    return str(info["proc_division"]), tables


def _one(rows: list[dict] | None, table: str) -> dict:
    if not rows or len(rows) != 1:
        raise _invalid(f"{table} は1行で指定してください")
    return rows[0]


def legacy_shipment_upd(sandbox: SmaregiSandbox, params: dict) -> dict:
    """``shipment_upd``: U registers one shipment with its details; D with ``shipmentId`` cancels."""
    sandbox.log_registration("shipment_upd", params)
    division, tables = _tables(params, ("Shipment", "ShipmentDetail"))
    head = _one(tables.get("Shipment"), "Shipment")
    if division == "D":
        sandbox.cancel_shipment(_integer(head, "shipmentId"))
        return {"result": {"Shipment": "1"}}
    if head.get("shipmentId"):
        raise _invalid("出荷の修正はできません (shipmentId)")
    _register_shipment(sandbox, head, tables.get("ShipmentDetail"))
    return {"result": {"Shipment": "1", "ShipmentDetail": str(len(tables["ShipmentDetail"]))}}


def legacy_transaction_upd(sandbox: SmaregiSandbox, params: dict) -> dict:
    """``transaction_upd`` (U only): a head with details registers; ``transactionHeadId`` with
    ``cancelDivision`` "1" and no details cancels (取消)."""
    sandbox.log_registration("transaction_upd", params)
    division, tables = _tables(params, ("TransactionHead", "TransactionDetail"))
    if division != "U":
        raise _invalid("取引の削除はできません (proc_division D)")
    head = _one(tables.get("TransactionHead"), "TransactionHead")
    if head.get("transactionHeadId"):
        if str(head.get("cancelDivision")) != "1" or tables.get("TransactionDetail"):
            raise _invalid("登録済みの取引は取消 (cancelDivision 1) のみ可能です")
        sandbox.cancel_transaction(_integer(head, "transactionHeadId"))
        return {"result": {"TransactionHead": "1"}}
    _register_transaction(sandbox, head, tables.get("TransactionDetail"), legacy=True)
    return {"result": {"TransactionHead": "1", "TransactionDetail": str(len(tables["TransactionDetail"]))}}


def before_registration(failure: Failure | None, maintenance: Callable[[], Response],
                        server_error: Callable[[], Response]) -> Response | None:
    """The refusal a registration fault answers before anything is applied, or None."""
    if failure is None:
        return None
    if failure.kind == "maintenance":
        return maintenance()
    if failure.kind == "500":
        return server_error()
    return None


def after_registration(failure: Failure | None) -> None:
    """Once applied: ``drop`` closes the connection unanswered, ``timeout`` answers too late."""
    if failure is None:
        return
    if failure.kind == "timeout":
        time.sleep(failure.seconds)
    elif failure.kind == "drop":
        connection = request.environ.get("werkzeug.socket")
        if connection is not None:
            # The server's write of the answer then fails as a dropped connection (werkzeug
            # handles that quietly); the client sees the connection closed without an answer.
            connection.shutdown(socket.SHUT_RDWR)


def _platform(view):
    """A Platform registration view: its faults, the JSON body, sandbox refusals as 400/404."""
    def wrapper(sandbox: SmaregiSandbox, **kwargs):
        sandbox.log_registration(f"{request.method} {request.path}", request.get_json(silent=True) or {})
        failure = sandbox.take_registration_failure()
        refused = before_registration(failure, lambda: problem(503, "メンテナンス中です"), lambda: problem(500))
        if refused is not None:
            return refused
        try:
            answer = view(sandbox, **kwargs)
        except SandboxError as exc:
            raise Problem(404 if exc.kind == "not_found" else 400, str(exc)) from None
        after_registration(failure)
        return answer
    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "リクエストボディが不正です")
    return body


def _shipment_json(sandbox: SmaregiSandbox, shipment) -> dict:
    with_details = request.method == "POST" or request.args.get("with_details") == "all"
    row = shipment.row(platform_time)
    if with_details:
        row["details"] = shipment.detail_rows(sandbox.products, platform_time)
    return row


def _transaction_json(transaction) -> dict:
    row = transaction.row(platform_time)
    if request.method == "POST" or request.args.get("with_details") == "all":
        row["details"] = transaction.detail_rows()
    return row


def _record(records: dict, record_id: str, what: str):
    record = records.get(int(record_id)) if record_id.isdigit() else None
    if record is None:
        raise Problem(404, f"指定された{what}が見つかりません")
    return record


@bp.post("/<contract>/pos/shipments")
@api("pos.shipments:write", write=True)
@_platform
def create_shipment(sandbox: SmaregiSandbox):
    """Register a shipment (modelled): head fields as the legacy Shipment, ``details[]``. :raise 400."""
    body = _body()
    return jsonify(_shipment_json(sandbox, _register_shipment(sandbox, body, body.get("details")))), 201


@bp.get("/<contract>/pos/shipments")
@api("pos.shipments:read")
def shipments(sandbox: SmaregiSandbox):
    """Shipments; filters ``identification_no``, ``store_id``, ``shipment_date-from/-to`` (YYYY-MM-DD)."""
    records = sandbox.shipment_records()
    wanted, store = request.args.get("identification_no"), request.args.get("store_id")
    since, until = request.args.get("shipment_date-from"), request.args.get("shipment_date-to")
    rows = [s.row(platform_time) for s in records
            if (wanted is None or s.identification_no == wanted) and (store is None or s.store_id == store)]
    rows = [r for r in rows
            if (since is None or r["shipmentDate"] >= since) and (until is None or r["shipmentDate"] <= until)]
    return _page(rows, tuple(SHIPMENT_COLUMNS), ("shipmentId",), "shipmentId")


@bp.get("/<contract>/pos/shipments/<shipment_id>")
@api("pos.shipments:read")
def shipment(sandbox: SmaregiSandbox, shipment_id: str):
    """One shipment (``with_details=all`` adds its details). :raise 404: unknown id."""
    return jsonify(_shipment_json(sandbox, _record(sandbox.shipments, shipment_id, "出荷")))


@bp.post("/<contract>/pos/shipments/<shipment_id>/cancel")
@api("pos.shipments:write", write=True)
@_platform
def cancel_shipment(sandbox: SmaregiSandbox, shipment_id: str):
    """Cancel a shipment: stock comes back, status 9. :raise 400: already cancelled; 404: unknown."""
    if _record(sandbox.shipments, shipment_id, "出荷").cancelled:
        raise Problem(400, "既に取消済みの出荷です")
    return jsonify(_shipment_json(sandbox, sandbox.cancel_shipment(int(shipment_id))))


@bp.post("/<contract>/pos/transactions")
@api("pos.transactions:write", write=True)
@_platform
def create_transaction(sandbox: SmaregiSandbox):
    """Register a transaction (doc §3.10 required fields). :raise 400: missing field, subtotal ≠ details."""
    body = _body()
    transaction = _register_transaction(sandbox, body, body.get("details"), legacy=False)
    return jsonify(_transaction_json(transaction)), 201


@bp.get("/<contract>/pos/transactions")
@api("pos.transactions:read")
def transactions(sandbox: SmaregiSandbox):
    """Transactions; filters ``store_id``, ``terminal_tran_date_time-from/-to``, ``upd_date_time-from/-to``."""
    records = sandbox.transaction_records()
    store = request.args.get("store_id")
    bounds = {name: _date_arg(name) for name in ("terminal_tran_date_time-from", "terminal_tran_date_time-to",
                                                  "upd_date_time-from", "upd_date_time-to")}

    def within(moment: datetime, prefix: str) -> bool:
        low, high = bounds[f"{prefix}-from"], bounds[f"{prefix}-to"]
        return (low is None or moment >= low) and (high is None or moment <= high)

    rows = [t.row(platform_time) for t in records if (store is None or t.store_id == store)
            and within(t.terminal_tran_at, "terminal_tran_date_time") and within(t.updated, "upd_date_time")]
    return _page(rows, tuple(TRANSACTION_COLUMNS), ("transactionHeadId",), "transactionHeadId")


@bp.get("/<contract>/pos/transactions/<transaction_id>")
@api("pos.transactions:read")
def transaction(sandbox: SmaregiSandbox, transaction_id: str):
    """One transaction (``with_details=all`` adds its details). :raise 404: unknown id."""
    return jsonify(_transaction_json(_record(sandbox.transactions, transaction_id, "取引")))


@bp.post("/<contract>/pos/transactions/<transaction_id>/cancel")
@api("pos.transactions:write", write=True)
@_platform
def cancel_transaction(sandbox: SmaregiSandbox, transaction_id: str):
    """取消: cancelDivision "1", stock comes back. :raise 400: already cancelled; 404: unknown id."""
    if _record(sandbox.transactions, transaction_id, "取引").cancelled:
        raise Problem(400, "既に取消済みの取引です")
    return jsonify(_transaction_json(sandbox.cancel_transaction(int(transaction_id))))
