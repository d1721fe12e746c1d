"""A simulated NextEngine API (platform-apis-channels.md §2).

Every API call is ``POST /api_v1_<entity>/<verb>`` with a form body and is answered
HTTP 200 with ``result`` ``success`` / ``error`` / ``redirect`` (§2.3, §2.4). Stock is
written only as deltas through a goods CSV upload that lands in a queue (§2.6).

Tokens (§2.2): access tokens live 1 day, refresh tokens 3 days. With
``rotate="every_call"`` (the default, the strict reading of §0) every authenticated
call issues a new pair; with ``rotate="on_expiry"`` (what the official FAQ describes)
only the first call after the access token expired does. A rotated-away access token
is answered ``002002``; an unknown or revoked one ``002004``; expired tokens without
a usable refresh token ``result: "redirect"``.

Python control methods on :class:`NextEngineSandbox`, mirrored under ``/sandbox/``:

- ``add_goods(code, stock, allocated=0, name="", representation_id=None)`` — ``POST /sandbox/goods``;
  ``delete_goods(code)`` (``goods_deleted_flag`` 1)
- ``stock(code)`` — ``GET /sandbox/goods/<code>``
- ``set_stock(code, stock)`` (a sale NextEngine took) — ``POST /sandbox/goods/<code>/stock``
- ``login()`` → token dict — ``POST /sandbox/tokens``; ``issue_uid_state()`` for ``/api_neauth``
- ``expire_access_token()`` / ``expire_tokens()`` / ``revoke_tokens()`` —
  ``POST /sandbox/tokens/expire`` ``{"refresh": false}``, ``POST /sandbox/tokens/revoke``
- ``advance(seconds)`` (the sandbox clock) — ``POST /sandbox/clock/advance``
- ``process_queue()`` — ``POST /sandbox/queue/process``; ``auto_process=True`` processes
  each upload as it arrives
- ``error_next(count, code)`` (e.g. ``003002`` overload) — ``POST /sandbox/error-next``
- ``uploads`` (every uploaded CSV and its queue row) — ``GET /sandbox/uploads``
- maintenance (``002007``), forced 5xx, delay, request log: :mod:`stocklink.sandbox.common`.

Orders (受注伝票, §2.7), served by ``/api_v1_receiveorder_base/search`` and
``/api_v1_receiveorder_row/search``: ``place_order(lines, status="1")`` (``lines`` as
``(商品コード, quantity)``; returns the 伝票番号), ``edit_order(order_id, lines)``,
``set_order_status(order_id, status_id)``, ``cancel_order(order_id)`` (cancel type set, every
row's cancel flag 1) and ``recent_orders(limit)`` — ``POST /sandbox/orders``,
``POST /sandbox/orders/<id>``, ``POST /sandbox/orders/<id>/cancel``, ``GET /sandbox/orders``
(:mod:`stocklink.sandbox.orders`). How an order moves stock (引当, then 出荷確定):
:mod:`stocklink.sandbox.nextengine_orders`.
"""
from __future__ import annotations

import base64
import csv
import gzip
import io
import secrets
from datetime import datetime, timedelta, timezone

from flask import Flask, jsonify, request

from stocklink.sandbox.common import SandboxState, install
from stocklink.sandbox.nextengine_orders import ReceiveOrderBook
from stocklink.sandbox.orders import install_order_controls

ACCESS_TTL = timedelta(days=1)
REFRESH_TTL = timedelta(days=3)

QUE_FAILED, QUE_WAITING, QUE_RUNNING, QUE_DONE = -1, 0, 1, 2  # §2.6 que_status_id

# Messages of the codes in §2.4. Texts other than 002001 and the seed's are ours.
MESSAGES = {
    "000001": "存在しないパスです。",
    "002001": "POSTパラメータにaccess_tokenが指定されていません",
    "002002": "古いアクセストークンでリクエストしました。",
    "002003": "アクセストークンの有効期限が切れました。再度ログインしてください。",
    "002004": "アクセストークンが不正です。",
    "002007": "ただいまメンテナンス中です。",
    "003001": "メイン機能が高負荷のため接続できませんでした。",
    "003002": "メイン機能が高負荷です。",
    "999999": "システムエラーが発生しました。",
}
# Seed 001: a row for goods NextEngine does not know is read as a new registration and
# fails with 「仕入れ先コードは必須です。商品名は必須です…」. Field list from §2's notes.
NEW_GOODS_ERROR = "仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。"
OVER_FREE_STOCK_ERROR = "フリー在庫数以上の在庫を減らすことはできません。"
BAD_QUANTITY_ERROR = "在庫数は整数で入力してください。"


JST = timezone(timedelta(hours=9))


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")  # §2.2: YYYY-MM-DD HH:MM:SS


class NextEngineSandbox(ReceiveOrderBook, SandboxState):
    """In-memory NextEngine company: goods stock, tokens, the upload queue and 受注伝票."""

    def __init__(self, *, rotate: str = "every_call", auto_process: bool = False,
                 company_name: str = "サンドボックス商店") -> None:
        super().__init__()
        if rotate not in ("every_call", "on_expiry"):
            raise ValueError("rotate must be 'every_call' or 'on_expiry'")
        self.rotate = rotate
        self.auto_process = auto_process
        self.company_name = company_name
        self.goods: dict[str, dict] = {}
        self.queue: dict[str, dict] = {}
        self.uploads: list[dict] = []
        self.orders: dict[str, dict] = {}
        self._next_order = 1001
        self._access: dict[str, dict] = {}   # token -> {"expires", "retired"}
        self._refresh: dict[str, datetime] = {}
        self._current: tuple[str, str] | None = None
        self._uid_states: set[tuple[str, str]] = set()
        self._errors_next: list[str] = []
        self._offset = timedelta()
        self._next_que = 10001

    # Clock ---------------------------------------------------------------
    def now(self) -> datetime:
        # NextEngine answers and searches in Japan time (§2.2: YYYY-MM-DD HH:MM:SS).
        return datetime.now(JST).replace(microsecond=0, tzinfo=None) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (token lifetimes are measured by it)."""
        with self.lock:
            self._offset += timedelta(seconds=seconds)

    # Tokens --------------------------------------------------------------
    def login(self) -> dict:
        """Issue a fresh token pair as ``/api_neauth`` would after a merchant login."""
        with self.lock:
            return self._issue()

    def issue_uid_state(self) -> dict:
        """A ``uid``/``state`` pair as NextEngine hands the redirect URI (§2.2 step 1)."""
        pair = (secrets.token_hex(16), secrets.token_hex(16))
        with self.lock:
            self._uid_states.add(pair)
        return {"uid": pair[0], "state": pair[1]}

    def exchange_uid_state(self, uid: str, state: str) -> dict | None:
        """Tokens for a ``uid``/``state`` pair, once (§2.2 step 2); ``None`` if not issued."""
        with self.lock:
            if (uid, state) not in self._uid_states:
                return None
            self._uid_states.discard((uid, state))
            return self._issue()

    def _issue(self) -> dict:
        if self._current:
            self._retire(*self._current)
        access, refresh = secrets.token_hex(20), secrets.token_hex(20)
        now = self.now()
        self._access[access] = {"expires": now + ACCESS_TTL, "retired": False}
        self._refresh[refresh] = now + REFRESH_TTL
        self._current = (access, refresh)
        return self._token_fields()

    def _retire(self, access: str, refresh: str) -> None:
        if access in self._access:
            self._access[access]["retired"] = True
        self._refresh.pop(refresh, None)

    def _token_fields(self) -> dict:
        access, refresh = self._current
        return {"access_token": access,
                "access_token_end_date": _fmt(self._access[access]["expires"]),
                "refresh_token": refresh,
                "refresh_token_end_date": _fmt(self._refresh[refresh])}

    def current_tokens(self) -> dict:
        """The token pair NextEngine currently honours."""
        with self.lock:
            return self._token_fields() if self._current else {}

    def expire_access_token(self) -> None:
        """Make the current access token expired (the refresh token still works)."""
        with self.lock:
            if self._current:
                self._access[self._current[0]]["expires"] = self.now() - timedelta(seconds=1)

    def expire_tokens(self) -> None:
        """Expire both tokens: the next call is answered ``redirect`` (re-login needed)."""
        with self.lock:
            if self._current:
                past = self.now() - timedelta(seconds=1)
                self._access[self._current[0]]["expires"] = past
                self._refresh[self._current[1]] = past

    def revoke_tokens(self) -> None:
        """Forget every token (the app was removed from the NextEngine account)."""
        with self.lock:
            self._access.clear()
            self._refresh.clear()
            self._current = None

    def authenticate(self, form) -> tuple[dict | None, dict]:
        """``(error_body, token_fields)`` for one API call, rotating per ``self.rotate``."""
        access, refresh = form.get("access_token"), form.get("refresh_token")
        with self.lock:
            if not access:
                return _err("002001"), {}
            entry = self._access.get(access)
            if entry is None:
                return _err("002004"), {}
            if entry["retired"]:
                return _err("002002"), {}
            now = self.now()
            if entry["expires"] <= now:
                # §2.2 step 3/4: an expired access token is renewed by a live refresh token.
                if not refresh or refresh != self._current[1] or self._refresh[refresh] <= now:
                    return {"result": "redirect", "code": "002003",
                            "message": MESSAGES["002003"]}, {}
                return None, self._issue()
            if self.rotate == "every_call":
                return None, self._issue()
            return None, self._token_fields()

    # Goods and stock -----------------------------------------------------
    def add_goods(self, code: str, stock: int = 0, *, allocated: int = 0, name: str = "",
                  representation_id: str | None = None) -> None:
        """Register goods ``code`` (商品コード) with ``stock`` (在庫数); ``representation_id`` is
        the 代表商品コード grouping its variants (the code itself when not given)."""
        now = _fmt(self.now())
        with self.lock:
            self.goods[code] = {"name": name or code, "stock": int(stock),
                                "allocated": int(allocated), "created": now, "modified": now,
                                "representation_id": representation_id or code, "deleted": False}

    def delete_goods(self, code: str) -> None:
        """Mark goods deleted as NextEngine does (``goods_deleted_flag`` 1; the record stays)."""
        with self.lock:
            self.goods[code]["deleted"] = True

    def stock(self, code: str) -> int | None:
        with self.lock:
            goods = self.goods.get(code)
            return None if goods is None else goods["stock"]

    def set_stock(self, code: str, stock: int) -> None:
        """Overwrite 在庫数 as NextEngine itself would (an order shipped, a stocktake)."""
        with self.lock:
            self.goods[code]["stock"] = max(0, int(stock))
            self.goods[code]["modified"] = _fmt(self.now())

    def stock_row(self, code: str) -> dict:
        g = self.goods[code]
        free = max(0, g["stock"] - g["allocated"])
        return {"stock_goods_id": code, "stock_quantity": str(g["stock"]),
                "stock_allocation_quantity": str(g["allocated"]), "stock_defective_quantity": "0",
                "stock_remaining_order_quantity": "0", "stock_out_quantity": "0",
                "stock_free_quantity": str(free), "stock_deleted_flag": "0",
                "stock_creation_date": g["created"], "stock_last_modified_date": g["modified"]}

    def goods_row(self, code: str) -> dict:
        """A ``/api_v1_master_goods/search`` row (§2.5): every value a string (§2.3)."""
        g = self.goods[code]
        return {"goods_id": code, "goods_name": g["name"], "goods_representation_id": g["representation_id"],
                "stock_quantity": str(g["stock"]), "goods_deleted_flag": "1" if g.get("deleted") else "0",
                "goods_creation_date": g["created"], "goods_last_modified_date": g["modified"]}

    # Failures ------------------------------------------------------------
    def error_next(self, count: int = 1, code: str = "003002") -> None:
        """Answer the next ``count`` API calls ``result: "error"`` with ``code``."""
        with self.lock:
            self._errors_next.extend([code] * count)

    def take_error(self) -> str | None:
        with self.lock:
            return self._errors_next.pop(0) if self._errors_next else None

    # Upload queue ----------------------------------------------------------
    def enqueue(self, csv_text: str, data_type: str) -> str:
        with self.lock:
            que_id = str(self._next_que)
            self._next_que += 1
            now = _fmt(self.now())
            row = {"que_id": que_id, "que_method_name": "SYOHIN_KIHON_CSV",
                   "que_status_id": QUE_WAITING, "que_message": "",
                   "que_creation_date": now, "que_last_modified_date": now,
                   "que_client_file_name": "", "que_file_name": f"{que_id}.csv"}
            self.queue[que_id] = row
            self.uploads.append({"que_id": que_id, "data_type": data_type, "csv": csv_text})
            if self.auto_process:
                self._process(que_id)
            return que_id

    def process_queue(self) -> list[str]:
        """Process every waiting upload; returns their que_ids."""
        with self.lock:
            waiting = [q for q, row in self.queue.items() if row["que_status_id"] == QUE_WAITING]
            for que_id in waiting:
                self._process(que_id)
            return waiting

    def _process(self, que_id: str) -> None:
        """Apply one upload row by row; bad rows fail alone (§2.6: 問題ない商品のみ取り込み)."""
        upload = next(u for u in self.uploads if u["que_id"] == que_id)
        errors = []
        reader = csv.DictReader(io.StringIO(upload["csv"]))
        if not reader.fieldnames or "syohin_code" not in reader.fieldnames:
            errors.append("1行目: syohin_codeは必須項目です。")
        else:
            for line, row in enumerate(reader, start=2):
                message = self._apply_row(row)
                if message:
                    errors.append(f"{line}行目: 商品コード[{row.get('syohin_code', '')}] {message}")
        queue_row = self.queue[que_id]
        queue_row["que_status_id"] = QUE_FAILED if errors else QUE_DONE
        queue_row["que_message"] = "\n".join(errors)
        queue_row["que_last_modified_date"] = _fmt(self.now())

    def _apply_row(self, row: dict) -> str | None:
        code = (row.get("syohin_code") or "").strip()
        goods = self.goods.get(code)
        if goods is None:
            return NEW_GOODS_ERROR
        raw = (row.get("zaiko_su") or "").strip()
        if raw == "":
            return None  # §2.6: a blank zaiko_su never overwrites the stock with 0
        try:
            delta = int(raw)
        except ValueError:
            return BAD_QUANTITY_ERROR
        free = goods["stock"] - goods["allocated"]
        if delta < 0 and -delta > free:
            return OVER_FREE_STOCK_ERROR  # §2.6: never below free stock, so never negative
        goods["stock"] += delta
        goods["modified"] = _fmt(self.now())
        return None


def _err(code: str) -> dict:
    return {"result": "error", "code": code, "message": MESSAGES.get(code, MESSAGES["999999"])}


def _conditions(form, field: str) -> set[str] | None:
    """Values of ``<field>-eq`` / ``<field>-in`` (§2.3 search conditions)."""
    values: set[str] = set()
    found = False
    if f"{field}-eq" in form:
        found = True
        values.add(form[f"{field}-eq"])
    if f"{field}-in" in form:
        found = True
        values.update(v for v in form[f"{field}-in"].split(",") if v)
    return values if found else None


def _compare(rows: list[dict], form) -> list[dict]:
    """Apply the ``<field>-eq`` / ``-neq`` / ``-gte`` / ``-gt`` / ``-lte`` / ``-lt`` / ``-in`` conditions of a search
    (§2.3; values compare as NextEngine's strings do, which orders ``YYYY-MM-DD HH:MM:SS`` dates)."""
    ops = {"eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gte": lambda a, b: a >= b,
           "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
           "in": lambda a, b: a in b.split(",")}
    for name, value in form.items():
        field, _, op = name.rpartition("-")
        if op in ops and field:
            rows = [r for r in rows if r.get(field) is not None and ops[op](str(r[field]), value)]
    return rows


def _sorted(rows: list[dict], form) -> list[dict]:
    """Apply ``sort=<field>-asc|-desc[,…]`` (§2.3); rows keep their order without one."""
    for item in reversed([i for i in form.get("sort", "").split(",") if i]):
        field, _, direction = item.rpartition("-")
        rows = sorted(rows, key=lambda r, f=field: str(r.get(f) or ""), reverse=direction == "desc")
    return rows


def _select(rows: list[dict], form) -> dict:
    fields = [f for f in form.get("fields", "").split(",") if f]
    offset = int(form.get("offset", 0) or 0)
    limit = int(form.get("limit", 10000) or 10000)
    chunk = rows[offset:offset + limit]
    data = [{f: r.get(f) for f in fields} for r in chunk] if fields else chunk
    return {"result": "success", "count": str(len(data)), "data": data}


def _decode_upload(form) -> str:
    data_type = form.get("data_type", "")
    data = form.get("data", "")
    if data_type == "csv":
        return data
    if data_type == "gz":
        return gzip.decompress(base64.b64decode(data)).decode("utf-8")
    raise ValueError("data_type")


def create_app(sandbox: NextEngineSandbox) -> Flask:
    """The Flask app serving ``sandbox`` at NextEngine's paths."""
    app = Flask(__name__)

    def fault(status, maintenance):
        if maintenance:
            return jsonify(_err("002007"))  # §2.4: maintenance is HTTP 200 with code 002007
        return "Internal Server Error", status

    install(app, sandbox, fault)

    def api(handler):
        """Run ``handler(form)`` for an authenticated call and attach the tokens (§2.2)."""
        form = request.form
        error, tokens = sandbox.authenticate(form)
        if error is not None:
            return jsonify(error)
        code = sandbox.take_error()
        body = _err(code) if code else handler(form)
        # FAQ: error answers still carry valid tokens, except for bad tokens / 999999.
        return jsonify({**body, **tokens})

    @app.post("/api_neauth")
    def neauth():
        uid = request.form.get("uid", "")
        tokens = sandbox.exchange_uid_state(uid, request.form.get("state", ""))
        if tokens is None:
            return jsonify({"result": "redirect", "code": "001002", "message": "uidまたはstateが不正です。"})
        return jsonify({"result": "success", "uid": uid, "company_ne_id": "NE000001",
                        "company_name": sandbox.company_name, **tokens})

    @app.post("/api_v1_login_company/info")
    def company_info():
        return api(lambda form: {"result": "success", "count": "1", "data": [
            {"company_id": "1", "company_ne_id": "NE000001", "company_name": sandbox.company_name,
             "company_kana": "サンドボックスショウテン", "company_host": "main"}]})

    @app.post("/api_v1_master_stock/search")
    def stock_search():
        def handler(form):
            wanted = _conditions(form, "stock_goods_id")
            with sandbox.lock:
                codes = [c for c in sorted(sandbox.goods) if wanted is None or c in wanted]
                rows = [sandbox.stock_row(c) for c in codes]
            return _select(rows, form)
        return api(handler)

    @app.post("/api_v1_master_goods/search")
    def goods_search():
        def handler(form):
            wanted = _conditions(form, "goods_id")
            with sandbox.lock:
                rows = [sandbox.goods_row(c) for c in sorted(sandbox.goods) if wanted is None or c in wanted]
            return _select(_sorted(_compare(rows, form), form), form)
        return api(handler)

    @app.post("/api_v1_master_goods/count")
    def goods_count():
        # §2.3: ``count`` takes the search conditions and answers how many rows match.
        def handler(form):
            wanted = _conditions(form, "goods_id")
            with sandbox.lock:
                rows = [sandbox.goods_row(c) for c in sorted(sandbox.goods) if wanted is None or c in wanted]
            return {"result": "success", "count": str(len(_compare(rows, form)))}
        return api(handler)

    @app.post("/api_v1_master_goods/upload")
    def goods_upload():
        def handler(form):
            try:
                text = _decode_upload(form)
            except (ValueError, OSError):
                return {"result": "error", "code": "040001",
                        "message": "data_typeまたはdataが不正です。"}
            return {"result": "success", "que_id": sandbox.enqueue(text, form.get("data_type"))}
        return api(handler)

    @app.post("/api_v1_system_que/search")
    def que_search():
        def handler(form):
            wanted = _conditions(form, "que_id")
            with sandbox.lock:
                rows = [{k: str(v) for k, v in row.items()} for q, row in sandbox.queue.items()
                        if wanted is None or q in wanted]
            return _select(_compare(rows, form), form)
        return api(handler)

    @app.post("/api_v1_receiveorder_base/search")
    def receiveorder_search():
        def handler(form):
            with sandbox.lock:
                rows = [sandbox.order_row(o) for o in sorted(sandbox.orders, key=int)]
            return _select(_sorted(_compare(rows, form), form), form)
        return api(handler)

    @app.post("/api_v1_receiveorder_row/search")
    def receiveorder_row_search():
        def handler(form):
            with sandbox.lock:
                rows = [r for o in sorted(sandbox.orders, key=int) for r in sandbox.order_rows(o)]
            return _select(_sorted(_compare(rows, form), form), form)
        return api(handler)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _no_path(_exc):
        return jsonify(_err("000001"))  # §2.4: 存在しないパス

    _controls(app, sandbox)
    return app


def _controls(app: Flask, sandbox: NextEngineSandbox) -> None:
    def body() -> dict:
        return request.get_json(silent=True) or {}

    @app.post("/sandbox/goods")
    def _add_goods():
        b = body()
        sandbox.add_goods(b["goods_id"], int(b.get("stock", 0)), allocated=int(b.get("allocated", 0)),
                          name=b.get("name", ""), representation_id=b.get("representation_id"))
        return jsonify(ok=True), 201

    @app.get("/sandbox/goods/<code>")
    def _show_goods(code: str):
        stock = sandbox.stock(code)
        if stock is None:
            return jsonify(error="not found"), 404
        return jsonify(goods_id=code, stock=stock)

    @app.post("/sandbox/goods/<code>/stock")
    def _set_stock(code: str):
        try:
            sandbox.set_stock(code, int(body()["stock"]))
        except KeyError:
            return jsonify(error="not found"), 404
        return jsonify(goods_id=code, stock=sandbox.stock(code))

    @app.post("/sandbox/tokens")
    def _login():
        return jsonify(sandbox.login()), 201

    @app.post("/sandbox/tokens/expire")
    def _expire():
        if body().get("refresh", False):
            sandbox.expire_tokens()
        else:
            sandbox.expire_access_token()
        return jsonify(ok=True)

    @app.post("/sandbox/tokens/revoke")
    def _revoke():
        sandbox.revoke_tokens()
        return jsonify(ok=True)

    @app.post("/sandbox/clock/advance")
    def _advance():
        sandbox.advance(float(body().get("seconds", 0)))
        return jsonify(now=_fmt(sandbox.now()))

    @app.post("/sandbox/queue/process")
    def _process():
        return jsonify(processed=sandbox.process_queue())

    @app.post("/sandbox/error-next")
    def _error_next():
        b = body()
        sandbox.error_next(int(b.get("count", 1)), str(b.get("code", "003002")))
        return jsonify(ok=True)

    install_order_controls(app, sandbox)

    @app.get("/sandbox/uploads")
    def _uploads():
        with sandbox.lock:
            return jsonify(uploads=list(sandbox.uploads))
