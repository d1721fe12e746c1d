"""The demo `make run` starts with no Smaregi configured: it must start again on its own database."""
from __future__ import annotations

import requests
from sqlalchemy import func, select

from stocklink.domain.linking import is_stock_managed
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product
from stocklink.sandbox.catalogue import sample_products
from stocklink.sandbox.demo import CHANNELS_CONTROL_PATH, DEMO_CHANNELS, SMAREGI_CONTROL_PATH, start_demo


def _counts(app) -> tuple[int, int, int, int]:
    """(channels, listings, listings whose channel is gone, products)."""
    with app.app_context():
        channel_ids = select(Channel.id)
        return (db.session.scalar(select(func.count()).select_from(Channel)),
                db.session.scalar(select(func.count()).select_from(Listing)),
                db.session.scalar(select(func.count()).select_from(Listing)
                                  .where(Listing.channel_id.not_in(channel_ids))),
                db.session.scalar(select(func.count()).select_from(Product)))


def test_the_demo_starts_a_second_time_on_the_same_database(app):
    """A second `make run` replaces the demo channels (the sandboxes start empty each time) and
    their listings go with them; found when the second start failed on the first one's listings."""
    first = start_demo(app, stocklink_url="http://127.0.0.1:9")
    first.stop()
    after_first = _counts(app)
    second = start_demo(app, stocklink_url="http://127.0.0.1:9")
    try:
        assert _counts(app) == after_first
        channels, listings, orphans, products = after_first
        assert (channels, orphans) == (3, 0) and listings > 100 and products == 57  # Shopify has none
        with app.app_context():
            urls = set(db.session.scalars(select(Channel.base_url)))
        assert all(url.startswith(second.url) for url in urls)
    finally:
        second.stop()


def _listings_by_kind(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Channel.kind, func.count(Listing.id))
                                  .join(Listing, Listing.channel_id == Channel.id, isouter=True)
                                  .group_by(Channel.kind)).all()
        return dict(rows)


def test_shopify_starts_unlinked_and_its_sandbox_holds_every_product_by_code(app):
    """ColorMe (the base channel) and NextEngine start linked; Shopify is configured with no
    listing, while its sandbox holds each linkable product under a SKU equal to the Smaregi
    product code, so importing it links by the SKU rule."""
    demo = start_demo(app, stocklink_url="http://127.0.0.1:9")
    try:
        counts = _listings_by_kind(app)
        linkable = {s.code for s in sample_products() if not s.store_only
                    and is_stock_managed(s.stock_control_division)}
        assert counts["shopify"] == 0
        assert counts["colorme"] == len(linkable) + 1  # and the set product
        assert counts["nextengine"] == len(linkable)
        with demo.shopify.lock:
            skus = [item["sku"] for item in demo.shopify.items.values()]
        assert sorted(skus) == sorted(linkable)
        with app.app_context():
            codes = set(db.session.scalars(select(Product.product_code)))
            channels = {c.kind: c for c in db.session.scalars(select(Channel).where(Channel.name.in_(DEMO_CHANNELS)))}
            assert linkable <= codes
            assert [k for k, c in channels.items() if c.is_base] == ["colorme"]
            assert channels["shopify"].catalogue_imported_at is None
            assert channels["colorme"].catalogue_imported_at is not None
            # the grid's keyword search finds the demo's products and listings
            assert db.session.scalar(select(func.count()).select_from(Product).where(Product.search_text == "")) == 0
    finally:
        demo.stop()


def test_the_benchmarks_can_start_the_demo_with_every_channel_linked(app):
    """``unlinked=()`` links Shopify too (the propagation and fault benchmarks read all three)."""
    demo = start_demo(app, stocklink_url="http://127.0.0.1:9", unlinked=())
    try:
        counts = _listings_by_kind(app)
        assert counts["shopify"] == counts["nextengine"] > 0
    finally:
        demo.stop()


def test_the_demo_serves_both_control_pages(app):
    """The Smaregi control page and the channels' control page are reachable on the demo's host."""
    demo = start_demo(app, stocklink_url="http://127.0.0.1:9")
    try:
        with requests.Session() as http:
            smaregi_page = http.get(f"{demo.url}{SMAREGI_CONTROL_PATH}", timeout=10)
            channels_page = http.get(f"{demo.url}{CHANNELS_CONTROL_PATH}", timeout=10)
        assert smaregi_page.status_code == channels_page.status_code == 200
        assert "MUG01" in channels_page.text and CHANNELS_CONTROL_PATH in smaregi_page.text
    finally:
        demo.stop()
