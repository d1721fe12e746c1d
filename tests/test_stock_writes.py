"""The one function that writes Smaregi stock and the ledger (SPEC §3, §11.4, §11.5)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, StockLedger
from stocklink.models._types import utcnow
from stocklink.services.delta_channels import add_pending_deltas
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads


def _products(*stocks: int) -> list[int]:
    ids = []
    for n, stock in enumerate(stocks):
        product = Product(smaregi_product_id=f"99000{n}", name=f"P{n}", smaregi_stock=stock)
        db.session.add(product)
        db.session.flush()
        ids.append(product.id)
    db.session.commit()
    return ids


def test_several_products_in_one_call_write_the_ledger_only_for_changes(app):
    with app.app_context():
        a, b, c = _products(10, 5, 7)
        changed = apply_smaregi_reads({a: StockRead(8, "smaregi:02:sale", "inbox:1,2"),
                                       b: StockRead(5, "smaregi:02:sale", "inbox:3"),
                                       c: StockRead(0, "smaregi:10:stocktake")}, utcnow())
        db.session.commit()
        assert changed == {a, c}
        assert [db.session.get(Product, i).smaregi_stock for i in (a, b, c)] == [8, 5, 0]
        rows = db.session.execute(select(StockLedger.product_id, StockLedger.before, StockLedger.after,
                                         StockLedger.cause, StockLedger.source_event)
                                  .order_by(StockLedger.product_id)).all()
        assert [tuple(r) for r in rows] == [(a, 10, 8, "smaregi:02:sale", "inbox:1,2"),
                                            (c, 7, 0, "smaregi:10:stocktake", None)]


def test_an_older_read_never_wins_over_a_newer_one(app):
    """Two workers read in one order and write in the other: the older figure is ignored."""
    with app.app_context():
        [a] = _products(10)
        newer, older = utcnow(), utcnow() - timedelta(seconds=1)
        assert apply_smaregi_reads({a: StockRead(4, "smaregi:02:sale")}, newer) == {a}
        db.session.commit()
        assert apply_smaregi_reads({a: StockRead(9, "smaregi:02:sale")}, older) == set()
        db.session.commit()
        assert db.session.get(Product, a).smaregi_stock == 4
        assert db.session.scalar(select(db.func.count(StockLedger.id))) == 1
        # The same figure read later changes nothing in the ledger but moves the read time on,
        # so a read taken between the two can no longer win.
        later = utcnow()
        assert apply_smaregi_reads({a: StockRead(4, "smaregi:02:sale")}, later) == set()
        db.session.commit()
        assert apply_smaregi_reads({a: StockRead(6, "smaregi:02:sale")}, newer + (later - newer) / 2) == set()
        db.session.commit()
        assert db.session.get(Product, a).smaregi_stock == 4


def test_pending_deltas_accumulate_per_product_in_one_statement(app):
    with app.app_context():
        a, b = _products(3, 3)
        channel = Channel(kind="nextengine", name="NE", base_url="http://ne.invalid", settings={})
        db.session.add(channel)
        db.session.flush()
        for pid in (a, b):
            db.session.add(Listing(channel_id=channel.id, product_id=pid, identifier=f"sku-{pid}"))
        db.session.commit()
        add_pending_deltas({a: -2, b: 0}, {channel.id})
        add_pending_deltas({a: -1, b: 4}, {channel.id})
        db.session.commit()
        rows = dict(db.session.execute(select(Listing.product_id, Listing.pending_delta)).all())
        assert rows == {a: -3, b: 4}
        dirty = dict(db.session.execute(select(Listing.product_id, Listing.dirty)).all())
        assert dirty == {a: True, b: True}
