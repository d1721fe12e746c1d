"""Draining the Smaregi inbox: a batch per drain with one stock read, claims that never overlap,
rows out of order or broken, drains that run twice or die (SPEC §4, §11)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
from stocklink.jobs.inbox import WAKE_KEY, claim_batch, process_inbox, sweep_inbox
from stocklink.models import ErrorRecord, SmaregiInbox, StockLedger
from stocklink.models._types import utcnow
from stocklink.services.merchant_text import error_text
from tests.e2e_helpers import inbox_rows, ledger_count, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A, C = "8200001", "8200003"


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
        assert error.level == 8 and f"#{ids[1]}" in error_text(error)


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
