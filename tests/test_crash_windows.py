"""Workers killed with SIGKILL in the middle of a write: nothing lost, nothing applied twice.

Each test runs one job in a real subprocess (:mod:`tests.crash_child`) against the test's
database and Redis, lets the sandbox apply the write and hold back its answer (the window in
which the worker has written without knowing it), kills the process, and then lets the next
push or drain find what it left. Leases are 30 s; instead of waiting them out, a test checks
that what the dead worker held expires within 30 s and then lets it run out at once.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.infra.leases import LEASE_TTL, Heartbeat
from stocklink.infra.queues import PUSH, WEBHOOKS, get_queue, get_redis
from stocklink.jobs.inbox import process_inbox
from stocklink.jobs.push import LATER_KEY, LOCK_KEY, push_channel
from stocklink.models import Listing, Product, SmaregiInbox, StockLedger, WriteIntent
from stocklink.models._types import utcnow
from tests.conftest import wait_for
from tests.e2e_helpers import colorme_writes, ledger_count, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A = "8000001"
ROOT = Path(__file__).resolve().parent.parent


def start_child(app, job: str, *args) -> subprocess.Popen:
    config = {key: app.config[key] for key in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "REDIS_URL",
                                               "MAIL_SERVER", "MAIL_PORT")}
    config["TESTING"] = True
    child = subprocess.Popen([sys.executable, "-m", "tests.crash_child",
                              json.dumps({"config": config, "job": job, "args": list(args)})],
                             cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return child


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    output = child.stdout.read().decode()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL, output  # killed mid-job, not finished


def let_the_push_lease_run_out(app, channel_id: int) -> None:
    """The dead worker's push lock expires within the lease (not the 600 s it used to): checked,
    then run out at once instead of waiting up to 30 s."""
    with app.app_context():
        redis = get_redis()
        remaining = redis.pttl(LOCK_KEY.format(channel_id))
        assert 0 < remaining <= LEASE_TTL * 1000
        redis.delete(LOCK_KEY.format(channel_id), LATER_KEY.format(channel_id))


def intents(app, channel_id: int) -> list[tuple]:
    with app.app_context():
        return [(i.mode, i.status, i.outcome, i.before, i.after, i.delta, i.ref) for i in db.session.scalars(
            select(WriteIntent).where(WriteIntent.channel_id == channel_id).order_by(WriteIntent.id))]


def listing_state(app, channel_id: int) -> tuple:
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == channel_id)).one()
        return listing.last_confirmed_quantity, listing.dirty, listing.difference


def crashed_before_the_answer(app, channel_id: int, *, before: int, after: int) -> None:
    """Leave the open intent a push killed after committing it (and before booking its answer) leaves."""
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == channel_id)).one()
        db.session.add(WriteIntent(channel_id=channel_id, listing_id=listing.id, batch="crashed", mode="relative",
                                   identifier=listing.identifier, before=before, after=after, delta=after - before,
                                   fact_at=listing.fact_at))
        db.session.commit()


def test_a_colorme_increment_whose_worker_died_after_colorme_applied_it_is_not_applied_twice(app, world,
                                                                                              jobs_runner):
    """The fault probe: a -10 applied twice (ColorMe 978 for Smaregi 988). Now the intent is found
    open, ColorMe is read back (it holds the target), and nothing is sent again."""
    world.add(A, "MUG01", "マグカップ", 998)
    colorme_item = world.items[A]["colorme"]
    world.smaregi.sell([(A, 10)])
    jobs_runner(queues=(WEBHOOKS,))  # the drain marks the listings; the pushes wait in the queue
    assert stock_of(app, A) == 988
    world.colorme.set_delay(5, after=True)
    child = start_child(app, "push", world.colorme_id)
    assert wait_for(lambda: world.colorme.stock(colorme_item) == 988, timeout=15)
    kill(child)  # ColorMe applied the increment; its answer never reached stocklink
    world.colorme.set_delay(0, after=True)
    assert intents(app, world.colorme_id) == [("relative", "open", None, 998, 988, -10, None)]
    assert listing_state(app, world.colorme_id) == (998, True, False)

    let_the_push_lease_run_out(app, world.colorme_id)
    jobs_runner()
    assert world.channel_stock(A) == (988, 988)
    assert colorme_writes(world.colorme, colorme_item) == [{"product": {"stocks": {"increment": -10}}}]
    assert intents(app, world.colorme_id) == [("relative", "settled", "applied", 998, 988, -10, None)]
    assert listing_state(app, world.colorme_id) == (988, False, False)


def test_a_write_recorded_but_never_sent_is_sent_once(app, world, jobs_runner):
    """Killed after the intent was committed and before the request left: ColorMe still holds the
    old value, so the increment is sent, once."""
    world.add(A, "MUG01", "マグカップ", 20)
    colorme_item = world.items[A]["colorme"]
    world.smaregi.sell([(A, 3)])
    jobs_runner(queues=(WEBHOOKS,))
    crashed_before_the_answer(app, world.colorme_id, before=20, after=17)
    jobs_runner()
    assert world.channel_stock(A) == (17, 17)
    assert colorme_writes(world.colorme, colorme_item) == [{"product": {"stocks": {"increment": -3}}}]
    assert intents(app, world.colorme_id) == [("relative", "settled", "not_applied", 20, 17, -3, None)]


def test_an_ambiguous_relative_write_is_shown_as_a_difference_not_resent(app, world, jobs_runner):
    """ColorMe holds neither the old value nor the target (it sold one meanwhile, or something applied
    twice): sending the increment again could double it, so the listing is a difference, with an error."""
    world.add(A, "MUG01", "マグカップ", 20)
    colorme_item = world.items[A]["colorme"]
    world.smaregi.sell([(A, 3)])
    jobs_runner(queues=(WEBHOOKS,))
    world.colorme.set_stock(colorme_item, 16)
    crashed_before_the_answer(app, world.colorme_id, before=20, after=17)
    jobs_runner()
    assert colorme_writes(world.colorme, colorme_item) == []
    assert world.colorme.stock(colorme_item) == 16
    assert listing_state(app, world.colorme_id) == (16, False, True)
    assert intents(app, world.colorme_id)[0][2] == "ambiguous"
    from stocklink.models import ErrorRecord
    from stocklink.services.merchant_text import error_text
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord).where(ErrorRecord.kind == "write_unconfirmed")).all()
        assert error.level == 8 and "再送していません" in error_text(error)
        assert error.message_params == {"identifier": str(colorme_item), "before": 20, "after": 17, "now": 16}


def test_a_nextengine_upload_whose_worker_died_is_found_in_the_queue_not_uploaded_again(app, world,
                                                                                         nextengine_world,
                                                                                         jobs_runner):
    """The fault probe: 51 of 53 deltas uploaded twice. Now the lost upload is found in NextEngine's
    queue (an entry since the intent that stocklink does not know) and booked, not repeated.

    Tokens rotate as NextEngine's FAQ describes (on expiry): with a new pair on every call, the
    pair in the lost answer would be lost with it, and the channel would stop for a new login."""
    ne, ne_id = nextengine_world
    ne.rotate = "on_expiry"
    world.add(A, "MUG01", "マグカップ", 20)
    ne.add_goods("MUG01", 20)
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == A))
        db.session.add(Listing(channel_id=ne_id, product_id=product_id, identifier="MUG01",
                               last_confirmed_quantity=20))
        db.session.commit()
    world.smaregi.sell([(A, 3)])
    jobs_runner(queues=(WEBHOOKS,))
    ne.set_delay(5, after=True)
    child = start_child(app, "push", ne_id)
    assert wait_for(lambda: len(ne.uploads) == 1, timeout=30)
    kill(child)
    ne.set_delay(0, after=True)
    [(mode, status, *_rest)] = intents(app, ne_id)
    assert (mode, status) == ("delta", "open")

    let_the_push_lease_run_out(app, ne_id)
    jobs_runner()
    assert len(ne.uploads) == 1
    assert ne.stock("MUG01") == 17 == stock_of(app, A)
    que_id = ne.uploads[0]["que_id"]
    [(_m, status, outcome, _b, _a, delta, ref)] = intents(app, ne_id)
    assert (status, outcome, delta, ref) == ("settled", "applied", -3, que_id)
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == ne_id)).one()
        assert listing.pending_delta == 0


def test_a_nextengine_upload_that_never_reached_the_queue_is_uploaded_once(app, world, nextengine_world,
                                                                           jobs_runner):
    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    ne.add_goods("MUG01", 20)
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == A))
        listing = Listing(channel_id=ne_id, product_id=product_id, identifier="MUG01", last_confirmed_quantity=20)
        db.session.add(listing)
        db.session.commit()
    world.smaregi.sell([(A, 3)])
    jobs_runner(queues=(WEBHOOKS,))
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == ne_id)).one()
        db.session.add(WriteIntent(channel_id=ne_id, listing_id=listing.id, batch="crashed", mode="delta",
                                   identifier="MUG01", delta=-3, fact_at=listing.fact_at))
        db.session.commit()
    jobs_runner()
    assert len(ne.uploads) == 1 and ne.stock("MUG01") == 17
    assert [i[1:3] for i in intents(app, ne_id)] == [("settled", "not_applied"), ("settled", "booked")]


def test_a_drain_killed_mid_batch_gives_its_rows_up_within_the_lease_and_they_apply_once(app, world,
                                                                                          jobs_runner):
    """The fault probe: claimed rows stayed `processing` for 5 minutes. Now the dead drain's claim is
    a 30 s lease; after it, the next drain takes the rows and applies each once."""
    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 1)])
    world.smaregi.sell([(A, 2)])
    with app.app_context():
        get_queue(WEBHOOKS).empty()
        get_redis().delete("stocklink:inbox-wake")
    world.smaregi.fail_next("slow", count=1, seconds=10)
    calls = len(world.smaregi.api_log)
    child = start_child(app, "drain")

    def claimed_and_asking():
        """The child holds both rows and its stock read is at Smaregi (so the slow answer is its,
        not the next drain's: the rows are claimed before Smaregi is asked)."""
        with app.app_context():
            db.session.remove()
            statuses = db.session.scalars(select(SmaregiInbox.status)).all()
        return statuses == ["processing", "processing"] and len(world.smaregi.api_log) > calls
    assert wait_for(claimed_and_asking, timeout=15)
    kill(child)
    with app.app_context():
        claims = db.session.execute(select(SmaregiInbox.claimed_by, SmaregiInbox.claimed_at)).all()
        assert all(by for by, _at in claims)
        assert process_inbox() == "done 0, 0 channel(s) to push"  # still under the dead drain's lease
        db.session.execute(update(SmaregiInbox).values(claimed_at=utcnow() - timedelta(seconds=LEASE_TTL + 1)))
        db.session.commit()
        assert process_inbox() == "done 2, 2 channel(s) to push"
        assert db.session.scalars(select(SmaregiInbox.status)).all() == ["done", "done"]
    jobs_runner()
    assert stock_of(app, A) == 7 and world.channel_stock(A) == (7, 7)
    assert ledger_count(app, A) == 1  # one batch applied both sales, once


def test_a_drain_whose_lease_was_taken_over_applies_nothing(app, world):
    """A drain stalled past its lease finds its rows taken by another: it rolls back, so the rows
    are applied by their new holder only."""
    from stocklink.jobs.inbox import _apply, claim_batch

    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 1)])
    with app.app_context():
        [row_id] = claim_batch(token="stalled")
        db.session.execute(update(SmaregiInbox).values(claimed_by="newer"))
        db.session.commit()
        assert _apply([row_id], "stalled") == set()
        assert db.session.scalar(select(SmaregiInbox.status)) == "processing"
        assert db.session.scalar(select(Product.smaregi_stock).where(Product.smaregi_product_id == A)) == 10
        assert db.session.scalar(select(StockLedger.id).where(StockLedger.cause.like("%sale%"))) is None


def test_a_push_that_finds_the_channel_busy_schedules_itself_and_frees_the_worker(app, world, jobs_runner):
    """The fault probe: each follow-up push held a worker 120 s, then failed. Now it returns at once
    and comes back when the running push's lease ends."""
    world.add(A, "MUG01", "マグカップ", 10)
    world.smaregi.sell([(A, 4)])
    jobs_runner(queues=(WEBHOOKS,))
    with app.app_context():
        redis = get_redis()
        redis.set(LOCK_KEY.format(world.colorme_id), "a-dead-worker", px=LEASE_TTL * 1000)
        answer = push_channel(world.colorme_id)
        assert answer.startswith("busy: pushed again in")
        assert push_channel(world.colorme_id) == "busy: a later push is already scheduled"
        scheduled = get_queue(PUSH).scheduled_job_registry
        [job_id] = [j for j in scheduled.get_job_ids() if not j.startswith("push-")]
        redis.delete(LOCK_KEY.format(world.colorme_id))
        scheduled.requeue(job_id)
    jobs_runner()
    assert world.channel_stock(A) == (6, 6)


def test_a_heartbeat_renews_until_its_block_ends_and_survives_a_failing_renewal():
    calls = []

    def renew():
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("redis restarting")

    import time
    with Heartbeat(renew, every=0.02):
        assert wait_for(lambda: len(calls) >= 4, timeout=2)
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count  # stopped with its block


def test_a_heartbeat_stops_when_the_lease_is_lost():
    calls = []
    with Heartbeat(lambda: calls.append(1) or False, every=0.02) as beat:
        assert wait_for(lambda: beat.lost, timeout=2)
    assert len(calls) == 1
