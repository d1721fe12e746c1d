"""Pushing stock to a channel: one coalesced job per channel (SPEC §4 step 3).

While a push for a channel is queued no second one is added; marks made while one runs
are picked up by its next loop or by a follow-up job; a sweep every 15 s catches the rest.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from redis.exceptions import LockError
from rq import Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import or_, select

from stocklink.domain.read_back import channel_news_at, may_raise
from stocklink.infra.extensions import db
from stocklink.infra.leases import LEASE_TTL, Heartbeat
from stocklink.infra.queues import PUSH, get_queue, get_redis
from stocklink.jobs import job
from stocklink.jobs.report import push_deltas_with_report
from stocklink.models import Channel, Listing, WriteIntent
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.base import AuthError, PlatformError, StockWrite, TemporaryError
from stocklink.platforms.registry import PLATFORMS
from stocklink.services import differences, write_intents
from stocklink.services.channel_clients import InvalidChannelSettings, make_channel_client
from stocklink.services.incidents import final_attempt, record_error, resolve_temporary_errors
from stocklink.services.outbox import queue_mail
from stocklink.services.push_value import channel_range, push_decision
from stocklink.services.stock_ledger import clear_dirty

log = logging.getLogger(__name__)
RETRY = Retry(max=6, interval=[5, 15, 60, 180, 600, 1800])
MAX_ROUNDS = 5
# The dashboard's 最終同期 is stamped at most this often: at a busy shop a push runs several
# times a second, and a write transaction per push only to move the stamp would hold SQLite's
# one write lock, which the webhook's INSERT waits for.
SYNC_STAMP_EVERY = timedelta(seconds=5)
LOCK_KEY = "stocklink:push-lock:{}"
LATER_KEY = "stocklink:push-later:{}"  # set while a delayed follow-up for the channel is scheduled
# A rate limit asking for a short pause is waited out in place (up to PAUSES times, each at
# most PAUSE_LIMIT seconds) instead of failing the push into RQ's 5 s retry and a level-8 error.
# Shopify's bucket (100 points/s, each write 13) asks for ≈0.1 s for a one-item write when it
# is empty, 6.5 s for a batch of 50; a longer pause would hold a worker, so RQ's retry takes it.
PAUSE_LIMIT = 10.0
PAUSES = 3


def _enqueue(job_id: str, channel_id: int) -> None:
    get_queue(PUSH).enqueue(push_channel, channel_id, job_id=job_id, unique=True, job_timeout=300,
                            retry=RETRY, result_ttl=0, failure_ttl=7 * 86400)


def enqueue_push(channel_id: int) -> str:
    """Ask for a push of ``channel_id``; returns what happened.

    One job id per channel with ``unique=True``: while one is queued, no second is added
    (it will see every mark). While one runs, one follow-up may wait behind its lock. A
    job hash left behind by a finished or failed run is deleted and the push re-queued.
    """
    job_id = f"push-{channel_id}"
    try:
        _enqueue(job_id, channel_id)
        return "queued"
    except DuplicateJobError:
        pass
    try:
        existing = Job.fetch(job_id, connection=get_redis())
        status = existing.get_status()
    except (NoSuchJobError, InvalidJobOperation):  # it finished and vanished between the two calls
        existing, status = None, None
    if status in ("queued", "scheduled", "deferred"):
        return "already queued"
    if status == "started":
        try:
            _enqueue(f"{job_id}-followup", channel_id)
            return "follow-up"
        except DuplicateJobError:
            return "already queued"
    if existing is not None:
        existing.delete()
    try:
        _enqueue(job_id, channel_id)
        return "queued"
    except DuplicateJobError:
        return "already queued"


def plan_writes(channel: Channel, listings: list[Listing]) -> tuple[list[tuple[Listing, StockWrite]], list]:
    """Decide each dirty listing's write through :func:`push_decision` (:func:`compute_push_quantity`,
    the one place).

    A raise :func:`may_raise` forbids (SPEC §11.6: the channel's latest news is not older than the
    fact behind the figure, or a difference is open) is not written: the listing is marked as a
    difference and waits for the merchant's 反映 or the channel's heal-after setting. A listing
    whose channel already holds the value agrees again: its difference is cleared."""
    writes, unchanged = [], []
    range_ = channel_range(channel)
    now = utcnow()
    for listing in listings:
        decision = push_decision(listing, range_, listing.last_confirmed_quantity)
        if decision is None:
            unchanged.append(listing)
            continue
        if not decision.push:
            if listing.difference:
                differences.note(listing, False, now)
            unchanged.append(listing)
            continue
        news_at = channel_news_at(listing.last_confirmed_quantity, as_utc(listing.last_confirmed_at),
                                  listing.last_pushed_quantity)
        if not may_raise(decision.quantity, listing.last_confirmed_quantity, difference_open=listing.difference,
                         news_at=news_at, fact_at=as_utc(listing.fact_at)):
            differences.note(listing, True, now)
            unchanged.append(listing)
            continue
        # The key names the fact and the expected channel quantity: a retry of the same write
        # replays (Shopify §7.4), while a retry after a lost compare-and-set (new expected) is
        # a new write, not an IDEMPOTENCY_KEY_PARAMETER_MISMATCH.
        fact = int(listing.fact_at.timestamp() * 1000) if listing.fact_at else 0
        key = f"sl-{listing.id}-{fact}-{listing.last_confirmed_quantity}"
        writes.append((listing, StockWrite(listing.identifier, decision.quantity,
                                           listing.last_confirmed_quantity, key)))
    return writes, unchanged


def _write_batch(client, writes: list[StockWrite]) -> list:
    """``client.write_stock``, waiting out a short rate-limit pause (a refused request was not
    applied, so sending it again is safe; Shopify's idempotency keys would replay it anyway)."""
    pauses = 0
    while True:
        try:
            return client.write_stock(writes)
        except TemporaryError as exc:
            pause = exc.retry_after
            if pauses == PAUSES or not exc.rate_limited or pause is None or pause > PAUSE_LIMIT:
                raise
            pauses += 1
            log.info("%s asks for a pause of %.2f s (rate limit); waiting", type(client).__name__, pause)
            time.sleep(pause)


def _push_absolute(channel: Channel, client, *, orders_checked: bool = False) -> int:
    write_intents.settle_by_reading_back(channel, client)  # what a crash left unknown, first
    write_intents.settle_pending(channel, client)  # accepted earlier, not yet applied (SPEC §11.9)
    listings = db.session.scalars(select(Listing).where(
        Listing.channel_id == channel.id, Listing.dirty.is_(True), Listing.sync_enabled.is_(True))
        .order_by(Listing.id)).all()
    if not listings:
        return 0
    seen = {listing.id: listing.fact_at for listing in listings}
    writes, unchanged = plan_writes(channel, listings)
    if not orders_checked and any(w.expected is None for _, w in writes):
        # SPEC §11.6: a figure written over an unknown channel value may undo the channel's own
        # sales, so its orders are read first. (A ColorMe increment or a Shopify compare-and-set
        # cannot: the channel applies it to what it holds, or refuses it as stale.) jobs.orders
        # imports this module, so it is imported here.
        from stocklink.jobs.orders import poll_before_raise
        if poll_before_raise(channel.id, client):
            return _push_absolute(db.session.get(Channel, channel.id), client, orders_checked=True)
    # Ids now: each batch's commit expires the objects, and reading an id back would cost a SELECT.
    write_ids = [listing.id for listing, _ in writes]
    unchanged_ids = [listing.id for listing in unchanged]
    done, stale_seen, lower_seen = 0, False, False
    batch_size = max(getattr(client, "max_batch", 50), 1)
    for start in range(0, len(writes), batch_size):
        batch, ids = writes[start:start + batch_size], write_ids[start:start + batch_size]
        intents = write_intents.record(channel.id, [(listing_id, write, seen[listing_id]) for (_, write), listing_id
                                                    in zip(batch, ids, strict=True)], client.write_mode)
        db.session.commit()  # the intent is durable before the request leaves; nothing is held meanwhile
        try:
            results = {r.identifier: r for r in _write_batch(client, [w for _, w in batch])}
        except PlatformError as exc:
            if not exc.outcome_unknown:
                write_intents.discard(intents)  # refused: nothing was applied
                db.session.commit()
            raise  # an ambiguous failure leaves the intents open: the next push reads back first
        now = utcnow()
        cleared = []
        for (listing, write), listing_id in zip(batch, ids, strict=True):
            result = results.get(write.identifier)
            if result is None:
                continue
            listing.last_pushed_quantity, listing.last_pushed_at = write.quantity, now
            if result.status == "ok":
                confirmed = result.confirmed if result.confirmed is not None else write.quantity
                listing.last_confirmed_quantity = confirmed
                listing.last_confirmed_at = now
                # The channel took a sale meanwhile, or applied something twice: a difference to
                # show, never a confirmation of what was pushed.
                differences.note(listing, confirmed != write.quantity, now)
                lower_seen = lower_seen or confirmed < write.quantity
                cleared.append(listing_id)
                done += 1
            elif result.status == "pending":
                listing.pending_ref = result.ref
                cleared.append(listing_id)
            elif result.status == "stale":
                # Compare-and-set lost to the channel's own sale: keep dirty, retry with the fresh value.
                # The fresh value is a read-back (news from the channel): the next round lowers
                # onto it, but raises above it only from a newer fact (plan_writes, SPEC §11.6),
                # and the channel's orders are read, so the sale it made is reserved here too.
                listing.last_confirmed_quantity = result.confirmed
                listing.last_confirmed_at = now
                stale_seen = True
                done += 1  # progress: the next round retries with the fresh value
            elif result.status == "unknown_item":
                # SPEC §11.8: an outcome for the merchant, not a retry.
                listing.link_problem = "unknown_item"
                cleared.append(listing_id)
                record_error(source="channel", level=8, kind="unknown_item", channel=channel, key="unknown_item",
                             params={"identifier": write.identifier}, detail=result.detail or "",
                             code=result.detail[:40] if result.detail else None)
        clear_dirty({lid: seen[lid] for lid in cleared})
        write_intents.discard(intents)  # answered and booked in one commit
        db.session.commit()
    clear_dirty({lid: seen[lid] for lid in unchanged_ids})  # after the channel calls: no lock held across them
    db.session.commit()
    if stale_seen:
        from stocklink.jobs.orders import enqueue_poll  # see above
        enqueue_poll(channel.id, again_if_running=True)
    elif lower_seen:
        # The channel holds less than was written: it sold something stocklink has not taken in
        # (SPEC §11.6). Its recent orders are read now, so the other channels stop offering it.
        from stocklink.jobs.orders import enqueue_recent_read  # see above
        enqueue_recent_read(channel.id)
    return done


def _push_deltas(channel: Channel, client) -> int:
    """NextEngine: upload the accumulated increase/decrease counts (seed 001), once each."""
    return push_deltas_with_report(channel, client)


@job
def push_channel(channel_id: int) -> str:
    """Push every dirty listing of one channel. Safe to run twice: a listing whose channel
    stock already equals the computed value is not written again.

    One push per channel at a time, under a lease (:mod:`stocklink.infra.leases`): a push killed
    mid-write frees the channel within 30 s. A push that finds the channel busy does not
    wait for it; it schedules itself for when the lease runs out, and frees the worker."""
    redis = get_redis()
    lock = redis.lock(LOCK_KEY.format(channel_id), timeout=LEASE_TTL, thread_local=False)
    if not lock.acquire(blocking=False):
        return f"busy: {_push_later(redis, channel_id)}"
    try:
        with Heartbeat(lock.reacquire, name=f"push of channel {channel_id}"):
            return _push_locked(channel_id)
    finally:
        try:
            lock.release()
        except LockError:
            pass


def _push_later(redis, channel_id: int) -> str:
    """Schedule one push for when the running one's lease ends (or it finishes and lets go)."""
    remaining = redis.pttl(LOCK_KEY.format(channel_id))
    delay = min(max(remaining / 1000 if remaining > 0 else 1.0, 1.0), LEASE_TTL)
    if not redis.set(LATER_KEY.format(channel_id), 1, nx=True, px=int(delay * 1000)):
        return "a later push is already scheduled"
    get_queue(PUSH).enqueue_in(timedelta(seconds=delay), push_channel, channel_id, job_timeout=300,
                               retry=RETRY, result_ttl=0, failure_ttl=7 * 86400)
    return f"pushed again in {delay:.0f} s"


def stop_for_auth(channel_id: int, exc: AuthError) -> str:
    """Level 9 (SPEC §6): record the error (which stops the channel) and mail it; commits. What a
    push or a read-back does when the channel refuses its credentials or its settings."""
    db.session.rollback()
    channel = db.session.get(Channel, channel_id)
    if isinstance(exc, InvalidChannelSettings):  # the field is named in the sentence, by its label
        key, params, detail = "channel_settings", {"field": exc.key}, exc.reason
    else:
        key, params, detail = "channel_auth", {}, str(exc)
    record_error(source="channel", level=9, kind="auth", channel=channel, code=exc.code, key=key, params=params,
                 detail=detail)
    queue_mail("level9", _l("[stocklink] Stopped syncing %(name)s (authentication error)", name=channel.name),
               "level9", channel=channel, error=str(exc))
    db.session.commit()
    return "stopped: auth"


def _push_locked(channel_id: int) -> str:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        return "no such channel"
    if not channel.enabled or channel.state != "active":
        return f"skipped: {channel.state}"
    try:
        client = make_channel_client(channel)
        total = 0
        for _ in range(MAX_ROUNDS):
            pushed = _push_deltas(channel, client) if PLATFORMS[channel.kind].delta else \
                _push_absolute(channel, client)
            total += pushed
            remaining = db.session.scalar(select(Listing.id).where(
                Listing.channel_id == channel.id, Listing.dirty.is_(True), Listing.sync_enabled.is_(True),
                Listing.link_problem.is_(None)).limit(1))
            if remaining is None or pushed == 0:
                break
    except AuthError as exc:
        return stop_for_auth(channel_id, exc)
    except PlatformError as exc:
        db.session.rollback()
        channel = db.session.get(Channel, channel_id)
        record = record_error(source="channel", level=8, kind="temporary", channel=channel, code=exc.code,
                              key="channel_temporary", detail=str(exc))
        if final_attempt():
            queue_mail("level8", _l("[stocklink] Stock updates to %(name)s keep failing", name=channel.name),
                       "level8", channel=channel, error=str(exc), occurrences=record.occurrences)
        db.session.commit()
        raise
    now = utcnow()
    if channel.last_sync_at is None or now - as_utc(channel.last_sync_at) >= SYNC_STAMP_EVERY:
        channel.last_sync_at = now
    resolve_temporary_errors(channel)  # writes only when there is an error to resolve
    db.session.commit()
    return f"pushed {total}"


@job
def sweep_dirty() -> int:
    """Every 15 s: enqueue a push for each active channel that still has dirty listings,
    asynchronous uploads waiting for their result (NextEngine ``que_id``, SPEC §11.9), or
    writes of unknown outcome to settle."""
    channel_ids = set(db.session.scalars(select(Listing.channel_id).join(Channel).where(
        or_(Listing.dirty.is_(True), Listing.pending_ref.is_not(None)),
        Channel.state == "active", Channel.enabled.is_(True)).distinct()))
    channel_ids |= set(db.session.scalars(select(WriteIntent.channel_id).join(Channel).where(  # a crash's leftovers
        WriteIntent.status == "open", Channel.state == "active", Channel.enabled.is_(True)).distinct()))
    channel_ids = sorted(channel_ids)
    for channel_id in channel_ids:
        enqueue_push(channel_id)
    if write_intents.prune_settled():
        db.session.commit()
    return len(channel_ids)
