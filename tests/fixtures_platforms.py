"""Fixtures and helpers for end-to-end tests: stocklink served over HTTP, the Smaregi sandbox
notifying it, and the ColorMe and Shopify sandboxes it pushes to, all on loopback.

Test modules load it with ``pytest_plugins = ["tests.fixtures_platforms"]``. The test and the
served app share one database (the ``app`` fixture's), so a test can assert on the rows
after each HTTP exchange.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from stocklink import settings
from stocklink.channel_clients import save_credentials
from stocklink.extensions import db
from stocklink.models import Channel, Listing, Product, SmaregiInbox, StockLedger
from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.colorme import create_app as colorme_app
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.shopify import ShopifySandbox
from stocklink.sandbox.shopify import create_app as shopify_app
from stocklink.sandbox.smaregi import SmaregiSandbox, serve_smaregi
from stocklink.sandbox.smaregi import create_app as smaregi_app

CONTRACT, TOKEN, CLIENT_ID, CLIENT_SECRET = "sb_e2e001", "legacy-token-e2e", "client-e2e", "secret-e2e"
CUSTOMER_CODE = "cust-e2e-0123456789"
MERCHANT_MAIL = "merchant@example.com"
ERROR_MAIL = "ops@example.com"


@pytest.fixture
def stocklink_server(app):
    """The stocklink app itself on loopback, where the Smaregi sandbox sends its notifications."""
    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture
def smaregi(app, stocklink_server):
    """A Smaregi sandbox notifying stocklink (legacy API送信), and stocklink configured for it."""
    sandbox = SmaregiSandbox(contract_id=CONTRACT, access_token=TOKEN, client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET)
    server = serve_smaregi(smaregi_app(sandbox))
    sandbox.url = server.url
    sandbox.configure(notify_url=f"{stocklink_server.url}/webhooks/smaregi/{CUSTOMER_CODE}")
    with app.app_context():
        settings.save({
            "smaregi.api_generation": "legacy", "smaregi.contract_id": CONTRACT,
            "smaregi.access_token": TOKEN, "smaregi.client_id": CLIENT_ID,
            "smaregi.client_secret": CLIENT_SECRET, "smaregi.store_id": "1",
            "smaregi.customer_code": CUSTOMER_CODE, "smaregi.legacy_base_url": f"{server.url}/access/",
            "smaregi.platform_id_base_url": server.url, "smaregi.platform_api_base_url": server.url,
            "notify.unlinkable_to": MERCHANT_MAIL, "notify.error_to": ERROR_MAIL,
        })
    yield sandbox
    sandbox.wait_for_sends()
    server.stop()


def use_generation(app, sandbox: SmaregiSandbox, generation: str) -> None:
    """Talk to Smaregi and be notified by it in one API generation (legacy | platform)."""
    sandbox.configure(notify_mode=generation)
    with app.app_context():
        settings.save({"smaregi.api_generation": generation})


@pytest.fixture
def colorme():
    sandbox = ColorMeSandbox()
    server = serve_in_thread(colorme_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def shopify():
    sandbox = ShopifySandbox()
    server = serve_in_thread(shopify_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


def add_channel(app, sandbox, kind: str, name: str | None = None, **columns) -> int:
    """A channel row pointing at ``sandbox`` with a valid token; returns its id."""
    with app.app_context():
        channel_settings = {"location_id": sandbox.default_location} if kind == "shopify" else {}
        channel = Channel(kind=kind, name=name or kind, base_url=sandbox.url, settings=channel_settings,
                          **columns)
        db.session.add(channel)
        save_credentials(channel, {"access_token": sandbox.issue_token()}, by_merchant=True)
        db.session.commit()
        return channel.id


def add_product(app, smaregi_id: str, code: str | None, name: str, *, stock: int = 0,
                listings: dict[int, str] | None = None, confirmed: int | None = None,
                **listing_columns) -> int:
    """A product as stocklink knows it, with a listing per ``{channel id: identifier}``.

    ``confirmed`` is the listing's last confirmed channel stock (None: never pushed).
    """
    with app.app_context():
        product = Product(smaregi_product_id=smaregi_id, product_code=code, name=name, smaregi_stock=stock)
        db.session.add(product)
        db.session.flush()
        for channel_id, identifier in (listings or {}).items():
            db.session.add(Listing(channel_id=channel_id, product_id=product.id, identifier=identifier,
                                   last_confirmed_quantity=confirmed, **listing_columns))
        db.session.commit()
        return product.id


@dataclass
class World:
    """A shop in its three places: Smaregi, ColorMe and Shopify, each product linked in both."""

    app: object
    smaregi: SmaregiSandbox
    colorme: ColorMeSandbox
    shopify: ShopifySandbox
    colorme_id: int
    shopify_id: int
    items: dict  # smaregi id -> {"product": id, "colorme": product id, "shopify": item id}

    def add(self, smaregi_id: str, code: str, name: str, stock: int, *, confirmed: bool = True,
            price: int = 1000, **listing_columns) -> dict:
        """A product with ``stock`` everywhere, linked on both channels."""
        self.smaregi.add_product(smaregi_id, name, code=code, price=price, stock=stock)
        shop_id = self.colorme.add_product(name, stocks=max(stock, 0))
        item_id = self.shopify.add_item(code, max(stock, 0))
        product_id = add_product(self.app, smaregi_id, code, name, stock=stock,
                                 listings={self.colorme_id: str(shop_id), self.shopify_id: str(item_id)},
                                 confirmed=max(stock, 0) if confirmed else None, **listing_columns)
        self.items[smaregi_id] = {"product": product_id, "colorme": shop_id, "shopify": item_id}
        return self.items[smaregi_id]

    def channel_stock(self, smaregi_id: str) -> tuple[int | None, int | None]:
        """(ColorMe stock, Shopify available) of one product."""
        item = self.items[smaregi_id]
        return self.colorme.stock(item["colorme"]), self.shopify.stock(item["shopify"])


@pytest.fixture
def world(app, smaregi, colorme, shopify):
    colorme_id = add_channel(app, colorme, "colorme", "カラーミー")
    shopify_id = add_channel(app, shopify, "shopify", "Shopify")
    return World(app, smaregi, colorme, shopify, colorme_id, shopify_id, {})


def stock_of(app, smaregi_id: str) -> int | None:
    with app.app_context():
        return db.session.scalar(select(Product.smaregi_stock).where(Product.smaregi_product_id == smaregi_id))


def inbox_rows(app) -> list[tuple[int, str, str]]:
    """(id, generation, status) of every inbox row, oldest first."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(SmaregiInbox.id, SmaregiInbox.generation, SmaregiInbox.status).order_by(SmaregiInbox.id))]


def ledger_count(app, smaregi_id: str | None = None) -> int:
    with app.app_context():
        stmt = select(func.count(StockLedger.id))
        if smaregi_id is not None:
            stmt = stmt.join(Product, Product.id == StockLedger.product_id).where(
                Product.smaregi_product_id == smaregi_id)
        return db.session.scalar(stmt)


def colorme_writes(sandbox: ColorMeSandbox, product_id: int | None = None) -> list[dict]:
    """The PUTs ColorMe received (of one product if given), oldest first."""
    with sandbox.lock:
        puts = [r for r in sandbox.requests if r["method"] == "PUT"]
    if product_id is not None:
        puts = [r for r in puts if r["path"] == f"/v1/products/{product_id}.json"]
    return puts


def shopify_writes(sandbox: ShopifySandbox, item_id: int | None = None) -> list[dict]:
    """The quantities of every inventorySetQuantities Shopify received (of one item if given)."""
    quantities = []
    with sandbox.lock:
        requests = list(sandbox.requests)
    for r in requests:
        body = r.get("body") or {}
        if "inventorySetQuantities" not in (body.get("query") or ""):
            continue
        for key, value in (body.get("variables") or {}).items():
            if key.startswith("input"):
                quantities.extend(value["quantities"])
    if item_id is not None:
        quantities = [q for q in quantities if q["inventoryItemId"] == f"gid://shopify/InventoryItem/{item_id}"]
    return quantities
