"""Web orders taken in (SPEC §5, §11.3): reserved once however often they are read, revisions
replace each other, cancels give the units back, sets reserve their components, and every
other channel is told."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.models import Channel, Order, OrderLine, Product, Registration, SetComponent, StockLedger
from stocklink.platforms.interfaces import ChannelOrder, ChannelOrderLine
from stocklink.services.order_intake import take_orders
from tests.conftest import run_jobs
from tests.e2e_helpers import add_product

pytest_plugins = ["tests.fixtures_platforms"]

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _order(order_id: str, *lines: tuple[str, str, int], cancelled: bool = False, status: str = "paid",
           at: datetime = T0, minutes: int = 0) -> ChannelOrder:
    return ChannelOrder(order_id=order_id, ordered_at=at, updated_at=at + timedelta(minutes=minutes), status=status,
                        cancelled=cancelled,
                        lines=tuple(ChannelOrderLine(line_id, identifier, quantity, code=identifier, title="商品",
                                                     unit_price=1200) for line_id, identifier, quantity in lines))


def _take(app, channel_id: int, *orders: ChannelOrder):
    with app.app_context():
        taken = take_orders(db.session.get(Channel, channel_id), orders)
        db.session.commit()
        for cid in sorted(taken.channel_ids):
            enqueue_push(cid)
    return taken


def _reserved(app, product_id: int) -> int:
    with app.app_context():
        return db.session.get(Product, product_id).reserved


def _registrations(app) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(select(Registration.revision, Registration.action,
                                                            Registration.mode).order_by(Registration.id))]


@pytest.fixture
def shop(world):
    shirt = world.add("1001", "TS-S", "Tシャツ S", 5)
    mug = world.add("1002", "MUG", "マグカップ", 3)
    return world, shirt, mug


def test_a_new_order_reserves_its_lines_and_lowers_every_other_channel(app, shop):
    world, shirt, mug = shop
    colorme_line = str(shirt["colorme"])
    taken = _take(app, world.colorme_id, _order("A-1", ("1", colorme_line, 2), ("2", str(mug["colorme"]), 1)))
    assert (taken.new, taken.unchanged) == (1, 0)
    assert (_reserved(app, shirt["product"]), _reserved(app, mug["product"])) == (2, 1)
    assert _registrations(app) == [(1, "register", "shipment")]
    run_jobs(app)
    assert world.shopify.stock(shirt["shopify"]) == 3 and world.shopify.stock(mug["shopify"]) == 2
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert (order.state, order.revision, order.channel_status) == ("reserved", 1, "paid")
        ledger = db.session.execute(select(StockLedger.field, StockLedger.before, StockLedger.after,
                                           StockLedger.cause).where(StockLedger.product_id == shirt["product"])).all()
        assert [tuple(r) for r in ledger] == [("reserved", 0, 2, "order:reserved")]


def test_the_same_order_read_again_and_again_reserves_once(app, shop):
    world, shirt, _mug = shop
    order = _order("A-1", ("1", str(shirt["colorme"]), 2))
    _take(app, world.colorme_id, order)
    again = _take(app, world.colorme_id, order, order)
    assert (again.new, again.unchanged) == (0, 2)
    assert _reserved(app, shirt["product"]) == 2
    assert len(_registrations(app)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OrderLine)) == 1


def test_two_workers_taking_one_order_at_once_reserve_it_once(app, shop):
    world, shirt, _mug = shop
    order = _order("A-1", ("1", str(shirt["colorme"]), 2))
    barrier = threading.Barrier(2)
    errors = []

    def worker():
        try:
            barrier.wait()
            _take(app, world.colorme_id, order)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _reserved(app, shirt["product"]) == 2
    assert len(_registrations(app)) == 1


def test_an_edited_order_gives_back_the_old_revision_and_reserves_the_new(app, shop):
    world, shirt, mug = shop
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
    edited = _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 1),
                                                 ("2", str(mug["colorme"]), 2), minutes=5))
    assert edited.revised == 1
    assert (_reserved(app, shirt["product"]), _reserved(app, mug["product"])) == (1, 2)
    # Revision 1 was never registered: nothing to cancel in Smaregi, only revision 2 to register.
    assert _registrations(app) == [(1, "register", "shipment"), (2, "register", "shipment")]
    with app.app_context():
        states = db.session.execute(select(OrderLine.revision, OrderLine.state).order_by(OrderLine.id)).all()
        assert [tuple(r) for r in states] == [(1, "returned"), (2, "reserved"), (2, "reserved")]


def test_a_cancelled_order_gives_its_units_back_on_every_channel(app, shop):
    world, shirt, _mug = shop
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
    run_jobs(app)
    assert world.shopify.stock(shirt["shopify"]) == 3
    cancelled = _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 0), cancelled=True,
                                                    minutes=9))
    assert cancelled.cancelled == 1 and _reserved(app, shirt["product"]) == 0
    run_jobs(app)
    assert world.shopify.stock(shirt["shopify"]) == 5
    with app.app_context():
        assert db.session.scalar(select(Order.state)) == "cancelled"


def test_a_registered_revision_replaced_is_cancelled_in_smaregi(app, shop):
    world, shirt, _mug = shop
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
    with app.app_context():
        registration = db.session.scalar(select(Registration))
        registration.state = "done"  # as the registration outbox leaves it
        db.session.execute(OrderLine.__table__.update().values(state="released"))
        db.session.execute(Product.__table__.update().where(Product.id == shirt["product"]).values(reserved=0))
        db.session.commit()
    _take(app, world.colorme_id, _order("A-1", cancelled=True, minutes=3))
    assert _registrations(app) == [(1, "register", "shipment"), (1, "cancel", "shipment")]
    assert _reserved(app, shirt["product"]) == 0  # released units are Smaregi's to give back


def test_a_set_line_reserves_its_components(app, shop):
    world, shirt, mug = shop
    gift = add_product(app, "1099", "GIFT", "ギフトセット", listings={world.colorme_id: "gift"})
    with app.app_context():
        db.session.get(Product, gift).is_set = True
        db.session.add_all([SetComponent(set_product_id=gift, component_id=shirt["product"], quantity=1),
                            SetComponent(set_product_id=gift, component_id=mug["product"], quantity=2)])
        db.session.commit()
    _take(app, world.colorme_id, _order("A-9", ("1", "gift", 1)))
    assert (_reserved(app, shirt["product"]), _reserved(app, mug["product"]), _reserved(app, gift)) == (1, 2, 0)


def test_orders_before_the_starting_point_and_of_other_statuses_deduct_nothing(app, shop):
    world, shirt, _mug = shop
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        channel.orders_start_at, channel.order_statuses = T0, ["paid"]
        db.session.commit()
    line = ("1", str(shirt["colorme"]), 1)
    taken = _take(app, world.colorme_id, _order("OLD", line, at=T0 - timedelta(minutes=1)),
                  _order("UNPAID", line, status="unpaid"), _order("GONE", line, cancelled=True))
    assert taken.ignored == 3 and _reserved(app, shirt["product"]) == 0
    # Edited later, the old one stays ignored; the unpaid one counts once it is paid.
    later = _take(app, world.colorme_id, _order("OLD", ("1", str(shirt["colorme"]), 2), at=T0 - timedelta(minutes=1),
                                                minutes=30), _order("UNPAID", line, status="paid", minutes=30))
    assert (later.new, later.unchanged) == (1, 1)
    assert _reserved(app, shirt["product"]) == 1
    with app.app_context():
        reasons = dict(db.session.execute(select(Order.channel_order_id, Order.ignored_reason)).all())
        assert reasons == {"OLD": "before_start", "UNPAID": None, "GONE": "cancelled"}


def test_a_line_of_an_unlinked_listing_is_recorded_and_deducts_nothing(app, shop):
    world, shirt, _mug = shop
    _take(app, world.colorme_id, _order("A-2", ("1", "not-a-listing", 3), ("2", str(shirt["colorme"]), 1)))
    assert _reserved(app, shirt["product"]) == 1
    with app.app_context():
        rows = db.session.execute(select(OrderLine.listing_identifier, OrderLine.product_id, OrderLine.state)
                                  .order_by(OrderLine.id)).all()
        assert [tuple(r) for r in rows] == [("not-a-listing", None, "none"), (str(shirt["colorme"]),
                                                                              shirt["product"], "reserved")]


def test_an_order_taking_a_product_to_its_threshold_is_mailed_once_per_crossing(app, shop):
    from stocklink.models import OutboxMessage
    from stocklink.services import merchant_settings
    world, shirt, mug = shop
    with app.app_context():
        merchant_settings.save({"notify.low_stock_on": True, "notify.low_stock_threshold": 3,
                                "notify.low_stock_to": "shop@example.jp"})
        db.session.get(Product, mug["product"]).low_stock_threshold = 0  # its own: only when sold out
        db.session.commit()
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2), ("2", str(mug["colorme"]), 1)))
    _take(app, world.colorme_id, _order("A-2", ("1", str(shirt["colorme"]), 1)))  # 3 → 2: still low, no mail
    _take(app, world.colorme_id, _order("A-3", ("1", str(mug["colorme"]), 2)))  # mug 2 → 0
    with app.app_context():
        mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "low_stock")
                                   .order_by(OutboxMessage.id)).all()
        assert len(mails) == 2
        assert "TS-S" in mails[0].body and "総在庫数 3" in mails[0].body and "MUG" not in mails[0].body
        assert "MUG" in mails[1].body and "総在庫数 0" in mails[1].body and mails[1].recipients == "shop@example.jp"


@pytest.mark.parametrize("read_offset_s, expected", [(-60, 3), (60, 5), (2, None), (None, None)])
def test_the_order_channels_own_listing_is_not_deducted_there_again(app, shop, read_offset_s, expected):
    """ColorMe took the 2 units itself: a stock read before the order now stands at 3, one read
    after it already says so, one read too close to tell (or never) becomes unknown."""
    from stocklink.models import Listing
    world, shirt, _mug = shop
    with app.app_context():
        listing = db.session.scalar(select(Listing).where(Listing.channel_id == world.colorme_id))
        listing.last_confirmed_quantity = 5
        listing.last_confirmed_at = T0 + timedelta(seconds=read_offset_s) if read_offset_s is not None else None
        db.session.commit()
        listing_id = listing.id
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
    with app.app_context():
        assert db.session.get(Listing, listing_id).last_confirmed_quantity == expected
    if expected is not None:  # an edit: the channel moved it again, by an amount not known here
        _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 1), minutes=4))
        with app.app_context():
            assert db.session.get(Listing, listing_id).last_confirmed_quantity is None


def test_a_pos_sale_and_a_web_order_on_one_product_at_once_lose_neither(app, shop):
    """Two workers at the same moment: one applies a POS sale read from Smaregi (5 → 4), the other
    reserves a web order of 2. Neither overwrites the other: Smaregi stock 4, reserved 2, total 2."""
    from stocklink.models._types import utcnow
    from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads
    world, shirt, _mug = shop
    barrier = threading.Barrier(2)
    errors = []

    def pos_sale():
        try:
            with app.app_context():
                barrier.wait()
                apply_smaregi_reads({shirt["product"]: StockRead(4, "smaregi:notification")}, utcnow())
                db.session.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def web_order():
        try:
            barrier.wait()
            _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=pos_sale), threading.Thread(target=web_order)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with app.app_context():
        product = db.session.get(Product, shirt["product"])
        assert (product.smaregi_stock, product.reserved, product.total) == (4, 2, 2)
        fields = sorted(db.session.scalars(select(StockLedger.field).where(StockLedger.product_id == product.id)))
        assert fields == ["reserved", "smaregi_stock"]


def test_a_read_older_than_the_change_already_taken_changes_nothing(app, shop):
    """A webhook's read of the order overtaken by a poll that took its edit: the older content
    arriving last does not bring the old revision back."""
    world, shirt, _mug = shop
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2)))
    _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 1), minutes=5))
    late = _take(app, world.colorme_id, _order("A-1", ("1", str(shirt["colorme"]), 2), minutes=1))
    assert late.unchanged == 1 and _reserved(app, shirt["product"]) == 1
    with app.app_context():
        assert db.session.scalar(select(Order.revision)) == 2
