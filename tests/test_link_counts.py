"""``products.linked_listings`` (the grid's linked/unlinked filters) stays equal to the listings
really linked, whatever changes a listing's product: the ORM, a bulk insert that skips it, a
relink, an unlink, a deleted listing, product or channel."""
from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import delete, func, insert, select, text, update

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product
from stocklink.models._types import utcnow


def _counts() -> dict[int, tuple[int, int]]:
    """Each product's kept count beside the count of its listings."""
    real = dict(db.session.execute(select(Listing.product_id, func.count()).where(Listing.product_id.is_not(None))
                                   .group_by(Listing.product_id)).all())
    kept = db.session.execute(select(Product.id, Product.linked_listings))
    return {pid: (count, real.get(pid, 0)) for pid, count in kept}


def _assert_kept(expected: dict[int, int]) -> None:
    db.session.expire_all()
    counts = _counts()
    assert all(kept == real for kept, real in counts.values()), counts
    assert {pid: kept for pid, (kept, _real) in counts.items()} == expected


def test_every_way_a_listing_changes_product_keeps_the_count(app):
    with app.app_context():
        mug, shirt, cap = (Product(name=name, smaregi_product_id=sid)
                           for name, sid in (("マグ", "1"), ("シャツ", "2"), ("帽子", "3")))
        colorme = Channel(kind="colorme", name="カラーミー", base_url="http://127.0.0.1:9", settings={})
        shopify = Channel(kind="shopify", name="Shopify", base_url="http://127.0.0.1:9", settings={})
        db.session.add_all([mug, shirt, cap, colorme, shopify])
        db.session.flush()
        a = Listing(channel=colorme, identifier="a", product=mug)
        b = Listing(channel=shopify, identifier="b", product=mug)
        c = Listing(channel=colorme, identifier="c")
        db.session.add_all([a, b, c])
        db.session.commit()
        _assert_kept({mug.id: 2, shirt.id: 0, cap.id: 0})

        db.session.execute(insert(Listing), [  # Core executemany, as the catalogue import inserts
            {"channel_id": shopify.id, "identifier": f"bulk{i}", "product_id": shirt.id, "channel_attributes": {},
             "created_at": utcnow()} for i in range(3)])
        db.session.commit()
        _assert_kept({mug.id: 2, shirt.id: 3, cap.id: 0})

        c.product = cap  # link
        b.product = shirt  # relink to another product
        a.sku = "MUG"  # a change that is not a link: nothing counted
        db.session.commit()
        _assert_kept({mug.id: 1, shirt.id: 4, cap.id: 1})

        db.session.execute(update(Listing).where(Listing.id == c.id).values(product_id=None))  # unlink
        db.session.execute(update(Listing).where(Listing.id == a.id).values(product_id=mug.id))  # same product
        db.session.commit()
        _assert_kept({mug.id: 1, shirt.id: 4, cap.id: 0})

        db.session.delete(b)
        db.session.commit()
        _assert_kept({mug.id: 1, shirt.id: 3, cap.id: 0})

        db.session.execute(delete(Product).where(Product.id == mug.id))  # ON DELETE SET NULL on its listing
        db.session.commit()
        _assert_kept({shirt.id: 3, cap.id: 0})
        assert db.session.get(Listing, a.id).product_id is None

        db.session.execute(delete(Channel).where(Channel.id == shopify.id))  # its listings cascade
        db.session.commit()
        _assert_kept({shirt.id: 0, cap.id: 0})


def test_revision_0012_counts_the_listings_already_there(app):
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        downgrade(revision="0011")
        now = "'2026-12-01 00:00:00'"
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO products (id, name, is_set, stock_managed, smaregi_stock, reserved, "
                              f"search_text, created_at, updated_at) VALUES (1, 'マグ', false, true, 0, 0, '', {now}, "
                              f"{now}), (2, 'シャツ', false, true, 0, 0, '', {now}, {now})"))
            conn.execute(text("INSERT INTO channels (id, kind, name, enabled, base_url, settings, state, range_min, "
                              "range_max, poll_interval_s, speed_up, is_base, heal_after_minutes, created_at) VALUES "
                              f"(1, 'colorme', 'C', true, 'http://x', '{{}}', 'active', 0, 9, 180, false, false, NULL, "
                              f"{now})"))
            for lid, pid in ((1, 1), (2, 1), (3, "NULL")):
                conn.execute(text("INSERT INTO listings (id, channel_id, product_id, identifier, sync_enabled, "
                                  "reserve, ratio_percent, dirty, pending_delta, channel_attributes, difference, "
                                  f"search_text, created_at) VALUES ({lid}, 1, {pid}, 'i{lid}', true, 0, 100, false, "
                                  f"0, '{{}}', false, '', {now})"))
        upgrade()
        _assert_kept({1: 2, 2: 0})
        db.session.execute(update(Listing).where(Listing.id == 3).values(product_id=2))
        db.session.commit()
        _assert_kept({1: 2, 2: 1})
