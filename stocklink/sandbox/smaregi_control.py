"""The sandbox's control surface: make things happen at the simulated POS.

Each ``/sandbox/...`` endpoint takes JSON (answering JSON) or a plain HTML form from the
control page ``GET /sandbox/`` (answering 303 back to the page). Not part of Smaregi: no
auth and no CSRF token, as it only ever listens on loopback for the demo and the tests.
"""
from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    url_for,
)

from stocklink.sandbox.smaregi import (
    FAILURE_KINDS,
    REGISTRATION_FAILURE_KINDS,
    SandboxError,
    SmaregiSandbox,
    StockChange,
)

bp = Blueprint("smaregi_control", __name__, url_prefix="/sandbox")


def _sandbox() -> SmaregiSandbox:
    return current_app.extensions["smaregi_sandbox"]


def _from_form() -> bool:
    """A submission of the HTML page (answered with 303 to the page); anything else speaks JSON."""
    return request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def _input() -> dict:
    """The request's JSON object, or its form with ``product_id``/``quantity`` lists turned into lines."""
    if not _from_form():
        data = request.get_json(silent=True) if request.content_length else {}
        if not isinstance(data, dict):
            raise SandboxError("invalid", "body must be a JSON object")
        return data
    data = {key: value for key, value in request.form.items() if value != ""}
    products, quantities = request.form.getlist("product_id"), request.form.getlist("quantity")
    if len(products) > 1:
        pairs = zip(products, quantities, strict=False)
        data["lines"] = [{"product_id": p, "quantity": q} for p, q in pairs if p]
    return data


def _done(payload: dict, message: str, status: int = 200) -> Response:
    if not _from_form():
        response = jsonify(payload)
        response.status_code = status
        return response
    return redirect(url_for(".index", message=message), code=303)


def _failed(exc: Exception) -> Response:
    if not _from_form():
        response = jsonify({"error": str(exc)})
        response.status_code = 400
        return response
    return redirect(url_for(".index", error=str(exc)), code=303)


def _int(data: dict, key: str) -> int:
    try:
        return int(data[key])
    except (KeyError, TypeError, ValueError):
        raise SandboxError("invalid", f"{key} must be an integer") from None


def _movement(operation) -> Response:
    """Run a POS movement and answer its history rows and the notification it sent."""
    sandbox = _sandbox()
    before = len(sandbox.sends)
    try:
        changes: list[StockChange] = operation(sandbox, _input())
    except (SandboxError, KeyError, TypeError, ValueError) as exc:
        return _failed(exc)
    sends = [s.to_json() for s in sandbox.sends[before:]]
    return _done({"changes": [c.platform_row() for c in changes], "sends": sends},
                 f"{len(changes)} 件の在庫変動を記録しました")


def _lines(data: dict) -> list[tuple[str, int]]:
    lines = data.get("lines") or [{"product_id": data.get("product_id"), "quantity": data.get("quantity")}]
    return [(str(line["product_id"]), _int(line, "quantity")) for line in lines]


@bp.post("/sale")
def sale():
    """POS 売上 (02): ``{"lines": [{"product_id", "quantity"}], "store_id"?}`` → one notification."""
    return _movement(lambda sb, d: sb.sell(_lines(d), d.get("store_id")))


@bp.post("/return")
def pos_return():
    """POS 返品 (12): same body as ``/sale``; the pieces come back into stock."""
    return _movement(lambda sb, d: sb.refund(_lines(d), d.get("store_id")))


@bp.post("/shipment")
def shipment():
    """出荷 (10): same body as ``/sale``."""
    return _movement(lambda sb, d: sb.ship(_lines(d), d.get("store_id")))


@bp.post("/loss")
def loss():
    """ロス (14): ``{"product_id", "quantity", "store_id"?}``."""
    return _movement(lambda sb, d: sb.loss(str(d["product_id"]), _int(d, "quantity"), d.get("store_id")))


@bp.post("/stocktake")
def stocktake():
    """棚卸 (08): ``{"product_id", "stock", "store_id"?}`` — the counted stock."""
    return _movement(lambda sb, d: sb.stocktake(str(d["product_id"]), _int(d, "stock"), d.get("store_id")))


@bp.post("/correction")
def correction():
    """在庫修正 (01): ``{"product_id", "stock", "store_id"?}``."""
    return _movement(lambda sb, d: sb.correct(str(d["product_id"]), _int(d, "stock"), d.get("store_id")))


@bp.post("/products")
def add_products():
    """Add products: ``{"products": [{product_id, name, code?, price?, group_code?, size?, color?,
    stock_control_division?, stock?, store_id?}]}`` or one such object. :raise 400: invalid or duplicate."""
    sandbox = _sandbox()
    try:
        data = _input()
        items = data.get("products") or [data]
        added = []
        for item in items:
            item = dict(item)
            stock = item.pop("stock", None)
            product = sandbox.add_product(str(item.pop("product_id")), item.pop("name"),
                                          stock=None if stock in (None, "") else int(stock), **item)
            added.append(product.product_id)
    except (SandboxError, KeyError, TypeError, ValueError) as exc:
        return _failed(exc)
    return _done({"added": added}, f"{len(added)} 商品を登録しました", 201)


@bp.post("/stores")
def add_store():
    """Add a store: ``{"store_id", "name"}``."""
    try:
        data = _input()
        _sandbox().add_store(str(data["store_id"]), str(data["name"]))
    except (SandboxError, KeyError) as exc:
        return _failed(exc)
    return _done({"stores": _sandbox().stores}, "店舗を登録しました", 201)


@bp.post("/config")
def config():
    """Set notify_url, notify_mode, credentials and knobs (see ``CONFIG_KEYS``)."""
    try:
        data = _input()
        if _from_form():  # an emptied form field clears the setting
            for key in ("notify_url", "webhook_secret_header", "webhook_secret"):
                if key in request.form and not request.form[key]:
                    data[key] = None
        _sandbox().configure(**data)
    except (SandboxError, TypeError, ValueError) as exc:
        return _failed(exc)
    return _done(_config_json(_sandbox()), "設定を保存しました")


def _config_json(sandbox: SmaregiSandbox) -> dict:
    return {"contract_id": sandbox.contract_id, "notify_url": sandbox.notify_url,
            "notify_mode": sandbox.notify_mode, "webhook_secret_header": sandbox.webhook_secret_header,
            "token_lifetime": sandbox.token_lifetime, "rate_limit": sandbox.rate_limit}


@bp.post("/fail")
def fail():
    """Fail the next N API calls: ``{"kind": 500/maintenance/expired_token/slow/429, "count", "seconds"}``."""
    try:
        data = _input()
        count, seconds = int(data.get("count", 1)), float(data.get("seconds", 2.0))
        _sandbox().fail_next(str(data.get("kind")), count, seconds)
    except (SandboxError, TypeError, ValueError) as exc:
        return _failed(exc)
    return _done({"ok": True}, f"次の {data.get('count', 1)} 件を失敗させます")


@bp.post("/fail-registration")
def fail_registration():
    """Fail the next N registration calls (shipments, transactions, their cancels):
    ``{"kind": 500/maintenance/drop/timeout, "count", "seconds"}``; ``drop`` and ``timeout``
    apply the registration and leave the client without an answer."""
    try:
        data = _input()
        count, seconds = int(data.get("count", 1)), float(data.get("seconds", 3.0))
        _sandbox().fail_next_registration(str(data.get("kind")), count, seconds)
    except (SandboxError, TypeError, ValueError) as exc:
        return _failed(exc)
    return _done({"ok": True}, f"次の {data.get('count', 1)} 件の登録を失敗させます")


@bp.post("/expire-tokens")
def expire_tokens():
    """Every issued Platform token expires now."""
    _sandbox().expire_tokens()
    return _done({"ok": True}, "トークンを失効させました")


@bp.get("/sends")
def sends():
    """The send history (API送信履歴), newest first."""
    return jsonify([s.to_json() for s in reversed(_sandbox().sends)])


@bp.post("/sends/<int:send_id>/resend")
def resend(send_id: int):
    """再送: post the identical payload again. :raise 400: unknown send."""
    try:
        send = _sandbox().resend(send_id)
    except SandboxError as exc:
        return _failed(exc)
    return _done(send.to_json(), f"送信 {send_id} を再送しました ({send.status})")


@bp.get("/state")
def state():
    """Products with stock per store, recent history and the notification settings."""
    return jsonify(_sandbox().snapshot())


PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>スマレジ サンドボックス</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:2px 6px}form{margin:.6em 0}.ok{color:#070}.ng{color:#b00}
section{margin-bottom:1.5em}</style></head><body>
<h1>スマレジ サンドボックス <small>契約ID {{ state.contract_id }}</small></h1>
{% if links %}<p>{% for label, href in links.items() %}<a href="{{ href }}">{{ label }}</a> {% endfor %}</p>{% endif %}
{% if message %}<p class="ok">{{ message }}</p>{% endif %}
{% if error %}<p class="ng">{{ error }}</p>{% endif %}
<section><h2>POS 売上</h2>
<form method="post" action="{{ url_for('.sale') }}">
{% for i in range(3) %}<div><select name="product_id"><option value="">—</option>
{% for p in state.products %}<option value="{{ p.productId }}">{{ p.productId }} {{ p.productName }}
{{ p.size or '' }} {{ p.color or '' }}</option>{% endfor %}</select>
<input name="quantity" type="number" value="1" min="1"></div>{% endfor %}
<label>店舗 <select name="store_id">{% for sid, name in state.stores.items() %}
<option value="{{ sid }}">{{ sid }} {{ name }}</option>{% endfor %}</select></label>
<button>販売する</button></form></section>
<section><h2>棚卸・ロス・在庫修正</h2>
{% for action, label, field in [('stocktake', '棚卸', 'stock'), ('loss', 'ロス', 'quantity'),
                                ('correction', '在庫修正', 'stock')] %}
<form method="post" action="{{ url_for('.' + action) }}">{{ label }}:
<select name="product_id">{% for p in state.products %}<option value="{{ p.productId }}">
{{ p.productId }} {{ p.productName }} {{ p.size or '' }} {{ p.color or '' }}</option>{% endfor %}</select>
<input name="{{ field }}" type="number" value="{{ 1 if field == 'quantity' else 0 }}"
 placeholder="{{ '数量' if field == 'quantity' else '在庫数' }}">
<button>{{ label }}を登録</button></form>{% endfor %}</section>
<section><h2>送信設定</h2>
<form method="post" action="{{ url_for('.config') }}">
<label>送信先URL <input name="notify_url" size="60" value="{{ state.notify_url or '' }}"></label>
<label>方式 <select name="notify_mode">{% for m in ['legacy', 'platform'] %}
<option value="{{ m }}" {{ 'selected' if m == state.notify_mode }}>{{ m }}</option>{% endfor %}
</select></label>
<button>保存</button></form>
<form method="post" action="{{ url_for('.fail') }}">障害:
<select name="kind">{% for k in kinds %}<option>{{ k }}</option>{% endfor %}</select>
<input name="count" type="number" value="1" min="1"> 件 <input name="seconds" value="2" size="3"> 秒
<button>次のリクエストを失敗させる</button></form>
<form method="post" action="{{ url_for('.fail_registration') }}">出荷・取引登録の障害:
<select name="kind">{% for k in registration_kinds %}<option>{{ k }}</option>{% endfor %}</select>
<input name="count" type="number" value="1" min="1"> 件 <input name="seconds" value="3" size="3"> 秒
<button>次の登録を失敗させる</button>
<small>drop: 登録後に応答せず切断 / timeout: 登録後に応答を遅らせる</small></form>
<form method="post" action="{{ url_for('.expire_tokens') }}"><button>トークンを失効</button></form></section>
<section><h2>出荷・取引 (API登録, 最新20件)</h2><table><tr><th>種別</th><th>ID</th><th>店舗</th>
<th>識別番号 / メモ</th><th>状態</th></tr>
{% for sh in state.shipments|reverse %}<tr><td>出荷</td><td>{{ sh.shipmentId }}</td><td>{{ sh.shipmentStoreId }}</td>
<td>{{ sh.identificationNo }}</td><td>{{ '取消' if sh.status == '9' else '出荷済' }}</td></tr>{% endfor %}
{% for t in state.transactions|reverse %}<tr><td>取引</td><td>{{ t.transactionHeadId }}</td><td>{{ t.storeId }}</td>
<td>{{ t.memo }}</td><td>{{ '取消' if t.cancelDivision == '1' else '通常' }}</td></tr>{% endfor %}
</table></section>
<section><h2>API送信履歴</h2><table><tr><th>ID</th><th>送信日時</th><th>方式</th><th>状態</th>
<th>HTTP</th><th>応答</th><th></th></tr>
{% for s in sends %}<tr><td>{{ s.id }}</td><td>{{ s.time }}</td><td>{{ s.mode }}</td>
<td class="{{ 'ok' if s.status == 'success' else 'ng' }}">
{{ {'success': '成功', 'failed': '失敗'}.get(s.status, '送信中') }}</td>
<td>{{ s.status_code or '' }}</td><td>{{ (s.response_body or '')[:120] }}</td>
<td><form method="post" action="{{ url_for('.resend', send_id=s.id) }}">
<button>再送する</button></form></td></tr>
{% endfor %}</table></section>
<section><h2>商品と在庫</h2><table><tr><th>商品ID</th><th>コード</th><th>商品名</th><th>サイズ</th><th>カラー</th>
<th>在庫管理</th>{% for sid, name in state.stores.items() %}<th>{{ name }}</th>{% endfor %}</tr>
{% for p in state.products %}<tr><td>{{ p.productId }}</td><td>{{ p.productCode or '' }}</td>
<td>{{ p.productName }}</td><td>{{ p.size or '' }}</td><td>{{ p.color or '' }}</td>
<td>{{ '対象' if p.stockControlDivision == '0' else '対象外' }}</td>
{% for sid in state.stores %}<td>{{ '—' if p.stock[sid] is none else p.stock[sid] }}</td>{% endfor %}</tr>
{% endfor %}</table></section>
<section><h2>在庫変動履歴 (最新50件)</h2><table><tr><th>ID</th><th>日時</th><th>商品ID</th><th>店舗</th>
<th>増減</th><th>在庫数</th><th>区分</th><th>メモ</th></tr>
{% for c in state.history|reverse %}<tr><td>{{ c.id }}</td><td>{{ c.updDateTime }}</td>
<td>{{ c.productId }}</td>
<td>{{ c.storeId }}</td><td>{{ c.amount }}</td><td>{{ c.stockAmount }}</td><td>{{ c.stockDivision }}</td>
<td>{{ c.memo }}</td></tr>{% endfor %}</table></section>
</body></html>"""


@bp.get("/")
def index():
    """The HTML control page: sell, stocktake, loss, settings, failures, send history with 再送."""
    sandbox = _sandbox()
    return render_template_string(PAGE, state=sandbox.snapshot(), kinds=FAILURE_KINDS,
                                  registration_kinds=REGISTRATION_FAILURE_KINDS,
                                  sends=[s.to_json() for s in reversed(sandbox.sends)],
                                  links=current_app.config.get("SANDBOX_LINKS", {}),
                                  message=request.args.get("message"), error=request.args.get("error"))
