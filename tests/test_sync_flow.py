"""Smaregi → stocklink → channels over real HTTP: notify, fetch, overwrite, push (SPEC §3, §4, §11)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from stocklink.infra.extensions import db
from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
from stocklink.jobs.inbox import (
    ALERT_AFTER,
    BACKOFF,
    BACKOFF_KEY,
    FAILURES_KEY,
    WAKE_KEY,
    claim_batch,
    process_inbox,
    retry_now,
    sweep_inbox,
)
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
from stocklink.models._types import utcnow
from stocklink.services import merchant_settings as stocklink_settings
from stocklink.services.smaregi_stock import smaregi_client
from stocklink.services.stock_ledger import mark_listings_dirty
from tests.e2e_helpers import (
    ERROR_MAIL,
    TOKEN,
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


def test_the_last_sync_stamp_moves_at_most_every_few_seconds(app, world, jobs_runner):
    """最終同期 is stamped by a push when unset or older than SYNC_STAMP_EVERY, not by every push
    (a write transaction per push only for the stamp competed with the webhook for SQLite's lock)."""
    from stocklink.jobs.push import SYNC_STAMP_EVERY

    world.add(A, "TS01-WH-S", "Tシャツ 白 S", 10)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        first = channel.last_sync_at
        assert first is not None
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        assert channel.last_sync_at == first and world.channel_stock(A) == (8, 8)
        channel.last_sync_at = utcnow() - SYNC_STAMP_EVERY
        db.session.commit()
        old = db.session.get(Channel, world.colorme_id).last_sync_at
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        assert db.session.get(Channel, world.colorme_id).last_sync_at > old


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


def _hold(app, *row_ids, status="processing"):
    """Put inbox rows in ``status`` (``processing``: as if another drain held them)."""
    with app.app_context():
        db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_(row_ids)).values(status=status))
        db.session.commit()


def test_notifications_processed_out_of_order_end_at_smaregis_stock(app, world, jobs_runner):
    """The later notification processed first, then the earlier one: stocklink still holds Smaregi's stock."""
    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 2)])
    world.smaregi.sell([(A, 3)])
    (first, _, _), (second, _, _) = inbox_rows(app)
    _hold(app, first)  # another drain holds the first: this one takes only the second
    assert process_inbox() == "done 1, 2 channel(s) to push"
    assert stock_of(app, A) == 5
    _hold(app, first, status="received")
    assert process_inbox().startswith("done 1")
    assert stock_of(app, A) == 5 == world.smaregi.stock_of(A)
    assert ledger_count(app, A) == 1
    jobs_runner()  # the queued drain finds nothing left; the pushes run
    assert [status for _id, _g, status in inbox_rows(app)] == ["done", "done"]
    assert world.channel_stock(A) == (5, 5)


def test_draining_again_changes_nothing(app, world, jobs_runner):
    """A second drain after the row is done, or while another drain holds it, asks Smaregi nothing
    and writes nothing."""
    world.add(A, "PEN01", "ボールペン", 6)
    world.smaregi.sell([(A, 1)])
    [(inbox_id, _g, _s)] = inbox_rows(app)
    jobs_runner()
    calls, ledger = len(world.smaregi.api_log), ledger_count(app)
    assert process_inbox() == "done 0, 0 channel(s) to push"
    world.smaregi.sell([(A, 1)])
    [_, (second, _g, _s)] = inbox_rows(app)
    _hold(app, second)
    calls = len(world.smaregi.api_log)
    assert process_inbox() == "done 0, 0 channel(s) to push"
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


def _due_now(app):
    """Let the Smaregi backoff end and the failed rows' retry time come."""
    with app.app_context():
        db.session.execute(update(SmaregiInbox).where(SmaregiInbox.status == "failed")
                           .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        get_redis().delete(BACKOFF_KEY)


def test_a_smaregi_outage_backs_off_and_clears_once_the_notification_is_applied(app, world, jobs_runner):
    """Smaregi answering 500 while stocklink reads the stock: the row waits for a retry, Smaregi is
    left alone meanwhile, then the row lands and the error clears."""
    world.add(A, "TNG01", "手ぬぐい", 6)
    world.smaregi.fail_next("500", count=1)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    [(inbox_id, _g, status)] = inbox_rows(app)
    assert status == "failed" and stock_of(app, A) == 6
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord)).all()
        assert (error.source, error.level, error.resolved_at) == ("smaregi", 8, None)
        row = db.session.get(SmaregiInbox, inbox_id)
        assert row.attempts == 1 and row.next_attempt_at is not None and "500" in row.error
        assert 0 < get_redis().pttl(BACKOFF_KEY) <= BACKOFF[0] * 1000
        [scheduled] = get_queue(WEBHOOKS).scheduled_job_registry.get_job_ids()
    world.smaregi.sell([(A, 1)])  # a new notification during the backoff waits too
    calls = len(world.smaregi.api_log)
    assert process_inbox() == "smaregi backing off"
    assert len(world.smaregi.api_log) == calls  # Smaregi is not asked during the backoff
    assert [s for _i, _g, s in inbox_rows(app)] == ["failed", "received"]

    _due_now(app)
    with app.app_context():
        get_queue(WEBHOOKS).scheduled_job_registry.requeue(scheduled)
    jobs_runner()
    assert [s for _i, _g, s in inbox_rows(app)] == ["done", "done"]
    assert stock_of(app, A) == 4 and world.channel_stock(A) == (4, 4)
    with app.app_context():
        assert db.session.scalar(select(ErrorRecord.resolved_at)) is not None  # shown until it clears
        assert get_redis().get(FAILURES_KEY) is None


def test_a_repeated_smaregi_outage_is_mailed_once(app, world, jobs_runner, mailbox):
    """Level 8 is retried quietly; after ALERT_AFTER failures in a row it is mailed, once."""
    world.add(A, "TNG01", "手ぬぐい", 6)
    world.smaregi.fail_next("500", count=ALERT_AFTER + 2)
    world.smaregi.sell([(A, 1)])
    delays = []
    for _ in range(ALERT_AFTER + 2):
        _due_now(app)
        process_inbox()
        with app.app_context():
            delays.append(round(get_redis().pttl(BACKOFF_KEY) / 1000))
    assert delays[:3] == list(BACKOFF[:3]) and delays[-1] == BACKOFF[-1]
    jobs_runner(queues=("mail",))
    with mailbox.lock:
        subjects = [m["subject"] for m in mailbox.messages]
    assert subjects == ["【stocklink】スマレジからの在庫取得に失敗しました"]
    _due_now(app)
    process_inbox()
    assert [s for _i, _g, s in inbox_rows(app)] == ["done"] and stock_of(app, A) == 5


def test_smaregi_auth_failure_is_mailed_once_and_new_credentials_retry_at_once(app, world, jobs_runner,
                                                                                 mailbox):
    """A Smaregi credential error records a level 9 error and mails it once, not on every retry;
    saving new credentials retries the waiting notifications without waiting for the backoff."""
    world.add("8400001", "E001", "商品E", 10)
    with app.app_context():
        stocklink_settings.save({"smaregi.access_token": "wrong-token"})
    world.smaregi.sell([("8400001", 1)])
    for _ in range(3):
        _due_now(app)
        assert process_inbox() == "done 0, 0 channel(s) to push"
    jobs_runner(queues=("mail",))
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord).where(ErrorRecord.source == "smaregi")).all()
        assert (error.level, error.occurrences) == (9, 3)
        assert get_redis().pttl(BACKOFF_KEY) > 0
    with mailbox.lock:
        subjects = [m["subject"] for m in mailbox.messages]
    assert subjects.count("【stocklink】スマレジからの在庫取得に失敗しました") == 1
    assert [s for _i, _g, s in inbox_rows(app)] == ["failed"]

    with app.app_context():
        stocklink_settings.save({"smaregi.access_token": TOKEN})
        retry_now()
    jobs_runner()
    assert [s for _i, _g, s in inbox_rows(app)] == ["done"]
    assert stock_of(app, "8400001") == 9


def test_one_drain_applies_the_waiting_notifications_with_one_stock_read(app, world, jobs_runner):
    """A backlog is applied in a batch: one Smaregi stock read, every row done, one ledger row per
    product naming the notifications behind it."""
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    for _ in range(4):
        world.smaregi.sell([(A, 1), (C, 2)])
    rows = inbox_rows(app)
    reads_before = sum(1 for r in world.smaregi.api_log if "stock_ref" in str(r))
    assert process_inbox() == "done 4, 2 channel(s) to push"
    reads = sum(1 for r in world.smaregi.api_log if "stock_ref" in str(r)) - reads_before
    assert reads == 2  # one query per product id (few ids), once for the whole batch
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"] * 4
    assert (stock_of(app, A), stock_of(app, C)) == (16, 12)
    assert ledger_count(app, A) == 1 and ledger_count(app, C) == 1
    with app.app_context():
        sources = set(db.session.scalars(select(StockLedger.source_event)))
    assert sources == {"inbox:" + ",".join(str(r[0]) for r in rows)}
    jobs_runner()  # the queued drain finds nothing left; the pushes run
    assert world.channel_stock(A) == (16, 16) and world.channel_stock(C) == (12, 12)


def test_claims_never_overlap_and_a_vanished_drain_is_swept(app, world, jobs_runner):
    """Two claims take different rows; rows held by a drain that stopped are taken back by the sweeper."""
    world.add(A, "MUG01", "マグカップ", 10)
    for _ in range(5):
        world.smaregi.sell([(A, 1)])
    ids = [r[0] for r in inbox_rows(app)]
    with app.app_context():
        first, second = claim_batch(3), claim_batch(3)
        assert first == ids[:3] and second == ids[3:] and claim_batch(3) == []
        assert sweep_inbox() == 0  # held, and held only a moment ago
        db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_(first))
                           .values(claimed_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
        get_redis().delete(WAKE_KEY)
        get_queue(WEBHOOKS).empty()
        assert sweep_inbox() == 0  # taken back, but fresh: a drain is woken by new rows, not yet swept
        assert [r[2] for r in inbox_rows(app)] == ["received"] * 3 + ["processing"] * 2
    assert process_inbox() == "done 3, 2 channel(s) to push"
    assert stock_of(app, A) == 5 == world.smaregi.stock_of(A)


def test_a_row_that_cannot_be_applied_is_set_aside_and_the_rest_land(app, world, jobs_runner):
    """One stored row that breaks the batch (here a payload that no longer parses) does not hold up
    the others: they are applied, it is retried later and shown."""
    world.add(A, "MUG01", "マグカップ", 10)
    for _ in range(3):
        world.smaregi.sell([(A, 1)])
    ids = [r[0] for r in inbox_rows(app)]
    with app.app_context():
        row = db.session.get(SmaregiInbox, ids[1])
        row.payload = {"params": "not the stored shape"}
        db.session.commit()
    jobs_runner()
    assert [r[2] for r in inbox_rows(app)] == ["done", "failed", "done"]
    assert stock_of(app, A) == 7 and world.channel_stock(A) == (7, 7)
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord)).all()
        assert error.level == 8 and f"#{ids[1]}" in error.message


def test_a_batch_forwards_each_products_summed_deltas_to_nextengine_once(app, world, nextengine_world,
                                                                         jobs_runner, caplog):
    """Several sales of two products drained together: NextEngine gets one CSV row per product
    carrying the sum of its movements, and ends at Smaregi's stock (seed 001 delta rules)."""
    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    with app.app_context():
        for sid, code in ((A, "MUG01"), (C, "CUP01")):
            ne.add_goods(code, 20)
            product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == sid))
            db.session.add(Listing(channel_id=ne_id, product_id=product_id, identifier=code,
                                   last_confirmed_quantity=20))
        db.session.commit()
    for _ in range(3):
        world.smaregi.sell([(A, 1), (C, 2)])
    assert process_inbox() == "done 3, 3 channel(s) to push"
    assert "one by one" not in caplog.text  # applied as one batch, not row by row after a failure
    with app.app_context():
        deltas = dict(db.session.execute(select(Listing.identifier, Listing.pending_delta)
                                         .where(Listing.channel_id == ne_id)).all())
    assert deltas == {"MUG01": -3, "CUP01": -6}
    jobs_runner()
    uploads = [r for r in ne.requests if r["path"] == "/api_v1_master_goods/upload"]
    assert len(uploads) == 1
    assert (ne.stock("MUG01"), ne.stock("CUP01")) == (17, 14) == (stock_of(app, A), stock_of(app, C))


def _ne_listings(app, world, ne, ne_id, goods: dict[str, tuple[str, int]]) -> None:
    """Link Smaregi products to NextEngine codes (goods: smaregi id → (code, stock)); a code with
    stock None is linked in stocklink but unknown to NextEngine."""
    with app.app_context():
        for sid, (code, stock) in goods.items():
            if stock is not None:
                ne.add_goods(code, stock)
            product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == sid))
            db.session.add(Listing(channel_id=ne_id, product_id=product_id, identifier=code,
                                   last_confirmed_quantity=stock))
        db.session.commit()


def _mails(mailbox) -> list[dict]:
    """Received messages as subject, body text and attachments {filename: text}."""
    out = []
    with mailbox.lock:
        for m in mailbox.messages:
            body, files = "", {}
            for part in m["message"].walk():
                if part.is_multipart():
                    continue
                text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
                if part.get_filename():
                    files[part.get_filename()] = text
                else:
                    body += text
            out.append({"subject": m["subject"], "to": m["to"], "body": body, "files": files})
    return out


def test_each_nextengine_run_mails_its_report_with_the_csv_and_then_the_previous_result(
        app, client, logged_in, world, nextengine_world, jobs_runner, mailbox):
    """Seed 001: every run mails a report — the upload (成功 / 失敗 in the subject, the CSV
    attached), the previous upload as NextEngine processed it, the order import — over SMTP.
    A row NextEngine rejected (商品コード not registered there) is named with its line."""
    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    _ne_listings(app, world, ne, ne_id, {A: ("MUG01", 20), C: ("CUP01", None)})
    world.smaregi.sell([(A, 1), (C, 2)])
    jobs_runner()
    [first] = [m for m in _mails(mailbox) if "ネクストエンジン" in m["subject"]]
    assert first["subject"] == "【stocklink】ネクストエンジン アップロード:成功"
    assert first["to"] == [ERROR_MAIL]  # no report address set: the error address
    [(filename, csv_text)] = first["files"].items()
    upload = next(u for u in ne.uploads)
    assert filename == f"nextengine_{upload['que_id']}.csv" and f"キューID {upload['que_id']}" in first["body"]
    assert csv_text.splitlines() == ["syohin_code,zaiko_su", "MUG01,-1", "CUP01,-2"] == upload["csv"].splitlines()
    assert "確認待ちのアップロードはありません。" in first["body"] and "■ 受注取込" in first["body"]
    with app.app_context():  # the outbox keeps it: listed as sent, shown with its CSV
        message_id = db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "report"))
    listing_page = client.get("/outbox/").get_data(as_text=True)
    assert first["subject"] in listing_page and "送信済み" in listing_page and "連携処理ごとのレポート" in listing_page
    shown = client.get(f"/outbox/{message_id}").get_data(as_text=True)
    assert "送信済み" in shown and f"添付ファイル: {filename}" in shown and "CUP01,-2" in shown

    with app.app_context():  # the next run (the minute sweep) asks NextEngine how the upload went
        push_channel(ne_id)
    jobs_runner(queues=("mail",))
    [second] = [m for m in _mails(mailbox) if "ネクストエンジン" in m["subject"]][1:]
    assert second["subject"] == "【stocklink】ネクストエンジン 前回の処理結果:失敗"
    assert second["files"] == {} and "今回アップロードした在庫変動はありません。" in second["body"]
    assert f"キューID {upload['que_id']}: 失敗" in second["body"]
    assert "3行目" in second["body"] and "CUP01" in second["body"]
    assert ne.stock("MUG01") == 19
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord).where(ErrorRecord.kind == "upload_rejected")).all()
        assert error.code == upload["que_id"] and error.resolved_at is None


def test_a_report_that_cannot_be_written_never_uploads_the_counts_twice(app, world, nextengine_world,
                                                                       jobs_runner, monkeypatch, caplog):
    """The upload's bookkeeping and its report share one commit; a report that fails to render
    is logged and the bookkeeping still lands, so the next run does not upload the same counts."""
    from stocklink.jobs import report

    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    _ne_listings(app, world, ne, ne_id, {A: ("MUG01", 20)})

    def broken(*_args, **_kwargs):
        raise RuntimeError("template error")

    monkeypatch.setattr(report, "_report", broken)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    with app.app_context():
        push_channel(ne_id)
        push_channel(ne_id)
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == ne_id)).one()
        assert (listing.pending_delta, listing.dirty) == (0, False)
    assert [u["csv"].splitlines()[1:] for u in ne.uploads] == [["MUG01,-3"]]
    assert ne.stock("MUG01") == 17
    assert "could not be queued" in caplog.text


def test_a_push_job_vanishing_while_asked_about_is_queued_again(app, world, monkeypatch):
    """RQ deletes a finished push (result_ttl=0) between our fetch and its status: that is no
    push, not a crash of the drain that asked (found by bench/propagation.py on PostgreSQL)."""
    from rq.exceptions import InvalidJobOperation

    from stocklink.jobs.push import enqueue_push

    class Vanished:
        """What rq.job.Job.fetch gives for a job whose hash RQ deletes right after."""

        def __init__(self, job_id):
            self.id = job_id

        @classmethod
        def fetch(cls, job_id, connection=None):
            return cls(job_id)

        def get_status(self, refresh=True):
            raise InvalidJobOperation(f"Failed to retrieve status for job: {self.id}")

    with app.app_context():
        assert enqueue_push(world.colorme_id) == "queued"
        monkeypatch.setattr("stocklink.jobs.push.Job", Vanished)
        assert enqueue_push(world.colorme_id) == "already queued"


def test_a_drain_that_crashes_lets_the_next_notification_queue_another(app, world, monkeypatch):
    """A drain holds the wake while it runs; if it dies, it lets go, so the inbox is not left
    unattended until the wake expires."""
    world.add(A, "MUG01", "マグカップ", 10)

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("stocklink.jobs.inbox.claim_batch", broken)
    with pytest.raises(RuntimeError):
        process_inbox()
    with app.app_context():
        assert get_redis().exists(WAKE_KEY) == 0
        get_queue(WEBHOOKS).empty()
    world.smaregi.sell([(A, 1)])
    with app.app_context():
        assert [j.func_name for j in get_queue(WEBHOOKS).jobs] == ["stocklink.jobs.inbox.process_inbox"]
