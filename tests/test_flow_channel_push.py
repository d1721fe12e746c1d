"""What a push writes to each channel: min/max and the channel's range shape the value, ColorMe
gets a relative write and Shopify a compare-and-set, and pushing again sends nothing (SPEC §3, §11.6)."""
from __future__ import annotations

from sqlalchemy import func, select, update

from stocklink.infra.extensions import db
from stocklink.jobs.push import push_channel
from stocklink.models import Channel, ErrorRecord
from stocklink.models._types import utcnow
from stocklink.services.stock_ledger import mark_listings_dirty
from tests.e2e_helpers import colorme_writes, listings_of, shopify_writes, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A, B, C, U = "8200001", "8200002", "8200003", "8200055"


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
