"""Web order jobs (SPEC §5): polling each channel's orders, and registering them in Smaregi.

- :func:`poll_due_channels` (cron, every 5 s) enqueues :func:`poll_orders` for each active
  channel that reads orders and whose last poll is older than its interval (3 minutes, 1 with
  the channel's speed-up setting, seed 002), or that has an order webhook still open. A webhook
  stored by the web endpoint has the order it names read at once (:func:`take_webhooks`): orders
  pushed by a channel arrive in seconds, read as a poll reads them. A poll holds a lease per channel, so two never
  overlap, and moves the channel's cursor only once every page was read: a poll that fails
  half-way is read again from the same place (its orders, read twice, are the same orders).
- :func:`register_order` settles an order's registrations in order under a lease per order
  (:mod:`stocklink.services.order_registration`); :func:`sweep_registrations` (cron) re-enqueues
  those still pending or failed whose retry time has come, so none waits on a lost job.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from rq import Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import or_, select

from stocklink.domain.orders import (
    READ_ONE_BY_ONE,
    Held,
    next_cursor,
    orders_to_read,
    poll_interval_s,
    read_since,
    recent_since,
)
from stocklink.infra.after_commit import after_commit
from stocklink.infra.extensions import db
from stocklink.infra.leases import lease
from stocklink.infra.queues import ORDERS, get_queue, get_redis
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push, stop_for_auth
from stocklink.models import Channel, ErrorRecord, Order, Registration
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.base import AuthError, TemporaryError
from stocklink.platforms.interfaces import OrderChangeLister, OrderReader, SingleOrderReader
from stocklink.services import channel_webhooks, order_registration
from stocklink.services.channel_clients import make_channel_client, platform_of, reads_orders
from stocklink.services.incidents import record_error
from stocklink.services.order_intake import Taken, take_orders
from stocklink.services.outbox import queue_mail

log = logging.getLogger(__name__)

POLL_LOCK = "stocklink:orders-poll:{}"
AGAIN_KEY = "stocklink:orders-poll-again:{}"  # set by news that came while a poll ran
# A channel whose order webhook is still open after this long is polled by the sweep.
WEBHOOK_GRACE = timedelta(seconds=20)
# poll_due_channels runs every 5 s (cron_config): a poll due within this is started now. Polls of a
# 1-minute channel then begin 55 s apart, so an order placed just after one is taken in, reserved
# and pushed within the minute the setting promises, not a minute plus the work.
TICK_SLACK = timedelta(seconds=8)
REGISTER_LOCK = "stocklink:order-registration:{}"
# Background reads take this share of a channel's documented request rate; pushes keep the rest.
READ_SHARE = 0.5
# A registration's retries: soon at first, then every half hour for as long as it takes.
BACKOFF = (10, 30, 60, 180, 600, 1800)
# Orders registered by one job when a read brings several (enqueue_registrations).
REGISTER_BATCH = 20
# RQ options of every registration job: a failed one is kept a week for the operator to read.
REGISTER_JOB = {"job_timeout": 300, "result_ttl": 0, "failure_ttl": 7 * 86400}
# RQ options of a read of a channel's recent orders (enqueue_recent_read), at once or later.
RECENT_READ_JOB = {"job_timeout": 300, "result_ttl": 0, "failure_ttl": 86400}


@job
def poll_due_channels() -> int:
    """Cron: enqueue a poll of each active order-reading channel whose interval has passed."""
    now = utcnow()
    waiting = set(channel_webhooks.channels_waiting(now - WEBHOOK_GRACE))
    count = 0
    for channel in db.session.scalars(select(Channel).where(Channel.enabled.is_(True), Channel.state == "active")
                                      .order_by(Channel.id)):
        if not reads_orders(channel):
            continue
        interval = timedelta(seconds=poll_interval_s(channel.speed_up, channel.poll_interval_s))
        # Due a tick early rather than a tick late: polls then come every interval on average.
        due = channel.orders_polled_at is None or now - as_utc(channel.orders_polled_at) >= interval - TICK_SLACK
        if not due and channel.id not in waiting:
            continue
        if enqueue_poll(channel.id):
            count += 1
    return count


def enqueue_poll(channel_id: int, *, again_if_running: bool = False) -> bool:
    """One queued poll per channel at most (a unique job id); False when one is already queued.

    ``again_if_running``: news of an order (a webhook) while a poll runs; that poll may have read
    before the order was saved, so it polls once more when it ends."""
    if again_if_running:
        get_redis().set(AGAIN_KEY.format(channel_id), "1", ex=600)
    return _enqueue_unique(f"orders-poll-{channel_id}", poll_orders, channel_id, job_timeout=600, result_ttl=0,
                           failure_ttl=86400)


def _enqueue_unique(job_id: str, func, *args, **options) -> bool:
    """Enqueue under a unique job id; False when that job is queued or running. A job hash left
    behind by a failed run (kept for ``failure_ttl``) would refuse every later enqueue: it is
    deleted and the job queued again, as :func:`stocklink.jobs.push.enqueue_push` does."""
    queue = get_queue(ORDERS)
    for _attempt in range(2):
        try:
            queue.enqueue(func, *args, job_id=job_id, unique=True, **options)
            return True
        except DuplicateJobError:
            pass
        try:
            existing = Job.fetch(job_id, connection=queue.connection)
            if existing.get_status() in ("queued", "scheduled", "deferred", "started"):
                return False
            existing.delete()
        except (NoSuchJobError, InvalidJobOperation):  # it finished and vanished between the two calls
            pass
    return False


@job
def poll_orders(channel_id: int) -> str:
    """Read the channel's orders changed since its cursor (less the overlap) and take them in."""
    redis = get_redis()
    with lease(redis, POLL_LOCK.format(channel_id), name=f"order poll of channel {channel_id}") as held:
        if not held:
            return "busy"
        results = []
        for _round in range(3):
            redis.delete(AGAIN_KEY.format(channel_id))
            results.append(_poll_locked(channel_id))
            if not redis.exists(AGAIN_KEY.format(channel_id)):
                break
        return "; ".join(results)


def enqueue_recent_read(channel_id: int) -> bool:
    """A push found the channel lower than what it wrote (SPEC §11.6: the channel sold something
    not taken in yet): its orders changed since the previous read are read now, not at the next
    poll, so the other channels stop offering what it sold. One queued at a time; none with the
    ``ORDER_NEWS_READS`` setting off (the poll takes the order in)."""
    if not current_app.config.get("ORDER_NEWS_READS", True):
        return False
    return _enqueue_unique(f"orders-recent-{channel_id}", read_recent_orders, channel_id, **RECENT_READ_JOB)


# A channel that keeps showing less than stocklink's total (its own edit, not a sale) has its recent
# orders read no more often than this: one or two requests every 5 s at most.
RECENT_READ_EVERY = timedelta(seconds=5)
RECENT_LATER_KEY = "stocklink:orders-recent-later:{}"


@job
def read_recent_orders(channel_id: int) -> str:
    """Take in the orders the channel changed since its previous read (a poll's, or one before a
    raise), as the read before a raise does: the cursor and the poll schedule stay where they are.
    Within :data:`RECENT_READ_EVERY` of the previous read it runs again once that has passed
    instead. Safe to run twice, and beside a poll (an order read twice is the same order)."""
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        return "no such channel"
    last = last_read_at(channel)
    wait = (last + RECENT_READ_EVERY - utcnow()).total_seconds() if last is not None else 0.0
    if wait > 0:
        if not get_redis().set(RECENT_LATER_KEY.format(channel_id), 1, nx=True, px=int(wait * 1000) + 1):
            return "a later read is already scheduled"
        get_queue(ORDERS).enqueue_in(timedelta(seconds=wait), read_recent_orders, channel_id, **RECENT_READ_JOB)
        return f"read again in {wait:.1f} s"
    return _poll_locked(channel_id, recent=True)


# Orders read this recently count as read "up to now" for a write over an unknown value (SPEC
# §11.6): at a busy shop that is one extra read per channel every 10 s at most, of the orders
# changed since the read before (recent_since), not of a poll's whole overlap window.
FRESH_FOR_RAISE = timedelta(seconds=10)
# When the last complete read of a channel's orders began (a poll's or one before a raise), as
# an ISO moment; lost with Redis, the next read before a raise reads a poll's window instead.
READ_MARK = "stocklink:orders-read-at:{}"


def poll_before_raise(channel_id: int, client) -> bool:
    """SPEC §11.6: before a push writes a figure over a channel value it does not know (which may
    raise it), the orders the channel has taken up to that moment are taken in: a figure computed
    without them would undo the channel's own sales. Reads the orders changed since shortly before
    the previous read began, unless that was less than :data:`FRESH_FOR_RAISE` ago; True when it
    read, and the caller plans its writes again. Raises :class:`AuthError`."""
    channel = db.session.get(Channel, channel_id)
    if channel is None or not isinstance(client, OrderReader):
        return False
    last = last_read_at(channel)
    if last is not None and utcnow() - last < FRESH_FOR_RAISE:
        return False
    db.session.commit()
    _poll_locked(channel_id, client=client, stop_on_auth=False, recent=True)
    return True


def last_read_at(channel: Channel):
    """When the latest complete read of the channel's orders began (None: never, or not known)."""
    marks = [mark for mark in (as_utc(channel.orders_polled_at), _read_mark(channel.id)) if mark is not None]
    return max(marks, default=None)


def _read_mark(channel_id: int) -> datetime | None:
    """The READ_MARK of the channel; None when Redis has none (or an unreadable one)."""
    raw = get_redis().get(READ_MARK.format(channel_id))
    try:
        return as_utc(datetime.fromisoformat(raw.decode())) if raw else None
    except ValueError:
        return None


def _poll_locked(channel_id: int, *, client=None, stop_on_auth: bool = True, recent: bool = False) -> str:
    """Read and take in the channel's orders: a poll reads from the cursor less the overlap and
    moves the cursor; ``recent`` (before a raise) reads only what changed since the previous
    read and leaves the cursor and the poll schedule alone."""
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        return "no such channel"
    if not channel.enabled or channel.state != "active":
        return f"skipped: {channel.state}"
    client = client or make_channel_client(channel)
    if not isinstance(client, OrderReader):
        return "this channel has no orders to read"
    polled_from = utcnow()
    if channel.orders_start_at is None:
        # 初期受注取得 not set: order sync starts now, and orders placed before it are never deducted
        # (the merchant moves the starting point back on the channel's order settings).
        channel.orders_start_at = polled_from
        db.session.commit()
    cursor, start = as_utc(channel.orders_cursor_at), as_utc(channel.orders_start_at)
    since = recent_since(last_read_at(channel), cursor, start, polled_from) if recent else \
        read_since(cursor, start, polled_from)
    pace = 1.0 / (platform_of(channel).rate_per_s * READ_SHARE)
    db.session.rollback()  # no transaction open across the HTTP reads
    try:
        orders = _read_changed(channel_id, client, since, pace, same_second=not recent)
    except AuthError as exc:
        if not stop_on_auth:
            raise
        return stop_for_auth(channel_id, exc)
    channel = db.session.get(Channel, channel_id)
    taken = take_orders(channel, orders, read_at=polled_from)
    if not recent:
        channel.orders_cursor_at = next_cursor(as_utc(channel.orders_cursor_at), polled_from)
        channel.orders_polled_at = polled_from
        channel_webhooks.mark_processed(channel_id, polled_from)
    follow_up(taken)
    db.session.commit()
    _mark_read(channel_id, polled_from)
    return f"read {len(orders)}: {taken.new} new, {taken.revised} revised, {taken.cancelled} cancelled, " \
           f"{taken.ignored} ignored"


def _read_changed(channel_id: int, client, since: datetime, pace: float, *, same_second: bool = True) -> list:
    """The orders changed since ``since``, whole. A channel that lists its changes cheaply
    (:class:`OrderChangeLister`) has only those not taken in yet read (:func:`orders_to_read`,
    ``same_second`` as there): one by one when they are few, else its window from the oldest of
    them. Opens no transaction across the HTTP calls."""
    if not isinstance(client, OrderChangeLister) or not isinstance(client, SingleOrderReader):
        return list(client.read_orders(since, pace_s=pace))
    changes = list(client.list_order_changes(since, pace_s=pace))
    held: dict[str, Held] = {}
    ids = sorted({order_id for order_id, _ in changes})
    for start in range(0, len(ids), 500):
        for order_id, changed_at, read_at in db.session.execute(
                select(Order.channel_order_id, Order.channel_updated_at, Order.channel_read_at).where(
                    Order.channel_id == channel_id, Order.channel_order_id.in_(ids[start:start + 500]))):
            held[order_id] = Held(as_utc(changed_at), as_utc(read_at))
    db.session.rollback()
    wanted = orders_to_read([(order_id, as_utc(at)) for order_id, at in changes], held, same_second=same_second)
    if len(wanted) > READ_ONE_BY_ONE:
        wanted_ids = set(wanted)
        oldest = min(as_utc(at) for order_id, at in changes if order_id in wanted_ids)
        return list(client.read_orders(oldest, pace_s=pace))
    orders = []
    for order_id in wanted:
        order = client.read_order(order_id)
        if order is not None:
            orders.append(order)
    return orders


def _mark_read(channel_id: int, began: datetime) -> None:
    """Record that every order changed before ``began`` is taken in (never moving the mark back)."""
    mark = _read_mark(channel_id)
    if mark is None or mark < began:
        get_redis().set(READ_MARK.format(channel_id), began.isoformat(), ex=86400)


def enqueue_webhooks(channel_id: int) -> bool:
    """Take in the orders the channel's open webhooks name: one job per channel at a time; one
    queued meanwhile finds every delivery stored before it runs."""
    return _enqueue_unique(f"orders-webhooks-{channel_id}", take_webhooks, channel_id, job_timeout=300,
                           result_ttl=0, failure_ttl=86400)


@job
def take_webhooks(channel_id: int) -> str:
    """Read each order the channel's open webhooks name, one query each, and take it in; a channel
    whose client reads no single order is polled instead. A delivery whose order cannot be read now
    stays open: the poll sweep takes it within a minute. Safe to run twice (an order read again is
    the same order)."""
    channel = db.session.get(Channel, channel_id)
    if channel is None or not channel.enabled or channel.state != "active":
        return "skipped"
    client = make_channel_client(channel)
    if not isinstance(client, SingleOrderReader):
        enqueue_poll(channel_id, again_if_running=True)
        return "polled instead"
    deliveries = channel_webhooks.open_deliveries(channel_id)
    by_order: dict[str, list[int]] = {}
    for delivery in deliveries:
        by_order.setdefault(delivery.order_id or "", []).append(delivery.id)
    db.session.rollback()  # no transaction open across the HTTP reads
    orders, taken_ids, read_at = [], [], utcnow()
    try:
        for order_id, ids in by_order.items():
            order = client.read_order(order_id) if order_id else None
            if order is not None:
                orders.append(order)
            taken_ids += ids  # an order the channel no longer has: nothing to take
    except AuthError as exc:
        return stop_for_auth(channel_id, exc)
    except TemporaryError:
        if not orders:
            raise  # RQ retries; the sweep polls meanwhile
    channel = db.session.get(Channel, channel_id)
    taken = take_orders(channel, orders, read_at=read_at)
    channel_webhooks.mark_taken(taken_ids)
    follow_up(taken)
    db.session.commit()
    return f"read {len(orders)} order(s) of {len(deliveries)} webhook(s): {taken.new} new, {taken.revised} revised, " \
           f"{taken.cancelled} cancelled"


def follow_up(taken: Taken) -> None:
    """Once the caller's transaction commits: push every channel with work, send the registrations."""
    channel_ids, order_ids = sorted(taken.channel_ids), sorted(set(db.session.scalars(
        select(Registration.order_id).where(Registration.id.in_(taken.registration_ids))))) \
        if taken.registration_ids else []

    def enqueue() -> None:
        for cid in channel_ids:
            enqueue_push(cid)
        enqueue_registrations(order_ids)
    after_commit(enqueue)


def enqueue_registration(order_id: int) -> bool:
    return _enqueue_unique(f"order-register-{order_id}", register_order, order_id, **REGISTER_JOB,
                           retry=Retry(max=len(BACKOFF), interval=list(BACKOFF)))


def enqueue_registrations(order_ids: list[int]) -> None:
    """Register a read's new orders: one job for one order, jobs of :data:`REGISTER_BATCH` for
    more. A poll can bring a hundred orders at once; a job each (≈0.1 s of RQ's own bookkeeping
    apiece) would queue an order a webhook brings meanwhile behind ten seconds of them."""
    if len(order_ids) == 1:
        enqueue_registration(order_ids[0])
        return
    for start in range(0, len(order_ids), REGISTER_BATCH):
        get_queue(ORDERS).enqueue(register_orders, order_ids[start:start + REGISTER_BATCH], **REGISTER_JOB)


def _registrations_stopped() -> bool:
    """Level 9 (SPEC §6): Smaregi refused the sale credentials; nothing is sent until the
    merchant has fixed them and cleared the error."""
    return db.session.scalar(select(ErrorRecord.id).where(
        ErrorRecord.source == "registration", ErrorRecord.level >= 9, ErrorRecord.resolved_at.is_(None))) is not None


@job
def register_order(order_id: int) -> str:
    """Settle the order's registrations, oldest first, under the order's lease. Raises what
    failed, recorded first with its retry time (RQ retries the job with :data:`BACKOFF`)."""
    return _settle_order(order_id)


@job
def register_orders(order_ids: list[int]) -> str:
    """Settle several orders' registrations, one after another, each as :func:`register_order`
    does. One that fails does not hold up the rest: its failure is recorded with its retry time,
    and :func:`sweep_registrations` sends it again when that comes."""
    outcomes = []
    for order_id in order_ids:
        try:
            outcomes.append(_settle_order(order_id))
        except Exception as exc:  # recorded by _settle_order; the sweep retries it
            db.session.rollback()
            log.warning("registration of order %s failed (%s: %s); retried by the sweep", order_id,
                        type(exc).__name__, exc)
            outcomes.append(f"failed: {type(exc).__name__}")
    return f"{len(order_ids)} order(s): " + "; ".join(outcomes)


def _settle_order(order_id: int) -> str:
    with lease(get_redis(), REGISTER_LOCK.format(order_id), name=f"registration of order {order_id}") as held:
        if not held:
            return "busy"
        if _registrations_stopped():
            return "stopped: registration credentials refused"
        outcomes = []
        client = None
        for registration in order_registration.pending_of(order_id):
            if not order_registration.count_attempt(registration):
                continue
            client = client or order_registration.registration_client()
            try:
                settled = order_registration.settle(registration, client)
            except AuthError as exc:
                db.session.rollback()
                _stop_registrations(registration, exc)
                return "stopped: auth"
            except Exception as exc:
                db.session.rollback()
                final = registration.attempts > len(BACKOFF)
                delay = BACKOFF[min(registration.attempts - 1, len(BACKOFF) - 1)]
                order_registration.record_failure(
                    registration, f"{type(exc).__name__}: {exc}", final=final or not isinstance(exc, TemporaryError),
                    retry_at=utcnow() + timedelta(seconds=delay))
                raise
            outcomes.append(settled.outcome)
            for cid in sorted(settled.channel_ids):
                enqueue_push(cid)
        return "; ".join(outcomes) or "nothing to settle"


def _stop_registrations(registration: Registration, exc: AuthError) -> None:
    order_registration.record_failure(registration, f"credentials refused: {exc}", final=True)
    record = record_error(source="registration", level=9, kind="auth", key="registration_auth", detail=str(exc),
                          code=getattr(exc, "code", None))
    if record.occurrences == 1:
        queue_mail("level9", _l("[stocklink] Web orders are not being registered in Smaregi (authentication error)"),
                   "registration_auth", error=str(exc))
    db.session.commit()


@job
def sweep_registrations() -> int:
    """Cron: re-enqueue each order with a registration pending or failed whose retry time has
    come (a job lost with Redis, retries exhausted): registrations are retried until they succeed
    or the merchant resolves them."""
    if _registrations_stopped():
        return 0
    now = utcnow()
    order_ids = sorted(set(db.session.scalars(select(Registration.order_id).where(
        Registration.state.in_(("pending", "failed")),
        or_(Registration.next_attempt_at.is_(None), Registration.next_attempt_at <= now)))))
    return sum(1 for order_id in order_ids if enqueue_registration(order_id))
