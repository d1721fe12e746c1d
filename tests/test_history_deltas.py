"""NextEngine's deltas come from Smaregi's 在庫変動履歴 entries, each once (issue: repeated genuine
movements): byte-identical notifications of two real movements, a dropped notification caught by
the backfill, a late one not applied twice, a drain run twice, both API generations, end to end
over HTTP with the sandboxes."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.jobs.backfill import backfill_stock
from stocklink.jobs.inbox import process_inbox
from stocklink.models import Listing, Product, SmaregiInbox, StockHistoryCursor
from stocklink.sandbox.smaregi import now_jst
from stocklink.services.smaregi_stock import smaregi_client
from stocklink.services.stock_history import apply_history, read_history
from tests.e2e_helpers import CUSTOMER_CODE, inbox_rows, stock_of, use_generation

pytest_plugins = ["tests.fixtures_platforms"]

A, B = "8400001", "8400002"
WEBHOOK = f"/webhooks/smaregi/{CUSTOMER_CODE}"


@pytest.fixture
def nextengine(nextengine_world):
    """A NextEngine channel (uploads processed at once) beside the world's ColorMe and Shopify."""
    return nextengine_world


def link_nextengine(app, ne, ne_id, smaregi_id: str, code: str, stock: int) -> None:
    """NextEngine holds ``stock`` of ``code``, linked to the Smaregi product."""
    ne.add_goods(code, stock)
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == smaregi_id))
        db.session.add(Listing(channel_id=ne_id, product_id=product_id, identifier=code,
                               last_confirmed_quantity=stock))
        db.session.commit()


def pending(app, ne_id) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(select(Listing.identifier, Listing.pending_delta)
                                       .where(Listing.channel_id == ne_id)).all())


def cursor_of(app, smaregi_id: str) -> int | None:
    with app.app_context():
        return db.session.scalar(select(StockHistoryCursor.last_change_id).join(
            Product, Product.id == StockHistoryCursor.product_id).where(Product.smaregi_product_id == smaregi_id))


def uploaded(ne) -> list[str]:
    """Every CSV line NextEngine received, in order (header left out)."""
    return [line for upload in ne.uploads for line in upload["csv"].splitlines()[1:]]


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_sale_return_sale_in_one_second_reaches_nextengine_exactly(app, world, nextengine, jobs_runner,
                                                                   generation):
    """Sale, return, sale of one product within one second: the legacy notifications of the two
    sales are byte-identical and stored once, yet NextEngine receives all three movements."""
    ne, ne_id = nextengine
    use_generation(app, world.smaregi, generation)
    world.add(A, "MUG01", "マグカップ", 10)
    link_nextengine(app, ne, ne_id, A, "MUG01", 10)
    moment = now_jst()
    world.smaregi.clock = lambda: moment
    world.smaregi.sell([(A, 1)])
    world.smaregi.refund([(A, 1)])
    world.smaregi.sell([(A, 1)])
    first, _return, second = world.smaregi.sends
    if generation == "legacy":
        assert first.body == second.body  # the notifications cannot tell the two sales apart
    assert len(inbox_rows(app)) == (2 if generation == "legacy" else 3)
    jobs_runner()
    assert ne.stock("MUG01") == 9 == stock_of(app, A) == world.smaregi.stock_of(A)
    assert sum(int(line.split(",")[1]) for line in uploaded(ne)) == -1
    assert pending(app, ne_id) == {"MUG01": 0}
    assert cursor_of(app, A) == world.smaregi.history[-1].id


def test_a_repeated_legacy_body_after_its_row_was_applied_is_forwarded_at_once(app, world, nextengine,
                                                                                jobs_runner):
    """The second sale arrives after the first sale and the return were drained: its body equals
    the first sale's, so it is no new row, but the row is drained again and the entry forwarded."""
    ne, ne_id = nextengine
    world.add(A, "MUG01", "マグカップ", 10)
    link_nextengine(app, ne, ne_id, A, "MUG01", 10)
    moment = now_jst()
    world.smaregi.clock = lambda: moment
    world.smaregi.sell([(A, 1)])
    world.smaregi.refund([(A, 1)])
    jobs_runner()
    assert ne.stock("MUG01") == 10
    world.smaregi.sell([(A, 1)])
    assert world.smaregi.sends[0].body == world.smaregi.sends[2].body
    assert [status for _id, _g, status in inbox_rows(app)] == ["received", "done"]
    jobs_runner()
    assert ne.stock("MUG01") == 9 == world.smaregi.stock_of(A)
    assert uploaded(ne) == ["MUG01,-1"]  # the first run's sale and return cancelled out: no line
    assert [status for _id, _g, status in inbox_rows(app)] == ["done", "done"]


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_dropped_notification_is_forwarded_by_the_backfill_and_its_late_copy_adds_nothing(
        app, client, world, nextengine, jobs_runner, generation):
    """A sale whose notification never arrived reaches NextEngine through the backfill (history after
    the cursor); when the notification turns up later, nothing is forwarded twice."""
    ne, ne_id = nextengine
    use_generation(app, world.smaregi, generation)
    world.add(A, "MUG01", "マグカップ", 10)
    link_nextengine(app, ne, ne_id, A, "MUG01", 10)
    world.smaregi.sell([(A, 1)])  # notified: the product gets its cursor
    jobs_runner()
    assert ne.stock("MUG01") == 9
    url = world.smaregi.notify_url
    world.smaregi.configure(notify_url="http://127.0.0.1:9/unreachable")
    world.smaregi.sell([(A, 2)])
    world.smaregi.refund([(A, 1)])
    assert all(not send.ok for send in world.smaregi.sends[1:])
    with app.app_context():
        assert backfill_stock() == "1 product(s) corrected, 1 delta(s) from the stock history"
    jobs_runner()
    assert ne.stock("MUG01") == 8 == stock_of(app, A) == world.smaregi.stock_of(A)
    assert world.channel_stock(A) == (8, 8)

    world.smaregi.configure(notify_url=url)
    for late in world.smaregi.sends[1:]:  # Smaregi's copies arrive after all
        assert client.post(WEBHOOK, data=late.body, headers=late.headers).status_code == 200
    jobs_runner()
    with app.app_context():
        assert backfill_stock() == "0 product(s) corrected"
    jobs_runner()
    assert ne.stock("MUG01") == 8
    assert uploaded(ne) == ["MUG01,-1", "MUG01,-1"]


def test_draining_a_row_again_forwards_nothing_twice(app, world, nextengine, jobs_runner):
    """A row applied once and drained again (a claim taken back from a drain that did finish) finds
    the cursor past its entries: NextEngine's count moves once."""
    ne, ne_id = nextengine
    world.add(A, "MUG01", "マグカップ", 10)
    link_nextengine(app, ne, ne_id, A, "MUG01", 10)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    with app.app_context():
        db.session.execute(update(SmaregiInbox).values(status="received"))
        db.session.commit()
        assert process_inbox() == "done 1, 0 channel(s) to push"
    jobs_runner()
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"]
    assert uploaded(ne) == ["MUG01,-3"] and ne.stock("MUG01") == 7


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_two_reads_from_one_cursor_apply_each_entry_once(app, world, nextengine, generation):
    """Two drains (or a drain and the backfill) that read the history from the same cursor: the
    second to commit finds the cursor moved under its lock and adds nothing."""
    ne, ne_id = nextengine
    use_generation(app, world.smaregi, generation)
    world.add(A, "MUG01", "マグカップ", 10)
    link_nextengine(app, ne, ne_id, A, "MUG01", 10)
    world.smaregi.configure(notify_url=None)
    start = world.smaregi.history[-1].id
    world.smaregi.sell([(A, 2)])
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == A))
        db.session.add(StockHistoryCursor(product_id=product_id, store_id="1", last_change_id=start))
        db.session.commit()
        client = smaregi_client()
        one, other = read_history(client, {A: product_id}), read_history(client, {A: product_id})
        assert apply_history(one) == {product_id: -2}
        db.session.commit()
        assert apply_history(other) == {}
        db.session.commit()
    assert cursor_of(app, A) == world.smaregi.history[-1].id


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_product_linked_later_does_not_replay_its_past(app, world, nextengine, jobs_runner, generation):
    """Movements from before the NextEngine link (its initial stock, earlier sales) are not sent:
    the first cursor is placed at the movement its first notification names."""
    ne, ne_id = nextengine
    use_generation(app, world.smaregi, generation)
    world.add(A, "MUG01", "マグカップ", 10)
    world.add(B, "CUP01", "カップ", 5)
    world.smaregi.sell([(A, 2), (B, 1)])
    jobs_runner()
    assert cursor_of(app, A) is None  # no delta channel listing: no history read
    link_nextengine(app, ne, ne_id, A, "MUG01", 8)
    world.smaregi.sell([(A, 1), (B, 1)])
    jobs_runner()
    assert uploaded(ne) == ["MUG01,-1"]
    assert ne.stock("MUG01") == 7 == world.smaregi.stock_of(A)
    assert cursor_of(app, B) is None
