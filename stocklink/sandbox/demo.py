"""The demo that ``make run`` starts when no Smaregi is configured.

Runs the sandbox Smaregi and three sandbox channels (ColorMe Shop, Shopify, NextEngine)
in this process on one loopback port, configures stocklink against them (only base URLs
differ from production), loads the sample catalogue, and creates an operator.

ColorMe (the base channel) and NextEngine start linked. Shopify starts configured but with
no listing in stocklink, while the Shopify sandbox holds every product under a SKU equal to
its Smaregi product code: a newcomer imports that catalogue (``flask --app app catalogue
import "デモ Shopify"``, or from the console) and sees it linked by the SKU rule.

Web orders: the channels control page (``…/channels/``) places and cancels orders in each
sandbox channel. Shopify's reach stocklink in seconds through its order webhooks, ColorMe's and
NextEngine's through polling (the demo channels have speed-up on: every minute); each is
reserved, pushed to the other channels and registered in the sandbox Smaregi as a shipment.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from stocklink.domain.linking import is_stock_managed
from stocklink.domain.text import variation_label
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SetComponent, User
from stocklink.models._types import utcnow
from stocklink.sandbox import channels_control, colorme, nextengine, shopify
from stocklink.sandbox import smaregi as smaregi_sandbox
from stocklink.sandbox.catalogue import load_sample
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import save_credentials
from stocklink.services.search_text import refresh_listings, refresh_products
from stocklink.services.stock_ledger import mark_listings_dirty

DEMO_CHANNELS = ("デモ カラーミーショップ", "デモ Shopify", "デモ ネクストエンジン")
SET_CODE = "SET-GIFT01"


@dataclass
class Demo:
    url: str
    username: str
    password: str
    smaregi: smaregi_sandbox.SmaregiSandbox
    colorme: colorme.ColorMeSandbox
    shopify: shopify.ShopifySandbox
    nextengine: nextengine.NextEngineSandbox
    _server: object

    def stop(self) -> None:
        self._server.stop()


def _not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


SMAREGI_CONTROL_PATH = "/smaregi/sandbox/"
CHANNELS_CONTROL_PATH = "/channels/"


def sandbox_dispatcher(sm, cm, sh, ne) -> DispatcherMiddleware:
    """Every sandbox under one host: each platform's API at ``/<platform>``, the Smaregi control
    page at :data:`SMAREGI_CONTROL_PATH` and the channels' at :data:`CHANNELS_CONTROL_PATH`,
    each page linking to the other."""
    smaregi_app = smaregi_sandbox.create_app(sm)
    smaregi_app.config["SANDBOX_LINKS"] = {"チャネルの操作 / channel controls →": CHANNELS_CONTROL_PATH}
    controls = channels_control.create_app(colorme=cm, shopify=sh, nextengine=ne,
                                           links={"← スマレジの操作 / Smaregi controls": SMAREGI_CONTROL_PATH})
    return DispatcherMiddleware(_not_found, {
        "/smaregi": smaregi_app, "/colorme": colorme.create_app(cm), "/shopify": shopify.create_app(sh),
        "/nextengine": nextengine.create_app(ne), CHANNELS_CONTROL_PATH.rstrip("/"): controls})


def start_demo(app, stocklink_url: str, *, unlinked: tuple[str, ...] = ("shopify",)) -> Demo:
    """Start the sandboxes, point stocklink at them and load the sample data. The channel kinds in
    ``unlinked`` get no listings (their sandbox still holds the products); the benchmarks pass
    ``()`` to start with every channel linked."""
    sm = smaregi_sandbox.SmaregiSandbox(contract_id="demo")
    samples = load_sample(sm)
    cm, sh, ne = colorme.ColorMeSandbox(), shopify.ShopifySandbox(), nextengine.NextEngineSandbox(
        rotate="on_expiry", auto_process=True)
    server = smaregi_sandbox.serve_smaregi(sandbox_dispatcher(sm, cm, sh, ne))
    url = server.url
    customer_code = secrets.token_urlsafe(12)
    sm.configure(notify_url=f"{stocklink_url}/webhooks/smaregi/{customer_code}", notify_mode="legacy")
    password = secrets.token_urlsafe(10)
    with app.app_context():
        merchant_settings.save({
            "smaregi.api_generation": "legacy", "smaregi.contract_id": "demo",
            "smaregi.access_token": sm.access_token, "smaregi.store_id": "1",
            "smaregi.customer_code": customer_code, "smaregi.legacy_base_url": f"{url}/smaregi/access/",
            "smaregi.platform_id_base_url": f"{url}/smaregi", "smaregi.platform_api_base_url": f"{url}/smaregi",
            "smaregi.client_id": sm.client_id, "smaregi.client_secret": sm.client_secret,
        })
        _load_catalogue(samples)
        _create_channels(url, samples, cm, sh, ne, unlinked, stocklink_url)
        refresh_products()
        refresh_listings()
        user = db.session.scalars(select(User).where(User.username == "admin")).first() or User(username="admin")
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        from stocklink.jobs.push import enqueue_push
        for channel in db.session.scalars(select(Channel)):
            enqueue_push(channel.id)
    return Demo(url, "admin", password, sm, cm, sh, ne, server)


def _load_catalogue(samples) -> None:
    """Products as Smaregi knows them, with the store's current stock."""
    existing = {p.smaregi_product_id: p for p in db.session.scalars(select(Product))}
    for s in samples:
        product = existing.get(s.product_id) or Product(smaregi_product_id=s.product_id)
        product.product_code, product.name = s.code, s.name
        product.variation = variation_label(s.color, s.size)
        product.group_code = s.group_code
        product.stock_managed = is_stock_managed(s.stock_control_division)
        product.smaregi_stock = s.stock or 0
        product.reserved = 0
        product.stock_read_at = None
        db.session.add(product)
    gift = db.session.scalars(select(Product).where(Product.product_code == SET_CODE)).first()
    if gift is None:
        gift = Product(product_code=SET_CODE, name="ギフトセット (マグカップ + 手ぬぐい)", is_set=True)
        db.session.add(gift)
        db.session.flush()
        by_code = {p.product_code: p for p in db.session.scalars(select(Product))}
        db.session.add_all([SetComponent(set_product_id=gift.id, component_id=by_code["MUG01"].id, quantity=1),
                            SetComponent(set_product_id=gift.id, component_id=by_code["TNG01"].id, quantity=2)])
    db.session.flush()


def _create_channels(url, samples, cm, sh, ne, unlinked: tuple[str, ...], stocklink_url: str) -> None:
    """Fresh demo channels on every start (the sandboxes start empty), each item in a sandbox
    linked to its product unless its channel's kind is in ``unlinked``."""
    db.session.execute(delete(Channel).where(Channel.name.in_(DEMO_CHANNELS)))
    db.session.flush()
    products = {p.product_code: p for p in db.session.scalars(select(Product))}
    linkable = [s for s in samples if not s.store_only and is_stock_managed(s.stock_control_division)]
    # ColorMe plays the channel imported first (the base channel): later imports link to it by SKU.
    colorme_ch = Channel(kind="colorme", name=DEMO_CHANNELS[0], base_url=f"{url}/colorme", settings={},
                         is_base=True)
    shopify_ch = Channel(kind="shopify", name=DEMO_CHANNELS[1], base_url=f"{url}/shopify",
                         settings={"location_id": str(sh.default_location)})
    ne_ch = Channel(kind="nextengine", name=DEMO_CHANNELS[2], base_url=f"{url}/nextengine", settings={})
    for channel in (colorme_ch, shopify_ch, ne_ch):
        if channel.kind not in unlinked:  # as if its catalogue had been imported
            channel.catalogue_imported_at = utcnow()
    db.session.add_all([colorme_ch, shopify_ch, ne_ch])
    db.session.flush()
    save_credentials(colorme_ch, {"access_token": cm.issue_token()}, by_merchant=True)
    save_credentials(shopify_ch, {"access_token": sh.issue_token(), "client_secret": sh.client_secret},
                     by_merchant=True)
    # Orders: every channel's from now on (初期受注取得), Shopify's pushed by its webhooks as well.
    for channel in (colorme_ch, shopify_ch, ne_ch):
        channel.orders_start_at, channel.speed_up = utcnow(), True
    for topic in ("orders/create", "orders/updated", "orders/cancelled"):
        sh.subscribe(topic, f"{stocklink_url}/webhooks/channels/{shopify_ch.id}/orders")
    tokens = ne.login()
    save_credentials(ne_ch, {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]},
                     by_merchant=True)
    for s in linkable:
        product = products[s.code]
        start = max(s.stock or 0, 0)
        colorme_id = str(cm.add_product(s.name, stocks=start, model_number=s.code))
        shopify_id = str(sh.add_item(s.code, start))
        ne.add_goods(s.code, start, name=s.name)
        if "colorme" not in unlinked:
            db.session.add(Listing(channel=colorme_ch, product=product, sku=s.code, title=s.name,
                                   identifier=colorme_id))
        if "shopify" not in unlinked:
            db.session.add(Listing(channel=shopify_ch, product=product, sku=s.code, title=s.name,
                                   identifier=shopify_id))
        if "nextengine" not in unlinked:
            db.session.add(Listing(channel=ne_ch, product=product, sku=s.code, title=s.name, identifier=s.code,
                                   last_confirmed_quantity=start))
    gift = products[SET_CODE]
    gift_id = str(cm.add_product(gift.name, stocks=0, model_number=SET_CODE))
    if "colorme" not in unlinked:
        db.session.add(Listing(channel=colorme_ch, product=gift, sku=SET_CODE, title=gift.name, identifier=gift_id))
    db.session.flush()
    mark_listings_dirty({p.id for p in products.values()})
