"""Smaregi failing while stocklink reads its stock: backoff, one mail, retry on new credentials (SPEC §6)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
from stocklink.jobs.inbox import ALERT_AFTER, BACKOFF, BACKOFF_KEY, FAILURES_KEY, process_inbox, retry_now
from stocklink.models import ErrorRecord, SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.services import merchant_settings as stocklink_settings
from tests.e2e_helpers import TOKEN, inbox_rows, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A = "8200001"


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
