"""ColorMe order reading (GET /v1/sales, platform-apis-channels.md §1.6): the sandbox's order book
and ColorMeClient.read_orders over real HTTP on loopback."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests

from stocklink.platforms.base import AuthError, TemporaryError
from stocklink.platforms.colorme import PLATFORM, ColorMeClient
from stocklink.platforms.interfaces import OrderReader
from stocklink.sandbox.colorme import ColorMeSandbox, create_app
from stocklink.sandbox.orders import OrderRefused
from stocklink.sandbox.server import serve_in_thread


@pytest.fixture
def shop():
    """A ColorMe sandbox on loopback with a plain product (5 in stock) and a T-shirt option (3)."""
    sandbox = ColorMeSandbox()
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    sandbox.plain = sandbox.add_product("マグカップ", stocks=5, model_number="MUG01")
    sandbox.shirt = sandbox.add_product("Tシャツ", model_number="TS01", variants=[
        {"option1_value": "白", "option2_value": "S", "stocks": 3, "model_number": "TS01-W-S"}])
    yield sandbox
    server.stop()


@pytest.fixture
def client(shop):
    """A ColorMe client holding a valid token of ``shop``."""
    with requests.Session() as session:
        yield ColorMeClient(shop.url, {"access_token": shop.issue_token()}, session=session, timeout=5.0)


def _moment(shop: ColorMeSandbox, sale_id: str) -> datetime:
    return datetime.fromtimestamp(shop.sales[int(sale_id)]["update_date"], UTC)


def _sales_requests(shop: ColorMeSandbox) -> list[dict]:
    return [r for r in shop.requests if r["path"].startswith("/v1/sales")]


def test_the_client_is_an_order_reader_and_colorme_counts_every_status_by_default():
    """ColorMeClient implements OrderReader; the default status conditions are all three statuses."""
    assert isinstance(ColorMeClient("http://x", {"access_token": "t"}), OrderReader)
    assert PLATFORM.order_statuses_default == ("unpaid", "paid", "delivered")
    assert [value for value, _label in PLATFORM.order_statuses] == ["unpaid", "paid", "delivered"]


def test_placing_an_order_deducts_stock_and_cancelling_restocks_it(shop):
    """The shop takes the ordered stock at once; a cancel zeroes product_num and puts it back."""
    sale = shop.place_order([(str(shop.plain), 2), (f"{shop.shirt}:白:S", 1)])
    assert (shop.stock(shop.plain), shop.stock(shop.shirt, "白", "S")) == (3, 2)
    shop.cancel_order(sale)
    assert (shop.stock(shop.plain), shop.stock(shop.shirt, "白", "S")) == (5, 3)
    assert shop.sales[int(sale)]["canceled"] is True
    assert [d["product_num"] for d in shop.sales[int(sale)]["details"]] == [0, 0]


@pytest.mark.parametrize("lines", [[("999", 1)], [("100002", 1)], [("100001", 6)], [("100001", 0)], []])
def test_an_order_the_shop_cannot_take_is_refused_and_changes_nothing(shop, lines):
    """Unknown item, a product sold by its options, more than the stock, quantity 0, no line: refused."""
    with pytest.raises(OrderRefused):
        shop.place_order(lines)
    assert shop.sales == {} and shop.stock(shop.plain) == 5


def test_read_orders_sees_a_sale_placed_edited_and_cancelled(shop, client):
    """Lines carry the catalogue's identifiers and details[].id; edits and the cancel are read as they are."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    sale = shop.place_order([(str(shop.plain), 2), (f"{shop.shirt}:白:S", 1)], status="paid")
    [order] = list(client.read_orders(since))
    assert (order.order_id, order.status, order.cancelled) == (sale, "paid", False)
    details = shop.sales[int(sale)]["details"]
    assert [(line.line_id, line.identifier, line.quantity, line.code) for line in order.lines] == [
        (str(details[0]["id"]), str(shop.plain), 2, "MUG01"),
        (str(details[1]["id"]), f"{shop.shirt}:白:S", 1, "TS01-W-S")]
    assert order.lines[0].unit_price == 1000
    catalogue = {item.identifier for item in client.list_catalogue()}
    assert {line.identifier for line in order.lines} <= catalogue

    shop.advance(5)
    shop.edit_order(sale, [(str(shop.plain), 1), (f"{shop.shirt}:白:S", 3)])
    assert (shop.stock(shop.plain), shop.stock(shop.shirt, "白", "S")) == (4, 0)
    [edited] = list(client.read_orders(since))
    assert [line.quantity for line in edited.lines] == [1, 3] and edited.updated_at > order.updated_at

    shop.advance(5)
    shop.cancel_order(sale)
    [cancelled] = list(client.read_orders(since))
    assert cancelled.cancelled and [line.quantity for line in cancelled.lines] == [0, 0]
    assert cancelled.updated_at > edited.updated_at and cancelled.ordered_at == order.ordered_at


def test_status_folds_the_paid_and_delivered_flags(shop, client):
    """unpaid → paid → delivered, each change moving update_date."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    sale = shop.place_order([(str(shop.plain), 1)])
    seen = [next(iter(client.read_orders(since))).status]
    for status in ("paid", "delivered"):
        shop.set_order_status(sale, status)
        seen.append(next(iter(client.read_orders(since))).status)
    assert seen == ["unpaid", "paid", "delivered"]


def test_since_is_inclusive_and_orders_come_oldest_change_first(shop, client):
    """A sale changed before since is not read; one changed exactly at since is; order by update_date."""
    older = shop.place_order([(str(shop.plain), 1)])
    shop.advance(60)
    bumped = shop.place_order([(str(shop.plain), 1)])
    shop.advance(60)
    exact = shop.place_order([(str(shop.plain), 1)])
    shop.advance(60)
    shop.set_order_status(bumped, "paid")  # placed before exact, changed after it: read last
    since = _moment(shop, exact)
    assert [o.order_id for o in client.read_orders(since)] == [exact, bumped]
    query = _sales_requests(shop)[-1]["query"]
    assert query["update_date_min"] == since.astimezone(timezone(timedelta(hours=9))).strftime("%Y-%m-%d %H:%M:%S")
    # since is sent to the second, rounded down: a fraction later still reads that second again.
    assert [o.order_id for o in client.read_orders(since + timedelta(milliseconds=500))] == [exact, bumped]
    assert older not in {o.order_id for o in client.read_orders(since - timedelta(seconds=59))}


def test_many_sales_are_read_in_pages_of_at_most_100(shop, client):
    """250 sales: three requests of limit 100 by offset, every sale read once."""
    shop.products[shop.plain]["stocks"] = 1000
    placed = {shop.place_order([(str(shop.plain), 1)]) for _ in range(250)}
    orders = list(client.read_orders(datetime.now(UTC) - timedelta(days=1)))
    assert {o.order_id for o in orders} == placed and len(orders) == 250
    queries = [r["query"] for r in _sales_requests(shop)]
    assert [(q["limit"], q["offset"]) for q in queries] == [("100", "0"), ("100", "100"), ("100", "200")]


def test_the_sales_endpoint_pages_filters_and_defaults_as_colorme_does(shop, client):
    """limit is clamped to 100 (meta says so), canceled filters, and no date means the last 7 days."""
    headers = {"Authorization": f"Bearer {client.credentials['access_token']}"}
    old = shop.place_order([(str(shop.plain), 1)])
    shop.advance(9 * 86400)
    new = shop.place_order([(str(shop.plain), 1)])
    shop.cancel_order(new)
    body = requests.get(f"{shop.url}/v1/sales", params={"limit": 500}, headers=headers, timeout=5).json()
    assert [str(s["id"]) for s in body["sales"]] == [new]
    assert body["meta"] == {"total": 1, "limit": 100, "offset": 0}
    since = {"after": "2000-01-01"}
    both = requests.get(f"{shop.url}/v1/sales", params=since, headers=headers, timeout=5).json()
    assert {str(s["id"]) for s in both["sales"]} == {old, new}
    live = requests.get(f"{shop.url}/v1/sales", params={**since, "canceled": "false"}, headers=headers,
                        timeout=5).json()
    assert [str(s["id"]) for s in live["sales"]] == [old]
    bad = requests.get(f"{shop.url}/v1/sales", params={"update_date_min": "yesterday"}, headers=headers, timeout=5)
    assert bad.status_code == 422


def test_a_revoked_token_is_an_auth_error(shop, client):
    """Reading sales with a revoked token raises AuthError."""
    shop.revoke_tokens()
    with pytest.raises(AuthError):
        list(client.read_orders(datetime.now(UTC)))


def test_throttling_and_maintenance_are_temporary(shop, client):
    """A long Retry-After and maintenance raise TemporaryError; a short one is waited out and read."""
    shop.place_order([(str(shop.plain), 1)])
    since = datetime.now(UTC) - timedelta(minutes=1)
    shop.throttle_next(1, retry_after=30)
    with pytest.raises(TemporaryError) as raised:
        list(client.read_orders(since))
    assert raised.value.retry_after == 30
    shop.throttle_next(1, retry_after=0)
    assert len(list(client.read_orders(since))) == 1
    shop.set_maintenance(True)
    with pytest.raises(TemporaryError):
        list(client.read_orders(since))


def test_sandbox_order_endpoints(shop):
    """The JSON controls place, edit and cancel a sale; a refused one answers 422 and changes nothing."""
    base = f"{shop.url}/sandbox/orders"
    placed = requests.post(base, json={"lines": [[str(shop.plain), 2]]}, timeout=5)
    assert placed.status_code == 201 and shop.stock(shop.plain) == 3
    order_id = placed.json()["order_id"]
    assert requests.post(f"{base}/{order_id}", json={"lines": [[str(shop.plain), 1]], "status": "paid"},
                         timeout=5).status_code == 200
    assert shop.stock(shop.plain) == 4
    assert requests.post(f"{base}/{order_id}/cancel", timeout=5).status_code == 200
    assert shop.stock(shop.plain) == 5
    assert requests.post(base, json={"lines": [[str(shop.plain), 9]]}, timeout=5).status_code == 422
    [summary] = requests.get(base, timeout=5).json()["orders"]
    assert summary["cancelled"] and summary["status"] == "paid" and shop.stock(shop.plain) == 5
