"""Smaregi → stocklink → channels over real HTTP: notify, fetch, overwrite, push (SPEC §3, §4, §11)."""
from __future__ import annotations

import pytest
from rq.job import Job
from sqlalchemy import func, select, update

from stocklink import settings as stocklink_settings
from stocklink.extensions import db
from stocklink.jobs.inbox import process_inbox
from stocklink.jobs.push import push_channel
from stocklink.models import (
    Channel,
    ConfirmationItem,
    ErrorRecord,
    Listing,
    OutboxMessage,
    Product,
    SmaregiInbox,
    StockLedger,
)
from stocklink.platforms.base import AuthError
from stocklink.queues import WEBHOOKS, get_queue, get_redis
from stocklink.stock import mark_listings_dirty
from stocklink.sync import smaregi_client
from tests.e2e_helpers import (
    colorme_writes,
    inbox_rows,
    ledger_count,
    shopify_writes,
    stock_of,
    use_generation,
)

pytest_plugins = ["tests.fixtures_platforms"]

A, B, C, U = "8200001", "8200002", "8200003", "8200055"


def listings_of(app, smaregi_id: str) -> list[tuple]:
    """(channel kind, last confirmed quantity, dirty) of a product's listings, by channel."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Channel.kind, Listing.last_confirmed_quantity, Listing.dirty)
            .join(Listing, Listing.channel_id == Channel.id).join(Product, Product.id == Listing.product_id)
            .where(Product.smaregi_product_id == smaregi_id).order_by(Channel.id))]


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


def test_notifications_processed_out_of_order_end_at_smaregis_stock(app, world, jobs_runner, monkeypatch):
    """The later notification processed first, then the earlier one: stocklink still holds Smaregi's stock."""
    monkeypatch.setattr("stocklink.jobs.inbox.BATCH", 1)  # one row per job, so the order is ours
    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 2)])
    world.smaregi.sell([(A, 3)])
    (first, _, _), (second, _, _) = inbox_rows(app)
    assert process_inbox(second).startswith("done")
    assert stock_of(app, A) == 5
    assert process_inbox(first).startswith("done")
    assert stock_of(app, A) == 5 == world.smaregi.stock_of(A)
    assert ledger_count(app, A) == 1
    jobs_runner()  # the queued jobs find both rows done
    assert [status for _id, _g, status in inbox_rows(app)] == ["done", "done"]
    assert world.channel_stock(A) == (5, 5)


def test_processing_one_inbox_row_twice_changes_nothing(app, world, jobs_runner):
    """A second run of process_inbox on a done row asks Smaregi nothing and writes nothing."""
    world.add(A, "PEN01", "ボールペン", 6)
    world.smaregi.sell([(A, 1)])
    [(inbox_id, _g, _s)] = inbox_rows(app)
    jobs_runner()
    calls, ledger = len(world.smaregi.api_log), ledger_count(app)
    assert process_inbox(inbox_id) == "already done"
    assert len(world.smaregi.api_log) == calls and ledger_count(app) == ledger == 1
    assert stock_of(app, A) == 5 and world.channel_stock(A) == (5, 5)


def test_running_a_push_twice_gives_the_same_channel_state(app, world, jobs_runner):
    """A second push (even with the listings marked dirty again) sends nothing and leaves the same stock."""
    item = world.add(A, "CDL01", "キャンドル", 7)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    before = (world.channel_stock(A), len(world.colorme.requests), len(world.shopify.requests))
    assert before[0] == (4, 4)
    assert push_channel(world.colorme_id) == "pushed 0"
    with app.app_context():
        mark_listings_dirty({item["product"]})
        db.session.commit()
    assert push_channel(world.colorme_id) == "pushed 0"
    assert push_channel(world.shopify_id) == "pushed 0"
    assert (world.channel_stock(A), len(world.colorme.requests), len(world.shopify.requests)) == before
    assert listings_of(app, A) == [("colorme", 4, False), ("shopify", 4, False)]


def test_min_max_and_channel_range_shape_what_the_channel_receives(app, world, jobs_runner):
    """Min stock → 0, max stock caps, negative → 0 and a channel range caps the value written (SPEC §3)."""
    low = world.add(A, "LOW01", "最小在庫つき", 5, min_stock=3)
    high = world.add(B, "MAX01", "最大在庫つき", 4, max_stock=5)
    neg = world.add(C, "NEG01", "マイナス在庫", 1)
    big = world.add(U, "BIG01", "大量在庫", 150)
    with app.app_context():
        db.session.execute(update(Channel).where(Channel.id == world.colorme_id).values(range_max=100))
        db.session.commit()
    world.smaregi.sell([(A, 2), (C, 3), (U, 1)])
    world.smaregi.correct(B, 20)
    jobs_runner()
    assert [stock_of(app, sid) for sid in (A, B, C, U)] == [3, 20, -2, 149]
    assert world.channel_stock(A) == (0, 0)      # 3 <= min 3: sold out online
    assert world.channel_stock(B) == (5, 5)      # 20 >= max 5: capped
    assert world.channel_stock(C) == (0, 0)      # -2: clamped to 0
    assert world.channel_stock(U) == (100, 149)  # ColorMe's range ends at 100
    assert [q["quantity"] for q in shopify_writes(world.shopify, neg["shopify"])] == [0]
    assert colorme_writes(world.colorme, low["colorme"]) == [{"product": {"stocks": {"increment": -5}}}]
    assert colorme_writes(world.colorme, high["colorme"]) == [{"product": {"stocks": {"increment": 1}}}]
    assert colorme_writes(world.colorme, big["colorme"]) == [{"product": {"stocks": {"increment": -50}}}]
    assert listings_of(app, U) == [("colorme", 100, False), ("shopify", 149, False)]


def test_a_colorme_sale_is_not_undone_by_the_push(app, world, jobs_runner):
    """ColorMe sold one on its own: the relative write takes only the POS sale off (SPEC §11.6)."""
    item = world.add(A, "TWL01", "ハンドタオル", 10)
    world.colorme.set_stock(item["colorme"], 9)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    assert world.colorme.stock(item["colorme"]) == 7
    assert colorme_writes(world.colorme, item["colorme"]) == [{"product": {"stocks": {"increment": -2}}}]


def test_a_shopify_sale_in_between_makes_the_compare_and_set_retry(app, world, jobs_runner):
    """Shopify sold meanwhile: the stale compare-and-set is retried against the fresh quantity and lands."""
    item = world.add(A, "BTL01", "ボトル", 10)
    world.shopify.set_stock(item["shopify"], 9)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    writes = shopify_writes(world.shopify, item["shopify"])
    assert [(w["quantity"], w["changeFromQuantity"]) for w in writes] == [(8, 10), (8, 9)]
    assert world.shopify.stock(item["shopify"]) == 8
    assert listings_of(app, A)[1] == ("shopify", 8, False)
    with app.app_context():
        assert db.session.scalar(select(func.count(ErrorRecord.id))) == 0


def test_a_smaregi_outage_is_retried_and_clears_once_the_notification_is_applied(app, world, jobs_runner):
    """Smaregi answering 500 while stocklink reads the stock: the row fails for RQ to retry, then lands."""
    world.add(A, "TNG01", "手ぬぐい", 6)
    world.smaregi.fail_next("500", count=1)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    [(inbox_id, _g, status)] = inbox_rows(app)
    assert status == "failed" and stock_of(app, A) == 6
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord)).all()
        assert (error.source, error.level, error.resolved_at) == ("smaregi", 8, None)
        job = Job.fetch(f"inbox-{inbox_id}", connection=get_redis())
        assert job.get_status() == "scheduled"
        get_queue(WEBHOOKS).scheduled_job_registry.requeue(job)
    jobs_runner()
    assert inbox_rows(app) == [(inbox_id, "legacy", "done")]
    assert stock_of(app, A) == 5 and world.channel_stock(A) == (5, 5)
    with app.app_context():
        assert db.session.scalar(select(ErrorRecord.resolved_at)) is not None  # shown until it clears


def test_smaregi_auth_failure_is_mailed_once_however_often_it_retries(app, world, jobs_runner, mailbox):
    """A Smaregi credential error records a level 9 error and mails it once, not on every retry."""
    world.add("8400001", "E001", "商品E", 10)
    with app.app_context():
        stocklink_settings.save({"smaregi.access_token": "wrong-token"})
    world.smaregi.sell([("8400001", 1)])
    for _ in range(3):
        with app.app_context():
            inbox_id = db.session.scalar(select(SmaregiInbox.id))
        with pytest.raises(AuthError):
            process_inbox(inbox_id)
    jobs_runner(queues=("mail",))
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord).where(ErrorRecord.source == "smaregi")).all()
        assert (error.level, error.occurrences) == (9, 3)
    with mailbox.lock:
        subjects = [m["subject"] for m in mailbox.messages]
    assert subjects.count("【stocklink】スマレジからの在庫取得に失敗しました") == 1


def test_one_job_applies_the_waiting_notifications_with_one_stock_read(app, world, jobs_runner):
    """A backlog is applied in a batch: one Smaregi stock read, every row done, each once in the ledger."""
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    for _ in range(4):
        world.smaregi.sell([(A, 1), (C, 2)])
    rows = inbox_rows(app)
    reads_before = sum(1 for r in world.smaregi.api_log if "stock_ref" in str(r))
    assert process_inbox(rows[0][0]) == "done 4, 2 channel(s) to push"
    reads = sum(1 for r in world.smaregi.api_log if "stock_ref" in str(r)) - reads_before
    assert reads == 2  # one query per product id (few ids), once for the whole batch
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"] * 4
    assert (stock_of(app, A), stock_of(app, C)) == (16, 12)
    assert ledger_count(app, A) == 1 and ledger_count(app, C) == 1
    jobs_runner()  # the other rows' own jobs find them done; the pushes run
    assert world.channel_stock(A) == (16, 16) and world.channel_stock(C) == (12, 12)


def test_a_row_held_by_another_batch_is_left_to_it(app, world, jobs_runner):
    """While another job's batch holds a row, the row's own job does not apply it a second time."""
    from stocklink.jobs.inbox import _claim_key

    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 1)])
    [(row_id, _g, _s)] = inbox_rows(app)
    with app.app_context():
        db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id == row_id).values(status="processing"))
        db.session.commit()
        get_redis().set(_claim_key(row_id), 999, ex=60)
    assert process_inbox(row_id) == "already done"
    assert stock_of(app, A) == 10 and ledger_count(app, A) == 0
    with app.app_context():
        get_redis().delete(_claim_key(row_id))  # the holder crashed; its mark expired
    assert process_inbox(row_id).startswith("done")
    assert stock_of(app, A) == 9
