"""Fixtures for the platforms' sandboxes on loopback: the one Smaregi sandbox and its server
(talked to directly by the Smaregi tests, notifying stocklink in the end-to-end ones), the ColorMe
and Shopify sandboxes stocklink pushes to, and stocklink itself served over HTTP.

Loaded with ``pytest_plugins = ["tests.fixtures_platforms"]``; the helpers the tests call
are in :mod:`tests.e2e_helpers`. The served app and the test share one database (the
``app`` fixture's), so a test asserts on the rows after each HTTP exchange.
"""
from __future__ import annotations

import pytest
import requests

from stocklink.sandbox.catalogue import load_sample
from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.colorme import create_app as colorme_app
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.shopify import ShopifySandbox
from stocklink.sandbox.shopify import create_app as shopify_app
from stocklink.sandbox.smaregi import SmaregiSandbox, serve_smaregi
from stocklink.sandbox.smaregi import create_app as smaregi_app
from stocklink.services import merchant_settings
from tests.e2e_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONTRACT,
    CUSTOMER_CODE,
    ERROR_MAIL,
    MERCHANT_MAIL,
    TOKEN,
    World,
    add_channel,
)


@pytest.fixture
def stocklink_server(app):
    """The stocklink app itself on loopback, where the Smaregi sandbox sends its notifications."""
    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture
def smaregi_sandbox() -> SmaregiSandbox:
    """A Smaregi contract with one store (本店, id 1) and no products, holding the credentials
    of :mod:`tests.e2e_helpers`."""
    return SmaregiSandbox(contract_id=CONTRACT, access_token=TOKEN, client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET)


@pytest.fixture
def smaregi_sample(smaregi_sandbox) -> SmaregiSandbox:
    """The sandbox holding the sample catalogue (two stores, :mod:`stocklink.sandbox.catalogue`)."""
    load_sample(smaregi_sandbox)
    return smaregi_sandbox


@pytest.fixture
def smaregi_server(smaregi_sandbox):
    """The sandbox served on loopback by ``serve_smaregi`` (which keeps the ``X_contract_id``
    header); the notifications it is still sending are waited for before it stops."""
    running = serve_smaregi(smaregi_app(smaregi_sandbox))
    smaregi_sandbox.url = running.url
    yield running
    smaregi_sandbox.wait_for_sends()
    running.stop()


@pytest.fixture
def http():
    """A requests session for talking to a sandbox, closed after the test."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def smaregi(app, stocklink_server, smaregi_sandbox, smaregi_server):
    """The Smaregi sandbox notifying stocklink (legacy API送信), and stocklink configured for it,
    with both mail addresses set so every notification is really sent."""
    url = smaregi_server.url
    smaregi_sandbox.configure(notify_url=f"{stocklink_server.url}/webhooks/smaregi/{CUSTOMER_CODE}")
    with app.app_context():
        merchant_settings.save({
            "smaregi.api_generation": "legacy", "smaregi.contract_id": CONTRACT,
            "smaregi.access_token": TOKEN, "smaregi.client_id": CLIENT_ID,
            "smaregi.client_secret": CLIENT_SECRET, "smaregi.store_id": "1",
            "smaregi.customer_code": CUSTOMER_CODE, "smaregi.legacy_base_url": f"{url}/access/",
            "smaregi.platform_id_base_url": url, "smaregi.platform_api_base_url": url,
            "notify.unlinkable_to": MERCHANT_MAIL, "notify.error_to": ERROR_MAIL,
        })
    return smaregi_sandbox


@pytest.fixture
def colorme():
    """A ColorMe shop on loopback."""
    sandbox = ColorMeSandbox()
    server = serve_in_thread(colorme_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def shopify():
    """A Shopify store on loopback."""
    sandbox = ShopifySandbox()
    server = serve_in_thread(shopify_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def world(app, smaregi, colorme, shopify):
    """Smaregi notifying stocklink, which pushes to a ColorMe and a Shopify channel."""
    colorme_id = add_channel(app, colorme, "colorme", "カラーミー")
    shopify_id = add_channel(app, shopify, "shopify", "Shopify")
    return World(app, smaregi, colorme, shopify, colorme_id, shopify_id, {})


@pytest.fixture
def nextengine_world(app, world):
    """The world plus a NextEngine channel that processes uploads at once."""
    from stocklink.infra.extensions import db
    from stocklink.models import Channel
    from stocklink.sandbox.nextengine import NextEngineSandbox
    from stocklink.sandbox.nextengine import create_app as nextengine_app
    from stocklink.services.channel_clients import save_credentials

    sandbox = NextEngineSandbox(auto_process=True)
    server = serve_in_thread(nextengine_app(sandbox))
    sandbox.url = server.url
    with app.app_context():
        channel = Channel(kind="nextengine", name="ネクストエンジン", base_url=sandbox.url, settings={})
        db.session.add(channel)
        save_credentials(channel, sandbox.login(), by_merchant=True)
        db.session.commit()
        channel_id = channel.id
    yield sandbox, channel_id
    server.stop()
