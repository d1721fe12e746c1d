"""The sandbox channels' control page: act as each channel's merchant, or as its outage.

One HTML page (``GET /``) with a section per sandbox channel (ColorMe Shop, Shopify,
NextEngine), served by the demo at ``/channels/`` beside the Smaregi control page. For
each channel a person can:

- see each item with the code a listing links by and its stock, and change that stock as the
  merchant would on the channel's own screen — ``POST /<kind>/stock`` ``key``, ``stock``;
- put the channel in maintenance and take it out — ``POST /<kind>/maintenance`` ``on=1|0``;
- make the next N API requests fail — ``POST /<kind>/fail`` ``fault``, ``count``;
- revoke (and, where the platform has expiry, expire) its tokens, or issue a new one to paste
  into stocklink's channel settings — ``POST /<kind>/token`` ``action``;
- as a customer, place an order of one item (by the identifier stocklink writes its stock by),
  see the recent orders and cancel one — ``POST /<kind>/order`` ``identifier``, ``quantity``;
  ``POST /<kind>/order/cancel`` ``order_id``. Any channel whose controls mix in
  :class:`_OrderControls` (its sandbox having ``place_order`` / ``cancel_order`` /
  ``recent_orders``) gets these.

Every control changes what the channel's real API answers next (the sandboxes'
:mod:`~stocklink.sandbox.common` switches and their own methods); nothing here talks to
stocklink. Plain forms answered 303 back to the page (POST-redirect-GET); a refused value
is said on the page and changes nothing. No auth and no CSRF, as the other ``/sandbox/``
controls: it only ever listens on loopback for the demo and the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, abort, current_app, redirect, render_template_string, request, url_for

from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.nextengine import NextEngineSandbox
from stocklink.sandbox.shopify import ShopifySandbox

bp = Blueprint("channels_control", __name__)

MAX_FAIL_COUNT = 1000
MAX_ORDER_QUANTITY = 999


class Refused(ValueError):
    """A form value the control cannot use; the message is shown on the page."""


@dataclass(frozen=True)
class Item:
    key: str            # the form's handle for the item (product id, inventory item id, goods code)
    code: str           # what a listing links by: 型番 / SKU / 商品コード
    name: str
    stock: int | None   # None: the channel keeps no stock for it


class _OrderControls:
    """A customer's orders on a sandbox with ``place_order(lines)``, ``cancel_order(order_id)`` and
    ``recent_orders(limit)``; the sandbox's refusal (an ``OrderRefused``, a ``ValueError``) is said
    on the page."""

    identifier_hint = "stocklink が在庫を書き込む識別子 / the identifier stocklink writes the stock by"
    RECENT = 20

    def place_order(self, identifier: str, quantity: int) -> str:
        try:
            return self.sandbox.place_order([(identifier, quantity)])
        except (ValueError, KeyError) as exc:  # an unknown identifier is a KeyError in the Shopify sandbox
            raise Refused(str(exc).strip("'\"")) from None

    def cancel_order(self, order_id: str) -> None:
        try:
            self.sandbox.cancel_order(order_id)
        except (ValueError, KeyError) as exc:
            raise Refused(str(exc).strip("'\"")) from None

    def edit_order(self, order_id: str, identifier: str, quantity: int) -> None:
        """The customer changes one line: ``identifier`` to ``quantity`` (0 removes it, a new
        identifier is a line added); the order's other lines stay as they are."""
        current = next((o for o in self.sandbox.recent_orders(10_000) if o["order_id"] == order_id), None)
        if current is None:
            raise Refused(f"no such order: {order_id}")
        lines = [(ident, qty) for ident, qty in current["lines"] if ident != identifier and qty > 0]
        try:
            self.sandbox.edit_order(order_id, [*lines, (identifier, quantity)])
        except (ValueError, KeyError) as exc:
            raise Refused(str(exc).strip("'\"")) from None

    def orders(self) -> list[dict]:
        return self.sandbox.recent_orders(self.RECENT)


class _BearerTokenControls:
    """Faults and tokens of a channel whose token never expires (ColorMe, Shopify): a throttle
    fault (``throttle_fault``) or an HTTP status, and revoke / issue."""

    throttle_fault: str

    def fail(self, fault: str, count: int) -> None:
        if fault == self.throttle_fault:
            self.sandbox.throttle_next(count)
        else:
            self.sandbox.fail_next(count, int(fault))

    def token(self, action: str) -> str | None:
        if action == "revoke":
            self.sandbox.revoke_tokens()
            return None
        return self.sandbox.issue_token()


class ColorMeControls(_BearerTokenControls, _OrderControls):
    kind, title = "colorme", "カラーミーショップ ColorMe Shop"
    throttle_fault = "429"
    faults = (("500", "HTTP 500 サーバーエラー / server error"), ("503", "HTTP 503"),
              ("429", "HTTP 429 リクエスト過多 / too many requests (Retry-After)"))
    tokens = (("revoke", "トークンを取り消す / revoke every token (→ 401)"),
              ("issue", "新しいトークンを発行 / issue a new token"))
    token_note = "ColorMe のトークンに有効期限はありません / ColorMe tokens never expire (取り消しのみ / revoke only)"
    identifier_hint = "商品ID、オプションは 商品ID:値1:値2 / product id, or id:value1:value2 for an option (123:白:S)"

    def __init__(self, sandbox: ColorMeSandbox) -> None:
        self.sandbox = sandbox

    def items(self) -> list[Item]:
        """One row per product, or per option for a product with options (as ``/v1/stocks`` lists them)."""
        rows = []
        with self.sandbox.lock:
            for pid in sorted(self.sandbox.products):
                product = self.sandbox.product_json(pid)
                if not product["variants"]:
                    rows.append(Item(str(pid), product["model_number"], product["name"], product["stocks"]))
                for i, v in enumerate(product["variants"]):
                    rows.append(Item(f"{pid}/{i}", v["model_number"] or product["model_number"],
                                     f"{product['name']} {v['title']}", v["stocks"]))
        return rows

    def set_stock(self, key: str, stock: int) -> None:
        pid, _, index = key.partition("/")
        with self.sandbox.lock:
            product = self.sandbox.products.get(int(pid)) if pid.isdigit() else None
            if product is None or (index and not (index.isdigit() and int(index) < len(product["variants"]))):
                raise Refused(f"no such item: {key}")
            if not index and (product["variants"] or not product["stock_managed"]):
                raise Refused(f"{key} keeps no stock of its own")
            variant = product["variants"][int(index)] if index else None
            self.sandbox.set_stock(int(pid), stock, variant and variant["option1_value"],
                                   variant and variant["option2_value"])



class ShopifyControls(_BearerTokenControls, _OrderControls):
    kind, title = "shopify", "Shopify"
    throttle_fault = "throttled"
    faults = (("500", "HTTP 500 サーバーエラー / server error"), ("502", "HTTP 502"),
              ("throttled", "THROTTLED (GraphQL のコスト超過 / cost bucket empty)"))
    tokens = ColorMeControls.tokens
    token_note = ("カスタムアプリのトークンに有効期限はありません / custom-app tokens never expire"
                  " (取り消しのみ / revoke only)")

    def __init__(self, sandbox: ShopifySandbox) -> None:
        self.sandbox = sandbox

    def items(self) -> list[Item]:
        """One row per inventory item, with its ``available`` at the default location."""
        with self.sandbox.lock:
            return [Item(str(item_id), item["sku"], item["sku"], self.sandbox.stock(item_id))
                    for item_id, item in sorted(self.sandbox.items.items())]

    def set_stock(self, key: str, stock: int) -> None:
        with self.sandbox.lock:
            if not key.isdigit() or self.sandbox.stock(int(key)) is None:
                raise Refused(f"no such item stocked at the default location: {key}")
            self.sandbox.set_stock(int(key), stock)



class NextEngineControls(_OrderControls):
    kind, title = "nextengine", "ネクストエンジン NextEngine"
    faults = (("003001", "003001 メイン機能が高負荷 / overloaded (connect)"),
              ("003002", "003002 メイン機能が高負荷 / overloaded"),
              ("999999", "999999 システムエラー / system error"), ("500", "HTTP 500"))
    tokens = (("expire_access", "アクセストークンを期限切れに / expire the access token (refresh still works)"),
              ("expire_all", "両方を期限切れに / expire access and refresh tokens (→ redirect, re-login)"),
              ("revoke", "トークンを取り消す / revoke every token (→ 002004)"),
              ("issue", "ログインし直す / log in again (new token pair)"))
    token_note = "アクセストークン 1日、リフレッシュトークン 3日 / access token 1 day, refresh token 3 days"
    identifier_hint = "商品コード / goods code (A-001)"

    def __init__(self, sandbox: NextEngineSandbox) -> None:
        self.sandbox = sandbox

    def items(self) -> list[Item]:
        """One row per goods code (商品コード) with its 在庫数."""
        with self.sandbox.lock:
            return [Item(code, code, goods["name"], goods["stock"])
                    for code, goods in sorted(self.sandbox.goods.items())]

    def set_stock(self, key: str, stock: int) -> None:
        with self.sandbox.lock:
            if key not in self.sandbox.goods:
                raise Refused(f"no such goods: {key}")
            self.sandbox.set_stock(key, stock)

    def fail(self, fault: str, count: int) -> None:
        if fault == "500":
            self.sandbox.fail_next(count, 500)
        else:
            self.sandbox.error_next(count, fault)

    def token(self, action: str) -> str | None:
        if action == "expire_access":
            self.sandbox.expire_access_token()
        elif action == "expire_all":
            self.sandbox.expire_tokens()
        elif action == "revoke":
            self.sandbox.revoke_tokens()
        else:
            pair = self.sandbox.login()
            return f"access_token={pair['access_token']} refresh_token={pair['refresh_token']}"
        return None


def _controls() -> dict:
    return current_app.extensions["channel_controls"]


def _channel(kind: str):
    """:raise 404: no sandbox channel of that kind on this page."""
    return _controls().get(kind) or abort(404)


def _whole(name: str, *, minimum: int, maximum: int | None = None) -> int:
    raw = request.form.get(name, "").strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        upper = f"–{maximum}" if maximum is not None else " 以上 / or more"
        raise Refused(f"{name} は {minimum}{upper} の整数 / {name} must be a whole number {minimum}{upper}: {raw!r}")
    return int(raw)


def _back(kind: str, *, message: str | None = None, error: str | None = None):
    return redirect(url_for(".index", message=message, error=error, _anchor=kind), code=303)


def _act(kind: str, action):
    channel = _channel(kind)
    try:
        message = action(channel)
    except Refused as exc:
        return _back(kind, error=f"{channel.title}: {exc}")
    return _back(kind, message=f"{channel.title}: {message}")


@bp.post("/<kind>/stock")
def stock(kind: str):
    """Set one item's stock as the merchant would on the channel. :raise 404: unknown channel."""
    def run(channel):
        value = _whole("stock", minimum=0)
        key = request.form.get("key", "")
        channel.set_stock(key, value)
        return f"{key} の在庫を {value} にしました / stock of {key} set to {value}"
    return _act(kind, run)


@bp.post("/<kind>/maintenance")
def maintenance(kind: str):
    """``on=1`` answers every API request as the platform's maintenance; ``on=0`` ends it."""
    def run(channel):
        on = request.form.get("on") == "1"
        channel.sandbox.set_maintenance(on)
        return "メンテナンス中にしました / in maintenance" if on else "メンテナンスを終了しました / maintenance over"
    return _act(kind, run)


@bp.post("/<kind>/fail")
def fail(kind: str):
    """The next ``count`` API requests fail with ``fault`` (one of the channel's :attr:`faults`)."""
    def run(channel):
        count = _whole("count", minimum=1, maximum=MAX_FAIL_COUNT)
        fault = request.form.get("fault", "")
        if fault not in dict(channel.faults):
            raise Refused(f"unknown fault: {fault!r}")
        channel.fail(fault, count)
        return f"次の {count} 件を {fault} で失敗させます / the next {count} requests fail ({fault})"
    return _act(kind, run)


@bp.post("/<kind>/token")
def token(kind: str):
    """Revoke, expire or issue tokens (the channel's :attr:`tokens`); an issued one is shown once."""
    def run(channel):
        action = request.form.get("action", "")
        labels = dict(channel.tokens)
        if action not in labels:
            raise Refused(f"unknown token action: {action!r}")
        issued = channel.token(action)
        if issued is None:
            return labels[action]
        return ("新しいトークン / new token — stocklink のチャネル設定に貼り付け / paste into the channel's settings: "
                f"{issued}")
    return _act(kind, run)


@bp.post("/<kind>/order")
def place_order(kind: str):
    """Place an order of ``quantity`` × ``identifier`` as a customer would.

    :raise 404: unknown channel, or one that takes no orders here."""
    def run(channel):
        quantity = _whole("quantity", minimum=1, maximum=MAX_ORDER_QUANTITY)
        identifier = request.form.get("identifier", "").strip()
        if not identifier:
            raise Refused("identifier は必須 / identifier is required")
        order_id = channel.place_order(identifier, quantity)
        return f"注文 {order_id} を受けました / order {order_id} placed: {identifier} × {quantity}"
    _ordering(kind)
    return _act(kind, run)


@bp.post("/<kind>/order/edit")
def edit_order(kind: str):
    """Change one line of order ``order_id``: ``identifier`` to ``quantity`` (0 removes it).

    :raise 404: unknown channel, or one that takes no orders here."""
    def run(channel):
        order_id = request.form.get("order_id", "").strip()
        identifier = request.form.get("identifier", "").strip()
        quantity = _whole("quantity", minimum=0, maximum=MAX_ORDER_QUANTITY)
        if not identifier:
            raise Refused("identifier は必須 / identifier is required")
        channel.edit_order(order_id, identifier, quantity)
        return f"注文 {order_id} を変更しました / order {order_id} edited: {identifier} × {quantity}"
    _ordering(kind)
    return _act(kind, run)


@bp.post("/<kind>/order/cancel")
def cancel_order(kind: str):
    """Cancel order ``order_id``; its stock comes back on the channel.

    :raise 404: unknown channel, or one that takes no orders here."""
    def run(channel):
        order_id = request.form.get("order_id", "").strip()
        channel.cancel_order(order_id)
        return f"注文 {order_id} をキャンセルしました / order {order_id} cancelled"
    _ordering(kind)
    return _act(kind, run)


def _ordering(kind: str) -> None:
    if not isinstance(_channel(kind), _OrderControls):
        abort(404)


PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>チャネル サンドボックス / sandbox channels</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:2px 6px}form{margin:.3em 0}.ok{color:#070;overflow-wrap:anywhere}
.ng{color:#b00}section{margin-bottom:2em}.inline{display:inline}.state{font-weight:bold}
.on{color:#b00}.controls{display:flex;gap:2em;flex-wrap:wrap}</style></head><body>
<h1>チャネル サンドボックス <small>sandbox channels</small></h1>
{% if links %}<p>{% for label, href in links.items() %}<a href="{{ href }}">{{ label }}</a> {% endfor %}</p>{% endif %}
{% if message %}<p class="ok">{{ message }}</p>{% endif %}
{% if error %}<p class="ng">{{ error }}</p>{% endif %}
<p>{% for c in channels %}<a href="#{{ c.kind }}">{{ c.title }}</a> · {% endfor %}</p>
{% for c in channels %}
<section id="{{ c.kind }}"><h2>{{ c.title }}</h2>
<p class="state">状態 / state:
{% if c.sandbox.maintenance %}<span class="on">メンテナンス中 / in maintenance</span>
{% else %}稼働中 / up{% endif %}</p>
<div class="controls">
<form method="post" action="{{ url_for('.maintenance', kind=c.kind) }}">
<input type="hidden" name="on" value="{{ '0' if c.sandbox.maintenance else '1' }}">
<button>{{ 'メンテナンス終了 / end maintenance' if c.sandbox.maintenance
 else 'メンテナンスにする / start maintenance' }}</button></form>
<form method="post" action="{{ url_for('.fail', kind=c.kind) }}">失敗 / fail:
<select name="fault">{% for value, label in c.faults %}<option value="{{ value }}">{{ label }}</option>
{% endfor %}</select>
次の / next <input name="count" type="number" value="1" min="1" max="{{ max_count }}" size="4"> 件 / requests
<button>失敗させる / fail them</button></form>
<div>トークン / tokens: <small>{{ c.token_note }}</small>
{% for value, label in c.tokens %}<form method="post" action="{{ url_for('.token', kind=c.kind) }}" class="inline">
<input type="hidden" name="action" value="{{ value }}"><button>{{ label }}</button></form>{% endfor %}</div>
</div>
<h3>在庫 / stock <small>(ショップの管理画面での編集として / as the merchant editing on the channel)</small></h3>
{% set items = c.items() %}
{% if items %}<table><tr><th>ID</th><th>コード / code</th><th>名前 / name</th><th>在庫 / stock</th></tr>
{% for item in items %}<tr><td>{{ item.key }}</td><td>{{ item.code }}</td><td>{{ item.name }}</td>
<td>{% if item.stock is none %}—{% else %}
<form method="post" action="{{ url_for('.stock', kind=c.kind) }}" class="inline">
<input type="hidden" name="key" value="{{ item.key }}">
<input name="stock" type="number" min="0" value="{{ item.stock }}" size="6" aria-label="{{ item.code }} 在庫 / stock">
<button>保存 / save</button></form>{% endif %}</td></tr>{% endfor %}</table>
{% else %}<p>商品がありません / no items</p>{% endif %}
{% if c.orders is defined %}
<h3>注文 / orders <small>(お客様の注文として / as a customer ordering)</small></h3>
<form method="post" action="{{ url_for('.place_order', kind=c.kind) }}">
<input name="identifier" required size="24" aria-label="{{ c.title }} identifier" placeholder="{{ c.identifier_hint }}">
× <input name="quantity" type="number" min="1" max="{{ max_quantity }}" value="1" size="4" aria-label="quantity">
<button>注文する / place order</button> <small>{{ c.identifier_hint }}</small></form>
{% set orders = c.orders() %}
{% if orders %}<table><tr><th>注文 / order</th><th>注文日時 / placed</th><th>更新 / updated</th>
<th>状態 / status</th><th>明細 / lines</th><th></th></tr>
{% for o in orders %}<tr><td>{{ o.order_id }}</td><td>{{ o.placed }}</td><td>{{ o.updated }}</td>
<td>{{ o.status }}{% if o.cancelled %} <span class="on">キャンセル / cancelled</span>{% endif %}</td>
<td>{% for identifier, quantity in o.lines %}{{ identifier }} × {{ quantity }}{% if not loop.last %}, {% endif %}
{% endfor %}</td>
<td>{% if not o.cancelled %}<form method="post" action="{{ url_for('.cancel_order', kind=c.kind) }}" class="inline">
<input type="hidden" name="order_id" value="{{ o.order_id }}"><button>キャンセル / cancel</button></form>
<form method="post" action="{{ url_for('.edit_order', kind=c.kind) }}" class="inline">
<input type="hidden" name="order_id" value="{{ o.order_id }}">
<input name="identifier" required size="14" aria-label="identifier" value="{{ o.lines[0][0] if o.lines else '' }}">
× <input name="quantity" type="number" min="0" max="{{ max_quantity }}" value="1" size="3" aria-label="quantity">
<button>変更 / edit</button></form>
{% endif %}</td></tr>
{% endfor %}</table>
{% else %}<p>注文がありません / no orders</p>{% endif %}
{% endif %}
</section>
{% endfor %}
</body></html>"""


@bp.get("/")
def index():
    """The page: each channel's state, its failure and token controls, its items' stock and, where
    it takes orders here, its recent orders."""
    return render_template_string(PAGE, channels=list(_controls().values()), max_count=MAX_FAIL_COUNT,
                                  max_quantity=MAX_ORDER_QUANTITY,
                                  links=current_app.config.get("SANDBOX_LINKS", {}),
                                  message=request.args.get("message"), error=request.args.get("error"))


def create_app(*, colorme: ColorMeSandbox | None = None, shopify: ShopifySandbox | None = None,
               nextengine: NextEngineSandbox | None = None, links: dict[str, str] | None = None) -> Flask:
    """The control page over the given sandboxes; ``links`` (label → URL) lead to the other control pages."""
    app = Flask(__name__)
    controls = [ColorMeControls(colorme) if colorme else None, ShopifyControls(shopify) if shopify else None,
                NextEngineControls(nextengine) if nextengine else None]
    app.extensions["channel_controls"] = {c.kind: c for c in controls if c is not None}
    app.config["SANDBOX_LINKS"] = dict(links or {})
    app.register_blueprint(bp)
    return app
