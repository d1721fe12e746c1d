"""The stale-sync warning over real parts (SPEC §11.10): a channel with work waiting and no
successful read or write for longer than ``sync.stale_after_minutes`` is shown on the dashboard and
mailed once per episode; a successful push ends the episode; no waiting work, no warning; a
stopped channel (level 9) keeps only its own alert. Time is driven by stamps written in the past."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.jobs.read_back import check_stale_sync
from stocklink.models import Channel, Listing, OutboxMessage
from stocklink.models._types import utcnow

pytest_plugins = ["tests.fixtures_platforms"]

A = "8400001"
STALE_SECTION = re.compile(r'<section class="card alert" id="stale-sync">(.*?)</section>', re.S)


def quiet_for(app, channel_id: int, minutes: int) -> None:
    """The channel's last successful read and write were ``minutes`` ago (and it was added before)."""
    past = utcnow() - timedelta(minutes=minutes)
    with app.app_context():
        db.session.execute(update(Channel).where(Channel.id == channel_id).values(
            last_sync_at=past, last_read_back_at=past, created_at=past - timedelta(days=1)))
        db.session.commit()


def make_dirty(app, channel_id: int) -> None:
    """Work waits for the channel: its listings are dirty (a change not yet written)."""
    with app.app_context():
        db.session.execute(update(Listing).where(Listing.channel_id == channel_id).values(dirty=True))
        db.session.commit()


def stale_mails(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage.subject).where(
            OutboxMessage.kind == "stale").order_by(OutboxMessage.id)))


def stale_warning(client) -> str | None:
    """The dashboard's stale-sync section, or None when it is not shown."""
    response = client.get("/")
    assert response.status_code == 200
    found = STALE_SECTION.search(response.get_data(as_text=True))
    return found.group(1) if found else None


def test_a_quiet_channel_with_work_waiting_warns_and_mails_once_per_episode(app, world, jobs_runner, client, logged_in):
    """ColorMe dirty and quiet for 45 min (threshold 30): the dashboard names it (and not Shopify,
    which has nothing waiting); two checks queue one mail; a push clears the warning and ends the
    episode; a second quiet spell mails again."""
    world.add(A, "ST-1", "リネンシャツ", 10)
    quiet_for(app, world.colorme_id, 45)
    quiet_for(app, world.shopify_id, 45)
    make_dirty(app, world.colorme_id)

    warning = stale_warning(client)
    assert warning is not None and "カラーミー" in warning and "Shopify" not in warning
    assert "1件の商品が反映待ちです。" in warning

    assert check_stale_sync() == "alerted 1, recovered 0"
    assert check_stale_sync() == "alerted 0, recovered 0"
    mails = stale_mails(app)
    assert len(mails) == 1 and "カラーミー" in mails[0] and "30" in mails[0]
    with app.app_context():
        body = db.session.scalars(select(OutboxMessage.body).where(OutboxMessage.kind == "stale")).one()
        assert "反映を待っている商品: 1 件" in body

    with app.app_context():
        enqueue_push(world.colorme_id)
    jobs_runner()
    assert world.colorme.stock(world.items[A]["colorme"]) == 10
    assert stale_warning(client) is None
    assert check_stale_sync() == "alerted 0, recovered 1"
    with app.app_context():
        assert db.session.get(Channel, world.colorme_id).stale_alerted_at is None

    quiet_for(app, world.colorme_id, 45)
    make_dirty(app, world.colorme_id)
    assert stale_warning(client) is not None
    assert check_stale_sync() == "alerted 1, recovered 0"
    assert len(stale_mails(app)) == 2


def test_within_the_threshold_a_channel_with_work_waiting_does_not_warn(app, world, client, logged_in):
    """Dirty but last synced 20 min ago (threshold 30): no warning, no mail."""
    world.add(A, "ST-1", "リネンシャツ", 10)
    quiet_for(app, world.colorme_id, 20)
    make_dirty(app, world.colorme_id)
    assert stale_warning(client) is None
    assert check_stale_sync() == "alerted 0, recovered 0"
    assert stale_mails(app) == []


def test_a_quiet_channel_with_nothing_waiting_does_not_warn(app, world, client, logged_in):
    """Both channels quiet for a day but nothing dirty or pending: no warning, no mail."""
    world.add(A, "ST-1", "リネンシャツ", 10)
    quiet_for(app, world.colorme_id, 24 * 60)
    quiet_for(app, world.shopify_id, 24 * 60)
    assert stale_warning(client) is None
    assert check_stale_sync() == "alerted 0, recovered 0"
    assert stale_mails(app) == []


def test_a_stopped_channel_keeps_its_own_alert_and_gets_no_stale_warning(app, world, jobs_runner, client, logged_in):
    """ColorMe revokes the token: the sale's push stops the channel (level 9 mail); quiet and dirty long
    after, it is not also shown or mailed as stale."""
    world.add(A, "ST-1", "リネンシャツ", 10)
    world.colorme.revoke_tokens()
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        channel = db.session.get(Channel, world.colorme_id)
        assert (channel.state, channel.error_level) == ("stopped", 9)
        assert db.session.scalars(select(OutboxMessage.kind).where(OutboxMessage.kind == "level9")).all() \
            == ["level9"]
    quiet_for(app, world.colorme_id, 24 * 60)
    make_dirty(app, world.colorme_id)
    assert stale_warning(client) is None
    assert check_stale_sync() == "alerted 0, recovered 0"
    assert stale_mails(app) == []
