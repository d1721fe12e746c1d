"""Shopify's order webhooks (platform-apis-channels §7.5): signed deliveries stored before they
are answered, then taken in by polling the channel at once; a forged, malformed or repeated
delivery changes nothing; a stored one whose job was lost is polled by the sweep."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.queues import ALL_QUEUES, get_queue
from stocklink.jobs.orders import poll_due_channels
from stocklink.models import Channel, ChannelWebhook, Order, Product
from stocklink.models._types import utcnow
from stocklink.services.channel_clients import save_credentials
from tests.conftest import run_jobs

pytest_plugins = ["tests.fixtures_platforms"]


@pytest.fixture
def hooked(app, world, stocklink_server):
    """The world's Shopify store sending its order webhooks to stocklink, the secret saved."""
    shirt = world.add("1001", "TS-S", "Tシャツ S", 5)
    url = f"{stocklink_server.url}/webhooks/channels/{world.shopify_id}/orders"
    for topic in ("orders/create", "orders/updated", "orders/cancelled"):
        world.shopify.subscribe(topic, url)
    with app.app_context():
        channel = db.session.get(Channel, world.shopify_id)
        channel.orders_start_at = utcnow()
        save_credentials(channel, {"access_token": world.shopify.issue_token(),
                                   "client_secret": world.shopify.client_secret}, by_merchant=True)
        for polled in db.session.scalars(select(Channel)):  # polled just now: only the webhook brings orders in
            polled.orders_polled_at = utcnow()
        db.session.commit()
    return world, shirt, url


def _reserved(app, product_id: int) -> int:
    with app.app_context():
        return db.session.get(Product, product_id).reserved


def _webhooks(app) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(select(ChannelWebhook.topic, ChannelWebhook.order_id,
                                                            ChannelWebhook.processed_at.is_not(None)))]


def _signed(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_an_order_webhook_is_stored_then_taken_in_by_a_poll_at_once(app, hooked):
    world, shirt, _url = hooked
    order_id = world.shopify.place_order([(str(shirt["shopify"]), 2)])
    world.shopify.webhook_sender.flush()
    assert _webhooks(app) == [("orders/create", order_id, False)]
    run_jobs(app)
    assert _reserved(app, shirt["product"]) == 0  # reserved, then registered and released
    assert world.smaregi.stock_of("1001") == 3 and world.colorme.stock(shirt["colorme"]) == 3
    assert _webhooks(app) == [("orders/create", order_id, True)]
    with app.app_context():
        assert db.session.scalar(select(Order.state)) == "registered"


def test_a_redelivered_webhook_is_stored_once_and_the_order_taken_once(app, hooked):
    world, shirt, _url = hooked
    world.shopify.webhook_sender.duplicate_next()
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    world.shopify.webhook_sender.flush()
    assert len(_webhooks(app)) == 1
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3
    with app.app_context():
        assert len(db.session.scalars(select(Order)).all()) == 1


def test_a_forged_or_malformed_webhook_is_refused_and_nothing_is_stored(app, hooked, http):
    world, _shirt, url = hooked
    body = json.dumps({"id": 5000000001, "line_items": []}).encode()
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "d-1", "Content-Type": "application/json"}
    assert http.post(url, data=body, headers={**headers, "X-Shopify-Hmac-SHA256": _signed("not-it", body)}
                     ).status_code == 401
    assert http.post(url, data=body, headers=headers).status_code == 401
    tampered = http.post(url, data=body + b" ", headers={**headers,
                                                         "X-Shopify-Hmac-SHA256": _signed(world.shopify.client_secret,
                                                                                          body)})
    assert tampered.status_code == 401
    secret = world.shopify.client_secret
    wrong_topic = http.post(url, data=body, headers={**headers, "X-Shopify-Topic": "products/update",
                                                     "X-Shopify-Hmac-SHA256": _signed(secret, body)})
    assert wrong_topic.status_code == 400 and "malformed" in wrong_topic.text
    no_id = b'{"line_items": []}'
    assert http.post(url, data=no_id, headers={**headers, "X-Shopify-Hmac-SHA256": _signed(secret, no_id)}
                     ).status_code == 400
    assert _webhooks(app) == []


def test_webhooks_to_a_channel_that_sends_none_or_to_no_channel_are_404(app, hooked, http, stocklink_server):
    world, _shirt, _url = hooked
    for channel_id in (world.colorme_id, 999):
        response = http.post(f"{stocklink_server.url}/webhooks/channels/{channel_id}/orders", data=b"{}")
        assert response.status_code == 404


def test_a_stored_webhook_whose_poll_was_lost_is_polled_by_the_sweep(app, hooked):
    world, shirt, _url = hooked
    world.shopify.place_order([(str(shirt["shopify"]), 1)])
    world.shopify.webhook_sender.flush()
    with app.app_context():
        for name in ALL_QUEUES:
            get_queue(name).empty()  # Redis lost the poll the webhook asked for
        assert poll_due_channels() == 0  # not yet: the webhook is given its grace period first
        db.session.execute(ChannelWebhook.__table__.update().values(
            received_at=ChannelWebhook.received_at - timedelta(minutes=1)))
        db.session.commit()
        assert poll_due_channels() == 1
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 4
    assert _webhooks(app)[0][2] is True
