"""Channel errors over real HTTP: level 9 stops a channel until new credentials **and** a cleared
error, level 8 is retried by RQ and nothing is lost (SPEC §6, seed 002/004)."""
from __future__ import annotations

import pytest
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.infra.queues import PUSH, get_queue, get_redis
from stocklink.jobs.push import push_channel
from stocklink.models import Channel, ErrorRecord, Listing, WriteIntent
from stocklink.services.channel_clients import credentials_of
from stocklink.services.incidents import record_error
from tests.conftest import wait_for
from tests.e2e_helpers import ERROR_MAIL, colorme_writes, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A = "8400001"
BANNER = "認証エラーのため、カラーミーの連携を停止しています。"


def channel_row(app, channel_id: int) -> dict:
    with app.app_context():
        c = db.session.get(Channel, channel_id)
        return {"state": c.state, "error_level": c.error_level, "stopped": c.stopped_at is not None}


def error_rows(app) -> list[tuple]:
    """(level, kind, resolved) of every error row, oldest first."""
    with app.app_context():
        return [(r.level, r.kind, r.resolved_at is not None)
                for r in db.session.scalars(select(ErrorRecord).order_by(ErrorRecord.id))]


def colorme_listing(app, world) -> tuple:
    """(last confirmed quantity, dirty) of A's ColorMe listing."""
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == world.colorme_id)).one()
        return listing.last_confirmed_quantity, listing.dirty


def open_intents(app, channel_id: int) -> list[tuple]:
    """(mode, before, after) of the channel's write intents not yet settled."""
    with app.app_context():
        return [(i.mode, i.before, i.after) for i in db.session.scalars(select(WriteIntent).where(
            WriteIntent.channel_id == channel_id, WriteIntent.status == "open"))]


@pytest.fixture
def stopped(app, world, jobs_runner, mailbox):
    """A sold on the POS while ColorMe refuses the token: ColorMe is stopped, Shopify is in step."""
    world.add(A, "BAG01", "帆布トート", 10)
    with app.app_context():
        token = credentials_of(db.session.get(Channel, world.colorme_id))["access_token"]
    world.colorme.revoke_token(token)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    return world


def save_channel_form(client, auth, channel_id: int, token: str | None):
    """The merchant saves the channel on the settings screen (a blank token keeps the old one)."""
    with client.application.app_context():
        channel = db.session.get(Channel, channel_id)
        form = {"name": channel.name, "base_url": channel.base_url, "enabled": "1",
                "range_min": str(channel.range_min), "range_max": str(channel.range_max),
                "poll_interval_s": str(channel.poll_interval_s), "cred_access_token": token or "",
                "csrf_token": auth.token(f"/settings/channels/{channel_id}")}
    return client.post(f"/settings/channels/{channel_id}", data=form)


def delete_error(client, auth, error_id: int):
    return client.post(f"/errors/{error_id}/delete", data={"csrf_token": auth.token("/errors/")})


def open_auth_error_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(ErrorRecord.id).where(ErrorRecord.level == 9)).one()


def test_an_expired_token_stops_the_channel_with_mail_and_banner(app, client, logged_in, stopped, mailbox):
    """A refused token is level 9: the channel stops, an error row, a mail and a red banner; others go on."""
    world = stopped
    assert channel_row(app, world.colorme_id) == {"state": "stopped", "error_level": 9, "stopped": True}
    assert channel_row(app, world.shopify_id) == {"state": "active", "error_level": None, "stopped": False}
    assert error_rows(app) == [(9, "auth", False)]
    assert world.channel_stock(A) == (10, 8)
    assert colorme_listing(app, world) == (10, True)  # nothing lost: still waiting to be pushed
    [mail] = mailbox.messages
    assert mail["to"] == [ERROR_MAIL] and "カラーミー" in mail["subject"] and "停止" in mail["subject"]
    assert "新しい認証情報" in mail["message"].get_content()
    page = client.get("/").get_data(as_text=True)
    assert BANNER in page and "最新のエラー" in page and "停止中" in page
    assert "<td>カラーミーショップ</td>" in page  # the channel's kind by its name, not its code
    assert BANNER in client.get("/errors/").get_data(as_text=True)  # on every console page


def test_pushes_are_skipped_while_the_channel_is_stopped(app, stopped, jobs_runner):
    """While stopped, pushes to the channel are not attempted; its listings stay dirty."""
    world = stopped
    requests_before = len(world.colorme.requests)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    assert push_channel(world.colorme_id) == "skipped: stopped"
    assert len(world.colorme.requests) == requests_before
    assert world.channel_stock(A) == (10, 5) and stock_of(app, A) == 5
    assert colorme_listing(app, world) == (10, True)


def test_new_credentials_alone_do_not_resume_then_deleting_the_error_does(app, client, logged_in, stopped,
                                                                          jobs_runner):
    """Saving new credentials with the error still open keeps the channel stopped; deleting it resumes."""
    world = stopped
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    response = save_channel_form(client, logged_in, world.colorme_id, world.colorme.issue_token())
    assert response.status_code == 303
    assert channel_row(app, world.colorme_id)["state"] == "stopped"
    jobs_runner()
    assert world.channel_stock(A) == (10, 5)

    response = delete_error(client, logged_in, open_auth_error_id(app))
    assert response.status_code == 303
    assert channel_row(app, world.colorme_id) == {"state": "active", "error_level": None, "stopped": False}
    jobs_runner()
    assert world.channel_stock(A) == (5, 5)
    assert colorme_listing(app, world) == (5, False)
    assert error_rows(app) == []
    assert BANNER not in client.get("/").get_data(as_text=True)


def test_deleting_the_error_alone_does_not_resume_then_new_credentials_do(app, client, logged_in, stopped,
                                                                          jobs_runner):
    """Deleting the error with the old credentials keeps the channel stopped; new credentials resume it."""
    world = stopped
    response = delete_error(client, logged_in, open_auth_error_id(app))
    assert response.status_code == 303
    assert error_rows(app) == []
    assert channel_row(app, world.colorme_id)["state"] == "stopped"
    assert BANNER in client.get("/").get_data(as_text=True)

    response = save_channel_form(client, logged_in, world.colorme_id, None)  # nothing new typed in
    assert response.status_code == 303
    assert channel_row(app, world.colorme_id)["state"] == "stopped"

    response = save_channel_form(client, logged_in, world.colorme_id, world.colorme.issue_token())
    assert response.status_code == 303
    assert channel_row(app, world.colorme_id)["state"] == "active"
    jobs_runner()
    assert world.channel_stock(A) == (8, 8)
    assert colorme_listing(app, world) == (8, False)


def push_job(app, channel_id: int) -> Job:
    with app.app_context():
        return Job.fetch(f"push-{channel_id}", connection=get_redis())


def retry_now(app, job: Job) -> None:
    """Move RQ's scheduled retry to the queue now instead of in a few seconds."""
    with app.app_context():
        get_queue(PUSH).scheduled_job_registry.requeue(job)


@pytest.mark.parametrize("failure", ["5xx", "maintenance", "timeout"])
def test_a_temporary_failure_is_retried_and_delivers_the_latest_value(app, client, logged_in, world, jobs_runner,
                                                                      failure):
    """5xx, maintenance or a timeout is level 8 retried by RQ; once ColorMe recovers the latest value lands."""
    world.add(A, "MUG01", "マグカップ", 10)
    if failure == "5xx":
        world.colorme.fail_next(count=1, status=502)
    elif failure == "maintenance":
        world.colorme.set_maintenance(True)
    else:
        app.config["CHANNEL_TIMEOUT"] = 0.5
        world.colorme.set_delay(1.2)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    job = push_job(app, world.colorme_id)
    assert job.get_status() == "scheduled" and job.retries_left == 5
    assert error_rows(app) == [(8, "temporary", False)]
    assert channel_row(app, world.colorme_id) == {"state": "active", "error_level": 8, "stopped": False}
    # After a timeout stocklink cannot know whether ColorMe applied the increment: the write's
    # intent stays open, to be settled by reading ColorMe back before anything is sent again.
    assert colorme_listing(app, world) == (10, True)
    assert open_intents(app, world.colorme_id) == ([("relative", 10, 8)] if failure == "timeout" else [])
    assert world.shopify.stock(world.items[A]["shopify"]) == 8
    assert "再試行中" in client.get("/").get_data(as_text=True)

    world.smaregi.sell([(A, 3)])  # more happens while ColorMe is down
    jobs_runner()
    assert stock_of(app, A) == 5
    world.colorme.set_maintenance(False)
    world.colorme.set_delay(0)
    if failure == "timeout":  # ColorMe applies the write the client gave up on
        assert wait_for(lambda: world.colorme.stock(world.items[A]["colorme"]) == 8)

    retry_now(app, job)
    jobs_runner()
    assert world.channel_stock(A) == (5, 5)
    assert colorme_listing(app, world) == (5, False)
    assert error_rows(app) == [(8, "temporary", True)]
    assert channel_row(app, world.colorme_id)["error_level"] is None
    # The retry is relative to the last confirmed 10; after a timeout, to the 8 read back (the
    # lost answer's increment was applied), so ColorMe ends at 5, not 2.
    stocks = {"increment": -3} if failure == "timeout" else {"increment": -5}
    assert colorme_writes(world.colorme, world.items[A]["colorme"])[-1] == {"product": {"stocks": stocks}}
    assert open_intents(app, world.colorme_id) == []


def test_a_short_rate_limit_is_waited_out_in_place(app, world, jobs_runner):
    """Shopify THROTTLED asks for a pause of a fraction of a second: the push waits and sends the
    same write again instead of failing into a 5 s RQ retry and a level-8 error (field research:
    throttling is routine, not an outage for the merchant)."""
    world.add(A, "MUG01", "マグカップ", 10)
    world.shopify.throttle_next(2)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    assert world.channel_stock(A) == (8, 8)
    assert push_job_status(app, world.shopify_id) is None  # done, not scheduled for a retry
    assert error_rows(app) == []


def test_a_rate_limit_that_does_not_lift_is_level_8(app, world, jobs_runner, monkeypatch):
    """Still throttled after the pauses, or a pause longer than the push may wait: level 8,
    retried by RQ, and the value lands once Shopify lets it through."""
    from stocklink.jobs import push
    world.add(A, "MUG01", "マグカップ", 10)
    world.shopify.throttle_next(push.PAUSES + 1)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    assert error_rows(app) == [(8, "temporary", False)]
    assert world.shopify.stock(world.items[A]["shopify"]) == 10
    job = push_job(app, world.shopify_id)
    assert job.get_status() == "scheduled"

    world.shopify.set_bucket(5, 0.01)  # Shopify now asks for minutes: not waited out in place
    retry_now(app, job)
    jobs_runner()
    assert world.shopify.stock(world.items[A]["shopify"]) == 10
    assert push_job(app, world.shopify_id).get_status() == "scheduled"

    world.shopify.set_bucket(2000, 100)
    retry_now(app, push_job(app, world.shopify_id))
    jobs_runner()
    assert world.channel_stock(A) == (8, 8)
    assert error_rows(app) == [(8, "temporary", True)]


def test_errors_page_deletes_one_and_all(app, client, logged_in, world):
    """The errors page lists errors latest first; one can be deleted, then all at once (seed 004)."""
    with app.app_context():
        colorme = db.session.get(Channel, world.colorme_id)
        shopify = db.session.get(Channel, world.shopify_id)
        first = record_error(source="channel", level=8, kind="temporary", channel=colorme, key="channel_temporary",
                             detail="ColorMe unavailable (503)")
        record_error(source="channel", level=8, kind="temporary", channel=shopify, key="channel_temporary",
                     detail="Shopify unavailable (502)")
        record_error(source="smaregi", level=8, kind="temporary", key="smaregi_unavailable", detail="timeout")
        db.session.commit()
        first_id = first.id
    page = client.get("/errors/").get_data(as_text=True)
    assert page.index("詳細: timeout") < page.index("詳細: ColorMe unavailable (503)")

    token = logged_in.token("/errors/")
    response = client.post(f"/errors/{first_id}/delete", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/errors/")
    with app.app_context():
        assert db.session.get(ErrorRecord, first_id) is None
        assert db.session.scalar(select(func.count(ErrorRecord.id))) == 2
    assert "ColorMe unavailable (503)" not in client.get("/errors/").get_data(as_text=True)

    response = client.post("/errors/delete-all", data={"csrf_token": token})
    assert response.status_code == 303
    assert error_rows(app) == []
    assert "エラーはありません。" in client.get("/errors/").get_data(as_text=True)


def test_an_unknown_listing_is_a_link_problem_shown_until_the_merchant_acts(app, client, logged_in, world,
                                                                            jobs_runner):
    """A listing the channel does not know is marked and its error stays open; it is not retried (SPEC §11.8)."""
    world.add(A, "NTE01", "ノート", 4)
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == world.colorme_id)).one()
        listing.identifier = "999999"  # deleted on ColorMe since it was linked
        db.session.commit()
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == world.colorme_id)).one()
        assert (listing.link_problem, listing.dirty) == ("unknown_item", False)
        assert push_job_status(app, world.colorme_id) is None  # finished: nothing to retry
    assert error_rows(app) == [(8, "unknown_item", False)]
    assert "999999" in client.get("/").get_data(as_text=True)
    assert world.shopify.stock(world.items[A]["shopify"]) == 3

    world.smaregi.sell([(A, 1)])  # a later successful push of the channel does not hide it
    jobs_runner()
    assert error_rows(app) == [(8, "unknown_item", False)]


def push_job_status(app, channel_id: int) -> str | None:
    with app.app_context():
        try:
            return Job.fetch(f"push-{channel_id}", connection=get_redis()).get_status()
        except NoSuchJobError:
            return None


def test_blank_platform_settings_keep_the_stored_ones(app, client, logged_in):
    """Saving a channel with the JSON field left blank keeps its settings (Shopify location_id)."""
    from stocklink.infra.extensions import db as _db
    from stocklink.models import Channel

    with app.app_context():
        channel = Channel(kind="shopify", name="Shopify", base_url="https://shop.example",
                          settings={"location_id": "7"})
        _db.session.add(channel)
        _db.session.commit()
        channel_id = channel.id
    token = logged_in.token(f"/settings/channels/{channel_id}")
    response = client.post(f"/settings/channels/{channel_id}", data={
        "csrf_token": token, "name": "Shopify", "base_url": "https://shop.example", "enabled": "1",
        "settings_json": ""})
    assert response.status_code == 303
    with app.app_context():
        assert _db.session.get(Channel, channel_id).settings == {"location_id": "7"}
