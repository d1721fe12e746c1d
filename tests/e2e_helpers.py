"""Helpers for end-to-end tests: constants, rows to assert on, and the sandboxes' request logs.

The fixtures serving stocklink and the sandboxes live in :mod:`tests.fixtures_platforms`,
loaded by ``pytest_plugins``; test modules import only this module.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SmaregiInbox, StockLedger
from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.shopify import ShopifySandbox
from stocklink.sandbox.smaregi import SmaregiSandbox
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import save_credentials
from stocklink.services.search_text import refresh_products

CONTRACT, TOKEN, CLIENT_ID, CLIENT_SECRET = "sb_e2e001", "legacy-token-e2e", "client-e2e", "secret-e2e"
CUSTOMER_CODE = "cust-e2e-0123456789"
MERCHANT_MAIL = "merchant@example.com"
ERROR_MAIL = "ops@example.com"


def use_generation(app, sandbox: SmaregiSandbox, generation: str) -> None:
    """Talk to Smaregi and be notified by it in one API generation (legacy | platform)."""
    sandbox.configure(notify_mode=generation)
    with app.app_context():
        merchant_settings.save({"smaregi.api_generation": generation})


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

    ``confirmed`` is the listings' last confirmed channel stock (None: never pushed).
    """
    with app.app_context():
        product = Product(smaregi_product_id=smaregi_id, product_code=code, name=name, smaregi_stock=stock)
        db.session.add(product)
        db.session.flush()
        for channel_id, identifier in (listings or {}).items():
            db.session.add(Listing(channel_id=channel_id, product_id=product.id, identifier=identifier,
                                   last_confirmed_quantity=confirmed, **listing_columns))
        refresh_products([product.id])  # the grid's keyword searches the folded text
        db.session.commit()
        return product.id


@dataclass
class World:
    """A shop in its three places: Smaregi, ColorMe and Shopify."""

    app: object
    smaregi: SmaregiSandbox
    colorme: ColorMeSandbox
    shopify: ShopifySandbox
    colorme_id: int
    shopify_id: int
    items: dict  # smaregi id -> {"product": id, "colorme": product id, "shopify": item id}

    def add(self, smaregi_id: str, code: str, name: str, stock: int, *, confirmed: bool = True,
            price: int = 1000, **listing_columns) -> dict:
        """A product with ``stock`` at the POS and on both channels, linked on both."""
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


def stock_of(app, smaregi_id: str) -> int | None:
    """stocklink's ``smaregi_stock`` of one product."""
    with app.app_context():
        return db.session.scalar(select(Product.smaregi_stock).where(Product.smaregi_product_id == smaregi_id))


def listings_of(app, smaregi_id: str) -> list[tuple]:
    """(channel kind, last confirmed quantity, dirty) of a product's listings, by channel."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Channel.kind, Listing.last_confirmed_quantity, Listing.dirty)
            .join(Listing, Listing.channel_id == Channel.id).join(Product, Product.id == Listing.product_id)
            .where(Product.smaregi_product_id == smaregi_id).order_by(Channel.id))]


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
    """The PUT bodies ColorMe received (for one product if given), oldest first."""
    with sandbox.lock:
        puts = [r for r in sandbox.requests if r["method"] == "PUT"]
    if product_id is not None:
        puts = [r for r in puts if r["path"] == f"/v1/products/{product_id}.json"]
    return [r["body"] for r in puts]


def shopify_writes(sandbox: ShopifySandbox, item_id: int | None = None) -> list[dict]:
    """Every quantity of every inventorySetQuantities Shopify received (for one item if given)."""
    with sandbox.lock:
        requests = list(sandbox.requests)
    quantities = []
    for r in requests:
        body = r.get("body") or {}
        if "inventorySetQuantities" not in (body.get("query") or ""):
            continue
        for key, value in sorted((body.get("variables") or {}).items()):
            if key.startswith("input"):
                quantities.extend(value["quantities"])
    if item_id is not None:
        quantities = [q for q in quantities if q["inventoryItemId"] == f"gid://shopify/InventoryItem/{item_id}"]
    return quantities
