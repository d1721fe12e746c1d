"""The Orders screen: every order with its state, searchable; an order's lines by revision, its
registrations and stock history; retry now; resolve by hand with a note, which gives the units back."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.queues import ORDERS, get_queue
from stocklink.models import Channel, Order, Product, Registration
from stocklink.platforms.interfaces import ChannelOrder, ChannelOrderLine
from stocklink.services.order_intake import take_orders
from tests.e2e_helpers import add_channel, add_product

pytest_plugins = ["tests.fixtures_platforms"]


@pytest.fixture
def orders(app, colorme):
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    product_id = add_product(app, "1001", "TS-S", "Tシャツ", stock=5, listings={channel_id: "111"})
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        at = datetime(2026, 12, 1, 10, tzinfo=UTC)
        for order_id in ("A-100", "B-<b>200</b>"):
            take_orders(channel, [ChannelOrder(order_id, at, at, "paid", False,
                                               (ChannelOrderLine("1", "111", 2, code="TS-S", title="Tシャツ"),))])
        first = db.session.scalar(select(Registration).order_by(Registration.id))
        first.state, first.attempts, first.last_error = "failed", 7, "TemporaryError: Smaregi HTTP 503"
        db.session.scalar(select(Order).where(Order.channel_order_id == "A-100")).state = "failed"
        db.session.commit()
        ids = dict(db.session.execute(select(Order.channel_order_id, Order.id)).all())
    return channel_id, product_id, ids


def test_the_list_shows_every_order_filters_by_state_and_searches_by_id(app, client, logged_in, orders):
    html = client.get("/orders/").get_data(as_text=True)
    assert "A-100" in html and "2 件" in html
    assert "引当中(スマレジ未登録)" in html  # the order's state, not the ledger's 引当数 field
    assert "B-&lt;b&gt;200&lt;/b&gt;" in html and "<b>200" not in html  # escaped
    failed = client.get("/orders/?state=failed").get_data(as_text=True)
    assert "A-100" in failed and "B-&lt;b&gt;" not in failed and "HTTP 503" in failed
    found = client.get("/orders/?q=b%3E2", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in found and "B-&lt;b&gt;200" in found and "A-100" not in found
    assert client.get("/orders/?state=nonsense").status_code == 200  # an unknown state is no filter


def test_an_order_shows_its_lines_registrations_and_stock_history(app, client, logged_in, orders):
    _channel_id, _product_id, ids = orders
    html = client.get(f"/orders/{ids['A-100']}").get_data(as_text=True)
    assert "TS-S" in html and "HTTP 503" in html and "Web受注で引当" in html
    assert client.get("/orders/99999").status_code == 404


def test_retry_now_enqueues_the_registration(app, client, logged_in, orders):
    _channel_id, _product_id, ids = orders
    token = logged_in.token(f"/orders/{ids['A-100']}")
    with app.app_context():
        get_queue(ORDERS).empty()
    response = client.post(f"/orders/{ids['A-100']}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert f"order-register-{ids['A-100']}" in get_queue(ORDERS).job_ids


def test_resolve_needs_a_note_then_gives_the_units_back(app, client, logged_in, orders):
    _channel_id, product_id, ids = orders
    path = f"/orders/{ids['A-100']}"
    token = logged_in.token(path)
    assert client.post(f"{path}/resolve", data={"csrf_token": token, "note": "  "}).status_code == 302
    with app.app_context():
        assert db.session.get(Product, product_id).reserved == 4  # nothing changed
    assert client.post(f"{path}/resolve", data={"note": "手で登録"}).status_code == 400  # no CSRF token
    response = client.post(f"{path}/resolve", data={"csrf_token": token, "note": "スマレジに手で登録済み"})
    assert response.status_code == 302
    with app.app_context():
        order = db.session.get(Order, ids["A-100"])
        assert (order.state, order.note, order.resolved_by) == ("resolved", "スマレジに手で登録済み", "operator")
        assert db.session.get(Product, product_id).reserved == 2  # B-200's units are still reserved
        states = [r.state for r in db.session.scalars(select(Registration).where(
            Registration.order_id == order.id))]
        assert states == ["resolved"]
    page = client.get(path).get_data(as_text=True)
    assert "スマレジに手で登録済み" in page


def test_order_settings_set_the_starting_point_in_japan_time_and_the_status_conditions(app, client, logged_in,
                                                                                       orders):
    channel_id, _product_id, _ids = orders
    path = f"/orders/channels/{channel_id}"
    page = client.get(path).get_data(as_text=True)
    assert "初期受注取得" in page and 'value="paid" checked' in page
    token = logged_in.token(path)
    with app.app_context():
        db.session.get(Channel, channel_id).orders_cursor_at = datetime(2026, 12, 5, tzinfo=UTC)
        db.session.commit()
    response = client.post(path, data={"csrf_token": token, "start": "2026-12-01T09:00",
                                       "status": ["paid", "delivered"]})
    assert response.status_code == 302
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.orders_start_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 09:00 JST
        assert channel.order_statuses == ["paid", "delivered"]
        assert channel.orders_cursor_at is None  # moved back: read again from the starting point
    for bad in ({"start": "昨日", "status": ["paid"]}, {"start": "2099-01-01T00:00", "status": ["paid"]},
                {"start": "", "status": []}, {"start": "", "status": ["bogus"]}):
        client.post(path, data={"csrf_token": token, **bad})
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.order_statuses == ["paid", "delivered"]  # each refused, nothing changed
        assert channel.orders_start_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert client.get("/orders/channels/999").status_code == 404


def test_the_dashboard_lists_orders_waiting_for_smaregi(app, client, logged_in, orders):
    _channel_id, _product_id, ids = orders
    html = client.get("/").get_data(as_text=True)
    assert "スマレジに未登録のWeb受注" in html and f"/orders/{ids['A-100']}" in html and "HTTP 503" in html


def test_a_products_own_low_stock_threshold_is_set_on_its_page(app, client, logged_in, orders):
    _channel_id, product_id, _ids = orders
    path = f"/products/{product_id}"
    token = logged_in.token(path)
    for value, expected in (("２", 2), ("", None), ("-1", None), ("abc", None), ("5", 5), ("1000000000", 5)):
        assert client.post(f"{path}/threshold", data={"csrf_token": token, "value": value,
                                                      "next": path}).status_code == 303
        with app.app_context():
            assert db.session.get(Product, product_id).low_stock_threshold == expected, value
    assert "在庫数通知のしきい値" in client.get(path).get_data(as_text=True)
