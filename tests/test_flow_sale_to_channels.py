"""A POS sale, notified in either API generation, reaches every channel: notify, fetch Smaregi's
stock, overwrite stocklink's, push (SPEC §3, §4, §11)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ConfirmationItem, Listing, OutboxMessage, Product, StockLedger
from stocklink.services.smaregi_stock import smaregi_client
from tests.e2e_helpers import (
    colorme_writes,
    inbox_rows,
    ledger_count,
    listings_of,
    shopify_writes,
    stock_of,
    use_generation,
)

pytest_plugins = ["tests.fixtures_platforms"]

A, U = "8200001", "8200055"


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_pos_sale_reaches_every_channel(app, world, jobs_runner, generation):
    """A POS sale is notified, Smaregi's stock is read and overwritten, and both channels get it."""
    use_generation(app, world.smaregi, generation)
    item = world.add(A, "TS01-WH-S", "Tシャツ 白 S", 10)
    [change] = world.smaregi.sell([(A, 2)])
    [(inbox_id, stored_generation, status)] = inbox_rows(app)
    assert (stored_generation, status) == (generation, "received")
    assert stock_of(app, A) == 10  # the webhook only stores; a worker does the rest

    jobs_runner()
    assert inbox_rows(app) == [(inbox_id, generation, "done")]
    assert stock_of(app, A) == change.stock_amount == 8
    with app.app_context():
        [entry] = db.session.scalars(select(StockLedger)).all()
        assert (entry.field, entry.before, entry.after) == ("smaregi_stock", 10, 8)
        assert entry.source_event == f"inbox:{inbox_id}"
        assert entry.cause == ("smaregi:02:sale" if generation == "legacy" else "smaregi:notification")
        assert all(c.last_sync_at is not None for c in db.session.scalars(select(Channel)))
    assert world.channel_stock(A) == (8, 8)
    assert listings_of(app, A) == [("colorme", 8, False), ("shopify", 8, False)]
    # ColorMe gets a relative write, Shopify a compare-and-set (SPEC §11.6).
    assert colorme_writes(world.colorme, item["colorme"]) == [{"product": {"stocks": {"increment": -2}}}]
    [write] = shopify_writes(world.shopify, item["shopify"])
    assert (write["quantity"], write["changeFromQuantity"]) == (8, 10)


def test_a_product_outside_stock_control_is_not_synced(app, world, jobs_runner):
    """A product with stockControlDivision "1" is recorded as such and never queued, mailed or pushed."""
    use_generation(app, world.smaregi, "platform")
    world.add(A, "BAG01", "帆布トート", 5)
    world.smaregi.add_product(U, "ギフトラッピング", code="GIFT01", stock_control_division="1", stock=3)
    with app.app_context():  # another app writes both through the Platform API: Smaregi echoes a webhook
        client = smaregi_client()
        client.set_stock(A, 4)
        client.set_stock(U, 7)
    world.smaregi.wait_for_sends()
    assert len(inbox_rows(app)) == 2
    jobs_runner()
    assert stock_of(app, A) == 4 and world.channel_stock(A) == (4, 4)
    with app.app_context():
        gift = db.session.scalars(select(Product).where(Product.smaregi_product_id == U)).one()
        assert (gift.stock_managed, gift.smaregi_stock, gift.name) == (False, 0, "ギフトラッピング")
        shop_id = world.colorme.add_product("ギフトラッピング", stocks=1)
        db.session.add(Listing(channel_id=world.colorme_id, product_id=gift.id, identifier=str(shop_id)))
        db.session.commit()
    with app.app_context():
        smaregi_client().set_stock(U, 9)
    world.smaregi.wait_for_sends()
    jobs_runner()
    assert stock_of(app, U) == 0 and world.colorme.stock(shop_id) == 1
    assert colorme_writes(world.colorme, shop_id) == []
    with app.app_context():
        assert db.session.scalar(select(func.count(ConfirmationItem.id))) == 0
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0
    assert ledger_count(app, U) == 0


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_ten_sales_then_one_run_write_each_channel_once(app, world, jobs_runner, generation):
    """Ten notifications processed in one run coalesce into one write per channel with the latest value."""
    use_generation(app, world.smaregi, generation)
    item = world.add(A, "SOP01", "米ぬか石鹸", 20)
    for _ in range(10):
        world.smaregi.sell([(A, 1)])
    assert len(inbox_rows(app)) == 10
    jobs_runner()
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"] * 10
    assert stock_of(app, A) == 10 and ledger_count(app, A) == 1
    assert colorme_writes(world.colorme, item["colorme"]) == [{"product": {"stocks": {"increment": -10}}}]
    assert [q["quantity"] for q in shopify_writes(world.shopify, item["shopify"])] == [10]
    assert world.channel_stock(A) == (10, 10)
