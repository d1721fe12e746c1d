"""Web orders from a channel's poll to Smaregi, exactly once (SPEC §5): reserved, registered as a
shipment or a transaction in both API generations, released with the stock read after it, and
never registered twice — re-polled, run twice, after a lost answer."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.jobs.orders import poll_orders, register_order
from stocklink.models import Channel, ErrorRecord, Listing, Order, Product, Registration
from stocklink.models._types import as_utc, utcnow
from stocklink.services import merchant_settings
from tests.conftest import run_jobs
from tests.e2e_helpers import use_generation

pytest_plugins = ["tests.fixtures_platforms"]


@pytest.fixture
def shop(app, world):
    shirt = world.add("1001", "TS-S", "Tシャツ S", 5, price=2500)
    with app.app_context():
        db.session.get(Channel, world.shopify_id).orders_start_at = utcnow()
        db.session.commit()
    return world, shirt


def _poll(app, channel_id: int) -> str:
    with app.app_context():
        return poll_orders(channel_id)


def _product(app, product_id: int) -> tuple[int, int]:
    with app.app_context():
        product = db.session.get(Product, product_id)
        return product.smaregi_stock, product.reserved


def _registrations(app) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(select(
            Registration.revision, Registration.action, Registration.state, Registration.attempts)
            .order_by(Registration.id))]


def _nextengine_shirt(app, world, nextengine, nextengine_id: int) -> dict:
    """A 5-unit shirt on ColorMe, Shopify and NextEngine (goods TS-S, a listing confirmed at 5)."""
    shirt = world.add("1001", "TS-S", "Tシャツ S", 5, price=2500)
    nextengine.add_goods("TS-S", 5)
    with app.app_context():
        db.session.add(Listing(channel_id=nextengine_id, product_id=shirt["product"], identifier="TS-S",
                               last_confirmed_quantity=5))
        db.session.commit()
    return shirt


def _records(world, mode: str) -> list:
    return world.smaregi.shipment_records() if mode == "shipment" else world.smaregi.transaction_records()


@pytest.mark.parametrize("generation", ["legacy", "platform"])
@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_a_shopify_order_is_reserved_registered_once_and_released(app, shop, generation, mode):
    world, shirt = shop
    use_generation(app, world.smaregi, generation)
    with app.app_context():
        merchant_settings.save({"smaregi.registration_mode": mode})
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    assert "1 new" in _poll(app, world.shopify_id)
    assert _product(app, shirt["product"]) == (5, 2)  # reserved at once: total 3 before Smaregi knows
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3
    [record] = _records(world, mode)
    assert _product(app, shirt["product"]) == (3, 0)
    assert _registrations(app) == [(1, "register", "done", 1)]
    assert world.colorme.stock(shirt["colorme"]) == 3 and world.shopify.stock(shirt["shopify"]) == 3
    with app.app_context():
        order = db.session.scalar(select(Order))
        registration = db.session.scalar(select(Registration))
        assert order.state == "registered" and registration.smaregi_ref == str(record.id)
    # Polled again, and the job run again: nothing more reaches Smaregi.
    assert "0 new" in _poll(app, world.shopify_id)
    with app.app_context():
        assert register_order(order.id) == "nothing to settle"
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3 and len(_records(world, mode)) == 1


@pytest.mark.parametrize("fault", ["drop", "timeout"])
def test_a_registration_whose_answer_was_lost_is_found_not_sent_again(app, shop, fault):
    world, shirt = shop
    use_generation(app, world.smaregi, "platform")
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    world.smaregi.fail_next_registration(fault, seconds=12)
    run_jobs(app)  # the first attempt reaches Smaregi but its answer never comes
    assert world.smaregi.stock_of("1001") == 3
    assert _product(app, shirt["product"])[1] == 2  # still reserved: the outcome is unknown
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
        assert "registered" in register_order(order_id)  # RQ's retry, run now
    run_jobs(app)
    assert len(world.smaregi.shipment_records()) == 1
    assert _product(app, shirt["product"]) == (3, 0)
    [(revision, action, state, attempts)] = _registrations(app)
    assert (action, state) == ("register", "done") and attempts == 2


def test_an_order_cancelled_after_registration_is_cancelled_in_smaregi(app, shop):
    world, shirt = shop
    order_id = world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3
    world.shopify.cancel_order(order_id)
    assert "1 cancelled" in _poll(app, world.shopify_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 5
    assert _product(app, shirt["product"]) == (5, 0)
    assert world.colorme.stock(shirt["colorme"]) == 5
    assert [r[:3] for r in _registrations(app)] == [(1, "register", "done"), (1, "cancel", "done")]


def test_an_edit_after_registration_cancels_and_registers_the_new_revision(app, shop):
    world, shirt = shop
    order_id = world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    run_jobs(app)
    world.shopify.edit_order(order_id, [(str(shirt["shopify"]), 1)])
    assert "1 revised" in _poll(app, world.shopify_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 4
    assert _product(app, shirt["product"]) == (4, 0)
    assert [r[:3] for r in _registrations(app)] == [(1, "register", "done"), (1, "cancel", "done"),
                                                   (2, "register", "done")]
    assert sum(not r.cancelled for r in world.smaregi.shipment_records()) == 1


def test_refused_sale_credentials_stop_registrations_at_level_9_and_keep_the_reservation(app, shop):
    world, shirt = shop
    use_generation(app, world.smaregi, "platform")
    with app.app_context():
        merchant_settings.save({"smaregi.client_secret": "wrong"})
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 5 and _product(app, shirt["product"]) == (5, 2)
    with app.app_context():
        error = db.session.scalar(select(ErrorRecord).where(ErrorRecord.source == "registration"))
        assert (error.level, error.message_key) == (9, "registration_auth")
        assert db.session.scalar(select(Order.state)) == "failed"


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_a_web_order_reaches_nextengine_once_whether_smaregi_records_a_shipment_or_a_sale(app, world,
                                                                                       nextengine_world, mode):
    """The reservation sends NextEngine the decrease; the movement the registration causes in
    Smaregi (出荷 10, or a transaction's 売上 02 that a POS sale would also be) is not sent again.
    A real POS sale meanwhile still is, and the cancel brings the units back once."""
    nextengine, nextengine_id = nextengine_world
    shirt = _nextengine_shirt(app, world, nextengine, nextengine_id)
    with app.app_context():
        db.session.get(Channel, world.colorme_id).orders_start_at = utcnow()
        merchant_settings.save({"smaregi.registration_mode": mode})
        db.session.commit()
    world.smaregi.sell([("1001", 1)])  # a POS sale gives NextEngine its cursor (and -1)
    run_jobs(app)
    assert nextengine.stock("TS-S") == 4
    order_id = world.colorme.place_order([(str(shirt["colorme"]), 2)])
    assert "1 new" in _poll(app, world.colorme_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 2 and _product(app, shirt["product"]) == (2, 0)
    assert nextengine.stock("TS-S") == 2  # 4 - 2 once, not twice
    world.smaregi.sell([("1001", 1)])
    run_jobs(app)
    assert nextengine.stock("TS-S") == 1
    world.colorme.cancel_order(order_id)
    assert "1 cancelled" in _poll(app, world.colorme_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3 and nextengine.stock("TS-S") == 3
    assert world.colorme.stock(shirt["colorme"]) == 3 and world.shopify.stock(shirt["shopify"]) == 3


def test_before_raising_a_channel_its_own_orders_are_taken_in(app, shop):
    """SPEC §11.6: Shopify sold 2 that stocklink has not polled yet (no webhook); a POS return
    would raise Shopify from 5 to 6. The push first reads Shopify's orders: the 2 are reserved,
    and Shopify is set to 6 - 2 = 4, not raised over its own sale."""
    world, shirt = shop
    world.shopify.place_order([(str(shirt["shopify"]), 2)])  # Shopify holds 3 now
    assert world.shopify.stock(shirt["shopify"]) == 3
    world.smaregi.refund([("1001", 1)])  # Smaregi 6: notified, drained, pushed
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 4  # 6, less the order registered meanwhile
    assert world.shopify.stock(shirt["shopify"]) == 4 and world.colorme.stock(shirt["colorme"]) == 4
    with app.app_context():
        assert db.session.scalar(select(Order.state)) == "registered"


def test_a_push_that_finds_colorme_lower_reads_its_recent_orders_at_once(app, shop):
    """SPEC §11.6: ColorMe sold 2 that stocklink has not polled yet. A POS sale of 1 goes to ColorMe
    as an increment of -1, and ColorMe answers 2, less than the 4 written: its orders changed since
    the previous read are read at once, not at the next poll, so the 2 are reserved and Shopify
    stops offering them. The poll's cursor and schedule stay where they were."""
    from datetime import timedelta
    world, shirt = shop
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        channel.orders_start_at = utcnow() - timedelta(minutes=5)
        channel.orders_polled_at = channel.orders_cursor_at = polled = utcnow() - timedelta(seconds=30)
        db.session.commit()
    world.colorme.place_order([(str(shirt["colorme"]), 2)])  # ColorMe holds 3 now
    world.smaregi.sell([("1001", 1)])
    run_jobs(app)
    assert world.colorme.stock(shirt["colorme"]) == 2  # 3 - 1: its own sale stays taken off, once
    assert world.shopify.stock(shirt["shopify"]) == 2  # 5 - 1 - 2
    assert world.smaregi.stock_of("1001") == 2 and _product(app, shirt["product"]) == (2, 0)
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        assert as_utc(channel.orders_polled_at) == polled and as_utc(channel.orders_cursor_at) == polled
        assert db.session.scalar(select(Order.state)) == "registered"
    # Nothing lower now: a push that finds ColorMe as written reads no orders.
    requests_before = len([r for r in world.colorme.requests if "/sales" in r["path"]])
    world.smaregi.sell([("1001", 1)])
    run_jobs(app)
    assert world.colorme.stock(shirt["colorme"]) == 1 and world.shopify.stock(shirt["shopify"]) == 1
    assert len([r for r in world.colorme.requests if "/sales" in r["path"]]) == requests_before


def test_with_order_news_reads_off_a_lower_colorme_waits_for_the_poll(app, shop):
    """ORDER_NEWS_READS=0: the same lower ColorMe answer reads no orders; the poll takes the 2 in."""
    from datetime import timedelta
    world, shirt = shop
    app.config["ORDER_NEWS_READS"] = False
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        channel.orders_start_at = utcnow() - timedelta(minutes=5)
        channel.orders_polled_at = channel.orders_cursor_at = utcnow() - timedelta(seconds=30)
        db.session.commit()
    world.colorme.place_order([(str(shirt["colorme"]), 2)])
    world.smaregi.sell([("1001", 1)])
    run_jobs(app)
    assert world.colorme.stock(shirt["colorme"]) == 2 and world.shopify.stock(shirt["shopify"]) == 4
    assert not any("/sales" in r["path"] for r in world.colorme.requests)
    assert "1 new" in _poll(app, world.colorme_id)
    run_jobs(app)
    assert world.shopify.stock(shirt["shopify"]) == 2


def test_the_read_before_a_raise_reads_what_changed_since_the_previous_read_and_moves_no_cursor(app, shop):
    """The read before a raise asks Shopify only for the orders changed since shortly before the
    previous read began (not a poll's whole overlap window), lists them by id and time, reads
    whole only the one it does not hold, and leaves the poll's cursor and schedule alone."""
    from datetime import timedelta

    from stocklink.domain.orders import RECENT_MARGIN
    from stocklink.infra.queues import get_redis
    from stocklink.jobs.orders import READ_MARK
    world, shirt = shop
    assert "0 new" in _poll(app, world.shopify_id)
    previous = utcnow() - timedelta(seconds=40)  # the last read began 40 s ago; the poll before, 2 minutes ago
    with app.app_context():
        channel = db.session.get(Channel, world.shopify_id)
        channel.orders_polled_at = channel.orders_cursor_at = polled = utcnow() - timedelta(minutes=2)
        channel.orders_start_at = utcnow() - timedelta(hours=1)
        # Shopify's figure unknown (as after an edit of one of its orders): a push writes over it.
        db.session.scalar(select(Listing).where(Listing.channel_id == world.shopify_id)).last_confirmed_quantity = None
        db.session.commit()
        get_redis().set(READ_MARK.format(world.shopify_id), previous.isoformat())
    world.shopify.requests.clear()
    world.shopify.place_order([(str(shirt["shopify"]), 2)])  # Shopify holds 3 now
    world.smaregi.refund([("1001", 1)])  # a raise to 6 is planned: Shopify's orders are read first
    run_jobs(app)
    assert world.shopify.stock(shirt["shopify"]) == 4  # 6 less its own sale of 2
    queries = [(r["body"] or {}).get("query", "") for r in world.shopify.requests]
    [listing] = [r["body"] for r in world.shopify.requests
                 if "query StocklinkOrderChanges(" in (r["body"] or {}).get("query", "")]
    moment = (previous - RECENT_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listing["variables"]["query"] == f"updated_at:>='{moment}'"
    # The one order not taken in yet is read whole, by itself; no page of whole orders.
    assert sum("query StocklinkOrder(" in q for q in queries) == 1
    assert not any("query StocklinkOrders(" in q for q in queries)
    with app.app_context():
        channel = db.session.get(Channel, world.shopify_id)
        assert as_utc(channel.orders_polled_at) == polled and as_utc(channel.orders_cursor_at) == polled
        assert db.session.scalar(select(Order.state)) == "registered"


def test_the_read_before_a_raise_leaves_the_same_second_doubt_to_the_next_poll(app, shop):
    """An order taken in within its own second (as a webhook's read nearly always is) may have had
    a second change in that second: the next poll reads it again, the read before a raise does
    not (it would read every webhook order twice on the push's path)."""
    from datetime import timedelta

    from stocklink.infra.queues import get_redis
    from stocklink.jobs.orders import READ_MARK
    world, shirt = shop
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    assert "1 new" in _poll(app, world.shopify_id)  # read within the order's second
    run_jobs(app)
    with app.app_context():
        db.session.scalar(select(Listing).where(Listing.channel_id == world.shopify_id)).last_confirmed_quantity = None
        channel = db.session.get(Channel, world.shopify_id)
        channel.orders_polled_at = utcnow() - timedelta(seconds=30)  # the last read, not fresh any more
        db.session.commit()
        get_redis().set(READ_MARK.format(world.shopify_id), (utcnow() - timedelta(seconds=30)).isoformat())
    world.shopify.requests.clear()
    world.smaregi.refund([("1001", 1)])  # a raise is planned over an unknown figure: orders read first
    run_jobs(app)
    queries = [(r["body"] or {}).get("query", "") for r in world.shopify.requests]
    assert sum("query StocklinkOrderChanges(" in q for q in queries) == 1
    assert not any("query StocklinkOrder(" in q or "query StocklinkOrders(" in q for q in queries)
    assert world.shopify.stock(shirt["shopify"]) == 4
    world.shopify.requests.clear()
    assert "0 new" in _poll(app, world.shopify_id)
    queries = [(r["body"] or {}).get("query", "") for r in world.shopify.requests]
    assert sum("query StocklinkOrder(" in q for q in queries) == 1  # the poll settles the doubt


def test_total_stock_never_rises_above_the_truth_while_an_order_is_registered(app, shop):
    """From the moment the order is reserved (total 3 of 5) until it is registered, released and
    Smaregi's own notification applied, every sample of total stock is at most 3: the reservation
    is never released before the Smaregi read that holds the sale."""
    import threading

    from sqlalchemy import text
    world, shirt = shop
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    samples: list[int] = []
    stop = threading.Event()

    def sample():
        with app.app_context():
            while not stop.is_set():
                with db.engine.connect() as conn:
                    samples.append(conn.execute(text("SELECT smaregi_stock - reserved FROM products WHERE id = :p"),
                                                {"p": shirt["product"]}).scalar())
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run_jobs(app)
    finally:
        stop.set()
        sampler.join()
    assert world.smaregi.stock_of("1001") == 3 and _product(app, shirt["product"]) == (3, 0)
    assert len(samples) > 10 and max(samples) == 3 and samples[-1] == 3


def test_a_channel_refusing_its_token_while_orders_are_polled_stops_at_level_9(app, shop):
    """The ColorMe token revoked: the poll stops the channel (level 9, as a push would) and moves
    no cursor; nothing is reserved."""
    world, shirt = shop
    world.colorme.place_order([(str(shirt["colorme"]), 1)])
    world.colorme.revoke_tokens()
    assert _poll(app, world.colorme_id) == "stopped: auth"
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        error = db.session.scalar(select(ErrorRecord).where(ErrorRecord.channel_id == world.colorme_id))
        assert channel.state == "stopped" and channel.orders_cursor_at is None
        assert (error.level, error.message_key) == (9, "channel_auth")
        assert db.session.scalar(select(Order.id)) is None


def test_nextengine_offering_less_than_the_total_after_an_upload_has_its_recent_orders_read(app, world,
                                                                                           nextengine_world):
    """SPEC §11.6: NextEngine allocated 2 to an order stocklink has not polled yet. When an upload
    is confirmed, NextEngine's free stock (フリー在庫数) is read beside its stock: 5 - 1 - 2 = 2, and
    with the -1 not uploaded yet that is 1, less than stocklink's total of 3. Its orders changed since
    the previous read are read at once, not at the next poll: the 2 are reserved and ColorMe and
    Shopify come down to 1. A NextEngine that offers the total reads no orders."""
    from datetime import timedelta

    from stocklink.jobs.push import push_channel
    nextengine, nextengine_id = nextengine_world
    shirt = _nextengine_shirt(app, world, nextengine, nextengine_id)
    with app.app_context():
        channel = db.session.get(Channel, nextengine_id)
        channel.orders_start_at = utcnow() - timedelta(minutes=5)
        channel.orders_polled_at = channel.orders_cursor_at = polled = utcnow() - timedelta(seconds=30)
        db.session.commit()

    def order_reads() -> int:
        return sum(r["path"].startswith("/api_v1_receiveorder") for r in nextengine.requests)

    world.smaregi.sell([("1001", 1)])  # a POS sale gives NextEngine its cursor, and -1
    run_jobs(app)
    assert nextengine.stock("TS-S") == 4 and order_reads() == 0
    nextengine.place_order([("TS-S", 2)])  # allocated at once: free stock 2
    world.smaregi.sell([("1001", 1)])  # this push settles the -1 upload first, and reads the free stock
    run_jobs(app)
    assert order_reads() > 0
    # 在庫数 and フリー在庫数 in one stock search, not one each.
    searches = [r["body"]["fields"] for r in nextengine.requests if r["path"] == "/api_v1_master_stock/search"]
    assert "stock_goods_id,stock_quantity,stock_free_quantity" in searches
    assert not any(fields.split(",")[1:] == ["stock_free_quantity"] for fields in searches)
    assert world.colorme.stock(shirt["colorme"]) == 1 and world.shopify.stock(shirt["shopify"]) == 1
    assert _product(app, shirt["product"])[1] == 0 and world.smaregi.stock_of("1001") == 1
    with app.app_context():
        channel = db.session.get(Channel, nextengine_id)
        assert as_utc(channel.orders_polled_at) == polled and as_utc(channel.orders_cursor_at) == polled
        assert db.session.scalar(select(Order.state)) == "registered"
        reads = order_reads()
        assert push_channel(nextengine_id) == "pushed 0"  # the sweep's push settles the last upload
    run_jobs(app)
    assert int(nextengine.stock_row("TS-S")["stock_free_quantity"]) == 1 and order_reads() == reads


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_nextengine_order_reaches_smaregi_once_and_nextengine_is_not_sent_it_back(app, world, nextengine_world,
                                                                                    generation):
    """A 受注伝票 polled from NextEngine is reserved, pushed to ColorMe and Shopify, registered once
    as a shipment; NextEngine, the order's own channel, is sent no decrease for it."""
    nextengine, nextengine_id = nextengine_world
    use_generation(app, world.smaregi, generation)
    shirt = _nextengine_shirt(app, world, nextengine, nextengine_id)
    with app.app_context():
        db.session.get(Channel, nextengine_id).orders_start_at = utcnow()
        db.session.commit()
    nextengine.place_order([("TS-S", 2)])
    assert "1 new" in _poll(app, nextengine_id)
    run_jobs(app)
    assert world.smaregi.stock_of("1001") == 3 and len(world.smaregi.shipment_records()) == 1
    assert world.colorme.stock(shirt["colorme"]) == 3 and world.shopify.stock(shirt["shopify"]) == 3
    assert nextengine.stock("TS-S") == 5  # 在庫数 untouched: NextEngine allocated the order itself
    assert _product(app, shirt["product"]) == (3, 0)
    assert "0 new" in _poll(app, nextengine_id)
    run_jobs(app)
    assert len(world.smaregi.shipment_records()) == 1 and nextengine.stock("TS-S") == 5


def test_two_workers_settling_one_order_send_it_once(app, shop):
    """While one worker holds the order's lease, a second one sends nothing and says so; run
    after it, the registration is already settled."""
    from stocklink.infra.queues import get_redis
    from stocklink.jobs.orders import REGISTER_LOCK
    world, shirt = shop
    world.shopify.place_order([(str(shirt["shopify"]), 2)])
    _poll(app, world.shopify_id)
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
        held = get_redis().lock(REGISTER_LOCK.format(order_id), timeout=30)
        assert held.acquire(blocking=False)
        try:
            assert register_order(order_id) == "busy"
            assert world.smaregi.shipment_records() == []
        finally:
            held.release()
        assert "registered" in register_order(order_id)
        assert register_order(order_id) == "nothing to settle"
    assert len(world.smaregi.shipment_records()) == 1


def test_a_shopify_poll_lists_changes_and_reads_whole_only_the_orders_it_does_not_hold(app, shop):
    """Orders already taken in (by their webhooks, or an earlier poll long enough after their
    time) are not read whole again by the poll's overlap window; a few new ones are read one by
    one; many are read as pages from the oldest of them."""
    from datetime import timedelta
    world, shirt = shop
    placed_at = utcnow() - timedelta(minutes=1)
    world.shopify.clock = lambda: placed_at
    with app.app_context():
        db.session.get(Channel, world.shopify_id).orders_start_at = utcnow() - timedelta(hours=1)
        db.session.commit()
    first = [world.shopify.place_order([(str(shirt["shopify"]), 1)]) for _ in range(2)]

    def reads() -> tuple[int, int, int]:
        queries = [(r["body"] or {}).get("query", "") for r in world.shopify.requests]
        world.shopify.requests.clear()
        return tuple(sum(f"query {name}(" in q for q in queries)
                     for name in ("StocklinkOrderChanges", "StocklinkOrder", "StocklinkOrders"))
    world.shopify.requests.clear()
    assert "2 new" in _poll(app, world.shopify_id)
    assert reads() == (1, 2, 0)
    assert "read 0:" in _poll(app, world.shopify_id)  # both held, read a minute after their time
    assert reads() == (1, 0, 0)
    later = [world.shopify.place_order([(str(shirt["shopify"]), 1)]) for _ in range(12)]
    assert f"{len(later)} new" in _poll(app, world.shopify_id)
    changes, one_by_one, pages = reads()
    assert (changes, one_by_one) == (1, 0) and pages == 2  # 12 orders from the oldest new one: 10 + 2
    with app.app_context():
        assert len(db.session.scalars(select(Order)).all()) == len(first) + len(later)


def test_orders_a_poll_brings_together_are_registered_by_one_job_and_one_failure_holds_none_up(app, shop):
    """A poll's three new orders are one registration job, not three; the Smaregi failure of the
    first is recorded with its retry time while the other two are registered, and the sweep sends
    it again once that time has come."""
    from datetime import timedelta

    from stocklink.infra.queues import ORDERS, get_queue
    from stocklink.jobs.orders import sweep_registrations
    world, shirt = shop
    for _ in range(3):
        world.shopify.place_order([(str(shirt["shopify"]), 1)])
    assert "3 new" in _poll(app, world.shopify_id)
    with app.app_context():
        queued = [job.func_name.rsplit(".", 1)[-1] for job in get_queue(ORDERS).jobs]
        assert queued == ["register_orders"]
    world.smaregi.fail_next_registration("500")
    run_jobs(app)
    assert len(world.smaregi.shipment_records()) == 2
    assert sorted(r[2] for r in _registrations(app)) == ["done", "done", "pending"]
    assert _product(app, shirt["product"]) == (3, 1)  # the failed one stays reserved
    with app.app_context():
        failed = db.session.scalar(select(Registration).where(Registration.state == "pending"))
        assert "TemporaryError" in failed.last_error
        assert as_utc(failed.next_attempt_at) > utcnow()
        assert sweep_registrations() == 0  # not before its retry time
        failed.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert sweep_registrations() == 1
    run_jobs(app)
    assert len(world.smaregi.shipment_records()) == 3
    assert [r[2] for r in _registrations(app)] == ["done", "done", "done"]
    assert _product(app, shirt["product"]) == (2, 0)


def test_a_recent_read_within_seconds_of_the_previous_read_runs_once_that_has_passed(app, shop):
    """A channel that keeps offering less than the total (the merchant's own edit) does not have
    its orders read on every push: within RECENT_READ_EVERY of the previous read the job schedules
    one read for when that has passed, and only one."""
    from rq.registry import ScheduledJobRegistry

    from stocklink.infra.queues import ORDERS, get_queue, get_redis
    from stocklink.jobs.orders import READ_MARK, read_recent_orders
    world, _shirt = shop
    with app.app_context():
        get_redis().set(READ_MARK.format(world.shopify_id), utcnow().isoformat())
        world.shopify.requests.clear()
        assert read_recent_orders(world.shopify_id).startswith("read again in ")
        assert read_recent_orders(world.shopify_id) == "a later read is already scheduled"
        assert len(ScheduledJobRegistry(queue=get_queue(ORDERS))) == 1
        assert not world.shopify.requests  # nothing read yet
        get_redis().delete(READ_MARK.format(world.shopify_id))
        db.session.get(Channel, world.shopify_id).orders_polled_at = None
        db.session.commit()
        assert read_recent_orders(world.shopify_id).startswith("read ")
        assert world.shopify.requests
