"""Shopify web orders: the client's order reading and webhook parsing against the sandbox's
order book and webhook deliveries, over real HTTP on loopback."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from flask import Flask, request
from werkzeug.datastructures import Headers

from stocklink.platforms import shopify as shopify_module
from stocklink.platforms.base import AuthError, TemporaryError
from stocklink.platforms.interfaces import ChannelOrder, OrderReader
from stocklink.platforms.shopify import (
    PLATFORM,
    ShopifyClient,
    WebhookPayloadError,
    parse_order_webhook,
    verify_webhook,
)
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.shopify import ShopifySandbox, create_app

T0 = datetime(2026, 8, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def store():
    """A fresh Shopify sandbox on loopback with a roomy cost bucket and a settable clock."""
    sandbox = ShopifySandbox(bucket_size=100_000, restore_rate=10_000)
    sandbox.clock = lambda: T0
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def make_client(store):
    """Build clients for the default location, with sessions closed after the test."""
    sessions = []

    def make(token: str | None = None) -> ShopifyClient:
        session = requests.Session()
        sessions.append(session)
        return ShopifyClient(store.url, {"access_token": token or store.issue_token(),
                                         "client_secret": store.client_secret},
                             {"location_id": store.default_location}, session=session, timeout=5.0)

    yield make
    for session in sessions:
        session.close()


def at(store: ShopifySandbox, moment: datetime) -> None:
    """Make the sandbox's next changes happen at ``moment``."""
    store.clock = lambda: moment


def order_requests(store: ShopifySandbox, name: str = "StocklinkOrders") -> list[dict]:
    """The bodies of the GraphQL requests of operation ``name`` the sandbox received."""
    return [r["body"] for r in store.requests if f"query {name}(" in (r["body"] or {}).get("query", "")]


def test_client_is_an_order_reader(make_client):
    """The Shopify client implements the OrderReader capability."""
    assert isinstance(make_client(), OrderReader)


def test_read_orders_asks_by_updated_at_sorted_oldest_first(store, make_client):
    """The poll filters updated_at:>= since (to the second, UTC) and sorts by UPDATED_AT."""
    list(make_client().read_orders(datetime(2026, 8, 1, 18, 30, 5, 700, tzinfo=UTC)))
    [body] = order_requests(store)
    assert body["variables"]["query"] == "updated_at:>='2026-08-01T18:30:05Z'"
    assert body["variables"]["first"] == shopify_module.ORDER_PAGE and body["variables"]["after"] is None
    assert "sortKey: UPDATED_AT" in body["query"]


def test_naive_since_is_refused(make_client):
    """A since without a time zone is a clear ValueError, not a silently shifted poll."""
    with pytest.raises(ValueError, match="aware"):
        next(make_client().read_orders(datetime(2026, 8, 1)))


def test_placed_order_reads_back_with_catalogue_identifiers(store, make_client):
    """A placed order comes back with the catalogue's identifiers, line ids, SKUs and prices,
    and the sandbox deducted the ordered units."""
    white, red = store.add_product("Tシャツ", [{"title": "白", "sku": "TS-W", "available": 5, "price": 1200},
                                            {"title": "赤", "sku": "TS-R", "available": 3, "price": 1500}])
    client = make_client()
    catalogue = {item.code: item.identifier for item in client.list_catalogue()}
    order_id = store.place_order([(str(white), 2), (catalogue["TS-R"], 1)])
    [order] = client.read_orders(T0)
    assert (order.order_id, order.status, order.cancelled) == (order_id, "UNFULFILLED", False)
    assert order.ordered_at == order.updated_at == T0
    assert [(ln.identifier, ln.quantity, ln.code, ln.unit_price) for ln in order.lines] == [
        (catalogue["TS-W"], 2, "TS-W", 1200), (catalogue["TS-R"], 1, "TS-R", 1500)]
    assert all(ln.line_id.isdigit() for ln in order.lines) and len({ln.line_id for ln in order.lines}) == 2
    assert (store.stock(white), store.stock(red)) == (3, 2)


def test_edited_order_reads_current_quantities(store, make_client):
    """An edit moves updatedAt; a removed line reads 0, an added line appears, stock follows."""
    first, second, third = (store.add_item(sku, 10) for sku in ("A-1", "B-2", "C-3"))
    order_id = store.place_order([(str(first), 3), (str(second), 2)])
    at(store, T0 + timedelta(minutes=5))
    store.edit_order(order_id, [(str(first), 1), (str(second), 0), (str(third), 4)])
    [order] = make_client().read_orders(T0)
    assert order.updated_at == T0 + timedelta(minutes=5) and order.ordered_at == T0
    assert [(ln.identifier, ln.quantity) for ln in order.lines] == [
        (str(first), 1), (str(second), 0), (str(third), 4)]
    assert [store.stock(i) for i in (first, second, third)] == [9, 10, 6]


def test_cancelled_order_is_read_and_restocked(store, make_client):
    """A cancelled order is still read, cancelled, its lines at 0, its units back in stock."""
    item = store.add_item("A-1", 4)
    order_id = store.place_order([(str(item), 3)], status="PARTIALLY_FULFILLED")
    assert store.stock(item) == 1
    at(store, T0 + timedelta(hours=1))
    store.cancel_order(order_id)
    [order] = make_client().read_orders(T0 + timedelta(minutes=30))
    assert (order.order_id, order.cancelled, order.status) == (order_id, True, "PARTIALLY_FULFILLED")
    assert [ln.quantity for ln in order.lines] == [0]
    assert store.stock(item) == 4


def test_since_boundary_is_inclusive_to_the_second(store, make_client):
    """An order changed exactly at since is read; one changed a second earlier is not."""
    item = store.add_item("A-1", 10)
    at(store, T0)
    early = store.place_order([(str(item), 1)])
    at(store, T0 + timedelta(seconds=1))
    late = store.place_order([(str(item), 1)])
    client = make_client()
    assert [o.order_id for o in client.read_orders(T0)] == [early, late]
    assert [o.order_id for o in client.read_orders(T0 + timedelta(seconds=1))] == [late]
    assert [o.order_id for o in client.read_orders(T0 + timedelta(seconds=1, microseconds=500))] == [late]
    assert list(client.read_orders(T0 + timedelta(seconds=2))) == []


def test_several_pages_oldest_change_first_and_long_orders(store, make_client):
    """Every page is read by cursor, oldest change first; an order with more lines than a page
    has the rest read too."""
    items = [store.add_item(f"S-{n}", 100) for n in range(shopify_module.ORDER_LINE_PAGE + 3)]
    placed = []
    for n in range(shopify_module.ORDER_PAGE * 2 + 1):
        at(store, T0 + timedelta(seconds=n))
        placed.append(store.place_order([(str(items[n % len(items)]), 1)]))
    at(store, T0 + timedelta(minutes=10))
    store.edit_order(placed[0], [(str(i), 2) for i in items])  # now the latest change, many lines
    orders = list(make_client().read_orders(T0))
    assert [o.order_id for o in orders] == placed[1:] + placed[:1]
    assert [o.updated_at for o in orders] == sorted(o.updated_at for o in orders)
    assert [ln.identifier for ln in orders[-1].lines] == [str(i) for i in items]
    pages = order_requests(store)
    assert len(pages) == 3 and pages[0]["variables"]["after"] is None
    assert len({p["variables"]["after"] for p in pages}) == 3
    [lines] = order_requests(store, "StocklinkOrderLines")  # the long order's second page of lines
    assert lines["variables"]["id"] == f"gid://shopify/Order/{placed[0]}" and lines["variables"]["after"]


def test_throttled_page_is_temporary(store, make_client):
    """A THROTTLED page whose wait is long raises TemporaryError with that wait."""
    store.set_bucket(2000, 10.0)
    store.throttle_next(1)
    with pytest.raises(TemporaryError) as caught:
        list(make_client().read_orders(T0))
    assert caught.value.code == "THROTTLED" and caught.value.retry_after > 10


def test_revoked_token_is_an_auth_error(store, make_client):
    """A revoked token raises AuthError from read_orders."""
    token = store.issue_token()
    store.revoke_token(token)
    with pytest.raises(AuthError) as caught:
        list(make_client(token).read_orders(T0))
    assert caught.value.status == 401


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_verify_webhook():
    """The HMAC verifies the exact body with the right secret and nothing else."""
    body = b'{"id": 5000000001}'
    header = sign("shpss_secret", body)
    assert verify_webhook("shpss_secret", body, header)
    assert not verify_webhook("shpss_secret", body + b" ", header)
    assert not verify_webhook("shpss_other", body, header)
    assert not verify_webhook("shpss_secret", body, None)
    assert not verify_webhook("shpss_secret", body, "")
    assert not verify_webhook("shpss_secret", body, "not base64 ✓")
    assert not verify_webhook("", body, sign("", body))


WEBHOOK_ORDER = {
    "id": 5000000007, "admin_graphql_api_id": "gid://shopify/Order/5000000007",
    "created_at": "2026-08-01T18:00:00+09:00", "updated_at": "2026-08-01T18:05:00+09:00",
    "cancelled_at": None, "fulfillment_status": "partial", "currency": "JPY",
    "line_items": [
        {"id": 13000000001, "variant_id": 45000000001, "sku": "TS-W", "title": "Tシャツ",
         "quantity": 2, "current_quantity": 1, "price": "1200.00"},
        {"id": 13000000002, "variant_id": None, "sku": "", "title": "削除された商品",
         "quantity": 1, "current_quantity": 1, "price": "500.00"},
    ],
}


def test_parse_order_webhook():
    """A REST order body parses like a read order: ids, UTC times, current quantities, status."""
    order = parse_order_webhook("orders/updated", json.dumps(WEBHOOK_ORDER).encode(),
                                variant_items={"gid://shopify/ProductVariant/45000000001": "40000000001"})
    assert order == ChannelOrder(
        order_id="5000000007", ordered_at=datetime(2026, 8, 1, 9, 0, tzinfo=UTC),
        updated_at=datetime(2026, 8, 1, 9, 5, tzinfo=UTC), status="PARTIALLY_FULFILLED", cancelled=False,
        lines=order.lines)
    assert [(ln.line_id, ln.identifier, ln.quantity, ln.code, ln.unit_price) for ln in order.lines] == [
        ("13000000001", "40000000001", 1, "TS-W", 1200), ("13000000002", "", 1, None, 500)]
    cancelled = dict(WEBHOOK_ORDER, cancelled_at="2026-08-01T18:05:00+09:00", fulfillment_status=None)
    parsed = parse_order_webhook("orders/cancelled", json.dumps(cancelled).encode())
    assert parsed.cancelled and parsed.status == "UNFULFILLED"
    assert [ln.identifier for ln in parsed.lines] == ["", ""]  # no variant map: re-read to link


@pytest.mark.parametrize("topic,body", [
    ("orders/create", b"{not json"),
    ("orders/create", b"[1, 2]"),
    ("orders/create", b"\xff\xfe"),
    ("orders/create", json.dumps({k: v for k, v in WEBHOOK_ORDER.items() if k != "updated_at"}).encode()),
    ("orders/create", json.dumps(dict(WEBHOOK_ORDER, id="x1")).encode()),
    ("orders/create", json.dumps(dict(WEBHOOK_ORDER, created_at="yesterday")).encode()),
    ("orders/create", json.dumps(dict(WEBHOOK_ORDER, line_items={"id": 1})).encode()),
    ("orders/create", json.dumps(dict(WEBHOOK_ORDER, line_items=[{"id": 1, "current_quantity": -1}])).encode()),
    ("orders/create", json.dumps(dict(WEBHOOK_ORDER, line_items=[{"quantity": 1}])).encode()),
    ("products/update", json.dumps(WEBHOOK_ORDER).encode()),
])
def test_parse_order_webhook_refuses_malformed(topic, body):
    """A malformed body or a non-order topic raises WebhookPayloadError (a ValueError)."""
    with pytest.raises(WebhookPayloadError) as caught:
        parse_order_webhook(topic, body)
    assert isinstance(caught.value, ValueError) and str(caught.value)


@pytest.fixture
def receiver():
    """A small HTTP server that records each webhook POST (headers, case-insensitive, and raw body)."""
    app = Flask(__name__)
    received: list[dict] = []
    arrived = threading.Condition()

    @app.post("/hooks/shopify")
    def hook():
        with arrived:
            received.append({"headers": Headers(list(request.headers.items())), "body": request.get_data()})
            arrived.notify_all()
        return "", 200

    server = serve_in_thread(app)

    def wait_for(count: int) -> list[dict]:
        with arrived:
            assert arrived.wait_for(lambda: len(received) >= count, timeout=10)
            return list(received)

    server.wait_for = wait_for
    server.hook_url = f"{server.url}/hooks/shopify"
    yield server
    server.stop()


def test_webhook_delivered_signed_over_http(store, make_client, receiver):
    """A subscription made by webhookSubscriptionCreate gets the new order POSTed with the topic,
    shop, a delivery id and a valid HMAC; the body parses to the order read_orders gives."""
    item = store.add_item("A-1", 5)
    with requests.Session() as s:
        answer = s.post(f"{store.url}/admin/api/2026-04/graphql.json", headers={
            "X-Shopify-Access-Token": store.issue_token()}, json={
            "query": "mutation Hook($uri: String!) { webhookSubscriptionCreate(topic: ORDERS_CREATE, "
                     "webhookSubscription: {uri: $uri, format: JSON}) { webhookSubscription { id topic uri } "
                     "userErrors { field message } } }", "variables": {"uri": receiver.hook_url}}).json()
    created = answer["data"]["webhookSubscriptionCreate"]
    assert created["userErrors"] == [] and created["webhookSubscription"]["topic"] == "ORDERS_CREATE"
    order_id = store.place_order([(str(item), 2)])
    [delivery] = receiver.wait_for(1)
    headers = delivery["headers"]
    assert headers["X-Shopify-Topic"] == "orders/create"
    assert headers["X-Shopify-Shop-Domain"] == "stocklink-sandbox.myshopify.com"
    assert headers["X-Shopify-Webhook-Id"]
    assert verify_webhook(store.client_secret, delivery["body"], headers["X-Shopify-Hmac-SHA256"])
    client = make_client()
    variant_items = {i.extra["variant_id"]: i.identifier for i in client.list_catalogue()}
    parsed = parse_order_webhook(headers["X-Shopify-Topic"], delivery["body"], variant_items=variant_items)
    [read] = client.read_orders(T0)
    assert parsed == read and parsed.order_id == order_id


def test_webhooks_per_topic_and_drop_duplicate_controls(store, receiver):
    """Each change goes to its topic's subscribers; a dropped delivery never arrives and a
    duplicated one arrives twice with the same delivery id."""
    item = store.add_item("A-1", 5)
    for topic in ("orders/updated", "orders/cancelled"):
        store.subscribe(topic, receiver.hook_url)
    order_id = store.place_order([(str(item), 1)])  # nobody subscribed to orders/create
    store.webhook_sender.drop_next()
    store.edit_order(order_id, [(str(item), 2)])
    store.webhook_sender.duplicate_next()
    store.cancel_order(order_id)
    deliveries = receiver.wait_for(2)
    store.webhook_sender.flush()
    assert [d["headers"]["X-Shopify-Topic"] for d in deliveries] == ["orders/cancelled"] * 2
    assert len({d["headers"]["X-Shopify-Webhook-Id"] for d in deliveries}) == 1
    assert [e["status"] for e in store.webhook_log] == ["dropped", 200, 200]
    assert json.loads(deliveries[0]["body"])["line_items"][0]["current_quantity"] == 0


def test_sandbox_order_controls_over_http(store, receiver):
    """The /sandbox/ order endpoints place, edit and cancel orders and refuse bad input."""
    item = store.add_item("A-1", 5)
    with requests.Session() as s:
        assert s.post(f"{store.url}/sandbox/webhooks", json={"topic": "orders/create",
                                                              "url": receiver.hook_url}).status_code == 201
        assert s.post(f"{store.url}/sandbox/webhooks", json={"topic": "orders/nope",
                                                              "url": receiver.hook_url}).status_code == 400
        order_id = s.post(f"{store.url}/sandbox/orders", json={"lines": [[str(item), 2]]}).json()["id"]
        assert store.stock(item) == 3
        assert s.post(f"{store.url}/sandbox/orders/{order_id}/edit", json={"lines": [[str(item), 1]]}).ok
        assert store.stock(item) == 4
        assert s.post(f"{store.url}/sandbox/orders/{order_id}/cancel").ok
        assert store.stock(item) == 5
        assert s.post(f"{store.url}/sandbox/orders", json={"lines": [["999", 1]]}).status_code == 400
        assert s.post(f"{store.url}/sandbox/orders", json={"lines": [[str(item), 0]]}).status_code == 400
        assert s.post(f"{store.url}/sandbox/orders/{order_id}/edit",
                      json={"lines": [[str(item), 1]]}).status_code == 400  # cancelled
        assert s.post(f"{store.url}/sandbox/orders/1/cancel").status_code == 404
        receiver.wait_for(1)
        log = s.get(f"{store.url}/sandbox/webhooks").json()
    assert [d["topic"] for d in log["subscriptions"]] == ["orders/create"]
    assert store.stock(item) == 5 and len(store.orders) == 1


def test_declaration_lists_statuses_and_webhook_secret():
    """Shopify declares its fulfilment statuses (all counted by default) and an optional client secret."""
    values = [value for value, _label in PLATFORM.order_statuses]
    assert {"UNFULFILLED", "PARTIALLY_FULFILLED", "FULFILLED"} <= set(values)
    assert set(PLATFORM.order_statuses_default) == set(values)
    [secret] = [f for f in PLATFORM.credentials if f.key == "client_secret"]
    assert secret.kind == "secret" and not secret.required


def test_one_order_is_read_by_its_id_as_the_poll_reads_it(store, make_client):
    """``read_order`` (what a webhook names): the same ChannelOrder the poll gives, one query;
    an id Shopify does not have is None."""
    from stocklink.platforms.interfaces import SingleOrderReader
    client = make_client()
    assert isinstance(client, SingleOrderReader)
    item = store.add_item("TS-S", 5)
    order_id = store.place_order([(str(item), 2)])
    [polled] = list(client.read_orders(T0 - timedelta(minutes=1)))
    assert client.read_order(order_id) == polled
    assert polled.lines[0].identifier == str(item) and polled.lines[0].quantity == 2
    assert len(order_requests(store, "StocklinkOrder")) == 1
    assert client.read_order("5999999999") is None


def test_order_changes_list_ids_and_times_a_page_of_a_hundred_at_two_points_each(store, make_client):
    """list_order_changes asks the same filter as read_orders for ids and updatedAt only, 100 a
    page (202 points, where 10 whole orders cost 222), oldest change first, every page."""
    from stocklink.platforms.interfaces import OrderChangeLister
    item = store.add_item("S-1", 1000)
    placed = []
    for n in range(shopify_module.ORDER_CHANGES_PAGE + 5):
        at(store, T0 + timedelta(seconds=n))
        placed.append(store.place_order([(str(item), 1)]))
    client = make_client()
    assert isinstance(client, OrderChangeLister)
    changes = list(client.list_order_changes(T0 + timedelta(seconds=2)))
    assert changes == [(placed[n], T0 + timedelta(seconds=n)) for n in range(2, len(placed))]
    pages = order_requests(store, "StocklinkOrderChanges")
    assert len(pages) == 2 and pages[0]["variables"]["query"] == "updated_at:>='2026-08-01T09:00:02Z'"
    assert pages[0]["variables"]["first"] == shopify_module.ORDER_CHANGES_PAGE and pages[1]["variables"]["after"]
    assert "lineItems" not in pages[0]["query"] and "sortKey: UPDATED_AT" in pages[0]["query"]
    from stocklink.sandbox.minigraphql import prepare
    from stocklink.sandbox.shopify import SCHEMA
    assert prepare(SCHEMA, pages[0]["query"], pages[0]["variables"], None).cost == 202
    whole = order_requests(store)  # none: no page of whole orders was asked for
    assert whole == []
