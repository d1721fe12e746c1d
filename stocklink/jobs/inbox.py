"""Draining the Smaregi inbox (SPEC §4 step 2, §11.1).

The webhook stores a row and *wakes* the inbox; it does not give every notification a job
of its own. Waking is one Redis ``SET NX``: while a drain is waiting in the queue the key
is set and nothing more is queued, and a drain deletes the key before it looks for rows,
so a row committed before a failed ``SET NX`` is always seen by the drain that was waiting.

A drain claims up to :data:`BATCH` waiting rows with one conditional UPDATE (two drains
never hold the same row), applies them together with one stock read from Smaregi
(:func:`stocklink.services.smaregi_stock.apply_batch`), and repeats until none is left. Running a drain twice, or two at
once, applies nothing twice: a row is applied only by the drain whose claim moved it to
``processing``, in the same transaction that marks it ``done``.

When Smaregi fails, the rows go back as ``failed`` with a retry time, and Smaregi is left
alone for a backoff that grows with consecutive failures (2 s … 1 h); a drain is scheduled
for when it ends. The sweeper (every 15 s) hands back rows whose drain vanished (its lease ran
out) and wakes the inbox for anything left waiting (a Redis outage, a dead worker).

Why not one RQ job per row, as SPEC §11.1 suggests: the webhook would pay an enqueue per
notification on top of its INSERT, and in a burst most of those jobs would find their row
already applied by a batch. The properties §11.1 asks for — a row is processed once, a lost
job is found by a sweeper — hold here through the claim and the sweeper instead.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from rq import Retry
from sqlalchemy import and_, func, or_, select, update

from stocklink.infra.extensions import db
from stocklink.infra.leases import LEASE_TTL, Heartbeat
from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.platforms.base import AuthError, PlatformError
from stocklink.platforms.smaregi.webhook import parse_legacy, parse_platform
from stocklink.services.incidents import record_error, resolve_temporary_errors
from stocklink.services.outbox import queue_mail
from stocklink.services.smaregi_stock import apply_batch, refresh_products

log = logging.getLogger(__name__)

BATCH = 50  # notifications applied together, with one stock read from Smaregi
WAKE_KEY = "stocklink:inbox-wake"
WAKE_TTL = 30  # seconds; a wake whose drain was lost is renewed after this (or by the sweeper)
BACKOFF_KEY = "stocklink:smaregi-backoff"  # set while Smaregi is left alone after a failure
FAILURES_KEY = "stocklink:smaregi-failures"  # consecutive failed drains
BACKOFF = (2, 10, 30, 60, 300, 600, 1800, 3600)  # seconds, by consecutive failure
ALERT_AFTER = len(BACKOFF)  # a level 8 failure repeated this often is mailed (SPEC §7)
# A drain holds its rows under a lease renewed by its heartbeat: rows whose lease ran out
# (the drain was killed) are taken by the next drain, or handed back by the sweeper.
CLAIM_TTL = timedelta(seconds=LEASE_TTL)
LINGER = 0.1  # seconds a busy drain waits for more rows after a small batch
DRAIN_BUDGET = 50.0  # seconds a drain runs before it hands over to a fresh one
SWEEP_AFTER = timedelta(seconds=30)  # a waiting row older than this gets the sweeper's wake
JOB_OPTIONS = {"job_timeout": 120, "result_ttl": 0, "failure_ttl": 7 * 86400}


# -- waking ------------------------------------------------------------------------------------
def enqueue_drain(delay: float | None = None) -> None:
    queue = get_queue(WEBHOOKS)
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), process_inbox, **JOB_OPTIONS)
    else:
        queue.enqueue(process_inbox, **JOB_OPTIONS)


def wake_inbox(redis=None, force: bool = False) -> bool:
    """Make sure a drain will look at the inbox after this moment; returns whether one was queued.

    Call it after the row is committed. One Redis command unless a drain must be queued;
    ``redis`` is the client to use (the webhook passes one that gives up within ~40 ms).
    ``force`` queues a drain even though the wake is set: after a wake that timed out, whose
    ``SET NX`` a stalled Redis may still apply when it resumes, with no drain behind it.
    """
    redis = redis or get_redis()
    if not redis.set(WAKE_KEY, 1, nx=not force, ex=WAKE_TTL) and not force:
        return False
    try:
        get_queue(WEBHOOKS, connection=redis).enqueue(process_inbox, **JOB_OPTIONS)
    except Exception:
        redis.delete(WAKE_KEY)  # let the next notification (or the sweeper) try again
        raise
    return True


# -- draining ----------------------------------------------------------------------------------
def notification_of(row: SmaregiInbox):
    """Rebuild the parsed notification from what the webhook stored."""
    if row.generation == "legacy":
        payload = row.payload
        form = {"params": json.dumps(payload["params"], ensure_ascii=False), "proc_name": payload.get("proc_name")}
        return parse_legacy(form)
    headers = {"Smaregi-Event": row.event, "Smaregi-Event-Id": row.dedupe_key.rsplit(":", 1)[-1]}
    return parse_platform(headers, json.dumps(row.payload).encode())


def _failed_and_due(now):
    return and_(SmaregiInbox.status == "failed",
                or_(SmaregiInbox.next_attempt_at.is_(None), SmaregiInbox.next_attempt_at <= now))


def _lease_ran_out(now):
    return and_(SmaregiInbox.status == "processing", SmaregiInbox.claimed_at < now - CLAIM_TTL)


def _ready(now):
    return or_(SmaregiInbox.status == "received", _failed_and_due(now), _lease_ran_out(now))


def _backoff(failures: int) -> int:
    """Seconds to wait after the ``failures``-th failure in a row (the last step repeats)."""
    return BACKOFF[min(failures, len(BACKOFF)) - 1]


def claim_batch(limit: int = BATCH, token: str | None = None) -> list[int]:
    """Move up to ``limit`` waiting rows (oldest first) to ``processing`` for the drain
    ``token``; their ids. Rows whose holder's lease ran out are taken over too.

    The UPDATE re-checks the status, and PostgreSQL skips rows another drain has locked,
    so two drains never claim the same row.
    """
    now = utcnow()
    # A CTE, evaluated once: PostgreSQL may re-run an ``IN (SELECT … LIMIT … SKIP LOCKED)``
    # subquery per row and so claim more than ``limit`` rows.
    waiting = (select(SmaregiInbox.id).where(_ready(now)).order_by(SmaregiInbox.id).limit(limit)
               .with_for_update(skip_locked=True).cte("waiting"))
    if db.engine.dialect.name == "postgresql":
        waiting = waiting.prefix_with("MATERIALIZED")
    ids = db.session.scalars(
        update(SmaregiInbox).where(SmaregiInbox.id == waiting.c.id, _ready(now))
        .values(status="processing", claimed_at=now, claimed_by=token, attempts=SmaregiInbox.attempts + 1)
        .returning(SmaregiInbox.id).execution_options(synchronize_session=False)).all()
    db.session.commit()
    return sorted(ids)


@job
def process_inbox() -> str:
    """Apply every waiting notification, :data:`BATCH` at a time. Safe to run twice or at once.

    While it runs it holds the wake, so notifications arriving meanwhile queue no second
    drain; it takes them in its next batch. Under load it lingers :data:`LINGER` seconds
    after a batch smaller than :data:`BATCH`, so the next one is bigger (one stock read and
    one write per product for more notifications); a lone sale is applied at once.
    """
    redis = get_redis()
    backoff_ms = redis.pttl(BACKOFF_KEY)
    if backoff_ms > 0:  # the drain scheduled by the failure comes when it ends
        redis.set(WAKE_KEY, 1, px=backoff_ms)
        return "smaregi backing off"
    try:
        return _drain(redis)
    except BaseException:
        redis.delete(WAKE_KEY)  # this drain is gone: the next notification must queue another
        raise


def _renewer(engine, token: str):
    """The heartbeat's renewal of a drain's claims: one UPDATE on a connection of its own."""
    table = SmaregiInbox.__table__

    def renew() -> None:
        with engine.begin() as conn:
            conn.execute(update(table).where(table.c.claimed_by == token, table.c.status == "processing")
                         .values(claimed_at=utcnow()))
    return renew


def _drain(redis) -> str:
    token = uuid.uuid4().hex
    with Heartbeat(_renewer(db.engine, token), name="inbox drain"):
        return _drain_held(redis, token)


def _drain_held(redis, token: str) -> str:
    started, applied, channels = time.monotonic(), 0, set()
    while True:
        redis.set(WAKE_KEY, 1, ex=WAKE_TTL)  # this drain will look again: nobody else needs to
        batch = claim_batch(token=token)
        if not batch:
            redis.delete(WAKE_KEY)  # from now on a new row queues a drain; one last look for rows
            batch = claim_batch(token=token)  # stored before the delete, whose wake this drain swallowed
            if not batch:
                break
        outcome = _apply(batch, token)
        if outcome is None:  # Smaregi failed: the rows wait for the backoff
            break
        applied += len(batch)
        channels |= outcome
        for channel_id in sorted(outcome):  # coalesced: a push already queued takes these too
            try:
                enqueue_push(channel_id)
            except Exception:  # the listings stay dirty: the 15 s sweep pushes them
                log.exception("could not queue the push of channel %s", channel_id)
        if time.monotonic() - started > DRAIN_BUDGET:
            enqueue_drain()  # a fresh job for the rest; the worker can serve other queues meanwhile
            break
        if len(batch) < BATCH and applied > len(batch):
            time.sleep(LINGER)
    return f"done {applied}, {len(channels)} channel(s) to push"


class LeaseLost(Exception):
    """The drain's claim on a row ran out and another drain took it: this one applies nothing."""


def _still_held(batch: list[int], token: str | None) -> None:
    """In the applying transaction: let go of the claims, or raise :class:`LeaseLost` if one is
    no longer this drain's (its lease ran out while it was stalled, and another drain took it)."""
    released = db.session.execute(
        update(SmaregiInbox).where(SmaregiInbox.id.in_(batch), SmaregiInbox.claimed_by == token)
        .values(claimed_by=None).execution_options(synchronize_session=False)).rowcount
    if token is not None and released != len(batch):
        raise LeaseLost(f"{len(batch) - released} of {len(batch)} inbox row(s) were taken over")


def _apply(batch: list[int], token: str | None = None) -> set[int] | None:
    """Apply the claimed rows in one transaction; returns the channels to push, or None when
    Smaregi failed. A row that fails for another reason is set aside alone to retry."""
    rows = db.session.scalars(select(SmaregiInbox).where(SmaregiInbox.id.in_(batch))
                              .order_by(SmaregiInbox.id)).all()
    try:
        channels = apply_batch(rows, {row.id: notification_of(row) for row in rows})
        resolve_temporary_errors(source="smaregi")  # Smaregi answers again (SPEC §6: shown until it clears)
        _still_held(batch, token)
        db.session.commit()
    except LeaseLost as exc:
        db.session.rollback()
        log.warning("a drain's lease ran out while it applied a batch; its new holder applies it (%s)", exc)
        return set()
    except PlatformError as exc:
        db.session.rollback()
        _smaregi_failed(batch, exc)
        return None
    except Exception as exc:  # not Smaregi: find the row that causes it, let the others through
        db.session.rollback()
        if len(batch) == 1:
            log.exception("inbox row %s could not be applied", batch[0])
            _set_aside(batch[0], exc)
            return set()
        log.warning("a batch of %d inbox rows failed (%s: %s); applying them one by one",
                    len(batch), type(exc).__name__, exc)
        channels = set()
        for row_id in batch:
            outcome = _apply([row_id], token)
            if outcome is None:
                _give_back([other for other in batch if other > row_id])
                return None
            channels |= outcome
        return channels
    get_redis().delete(FAILURES_KEY)
    return channels


def _give_back(ids: list[int]) -> None:
    """Rows claimed but not tried: waiting again, as they were."""
    if ids:
        db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_(ids), SmaregiInbox.status == "processing")
                           .values(status="received", claimed_at=None, claimed_by=None,
                                   attempts=SmaregiInbox.attempts - 1)
                           .execution_options(synchronize_session=False))
        db.session.commit()


def _retry_later(ids: list[int], error: str, delay: float) -> None:
    db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_(ids), SmaregiInbox.status == "processing")
                       .values(status="failed", error=error[:2000], claimed_at=None, claimed_by=None,
                               next_attempt_at=utcnow() + timedelta(seconds=delay))
                       .execution_options(synchronize_session=False))


def _smaregi_failed(batch: list[int], exc: PlatformError) -> None:
    """Level 9 (auth) or 8 (anything else): record, mail as SPEC §6/§7 say, back off."""
    redis = get_redis()
    failures = int(redis.incr(FAILURES_KEY))
    delay = _backoff(failures)
    level = 9 if isinstance(exc, AuthError) else 8
    _retry_later(batch, f"{type(exc).__name__}: {exc}", delay)
    record = record_error(source="smaregi", level=level, kind="auth" if level >= 9 else "temporary",
                          key="smaregi_auth" if level >= 9 else "smaregi_unavailable", detail=str(exc),
                          code=getattr(exc, "code", None))
    # Level 9 is mailed when it first appears, level 8 once it has failed ALERT_AFTER times in a row.
    if (level >= 9 and record.occurrences == 1) or (level < 9 and failures == ALERT_AFTER):
        queue_mail("level9" if level >= 9 else "level8", _l("[stocklink] Could not read the stock from Smaregi"),
                   "smaregi_failure", error=str(exc), level=level)
    db.session.commit()
    redis.set(BACKOFF_KEY, 1, px=int(delay * 1000))
    enqueue_drain(delay=delay)
    log.warning("Smaregi failed (%s); %d notification(s) retried in %s s", exc, len(batch), delay)


def _set_aside(row_id: int, exc: Exception) -> None:
    row = db.session.get(SmaregiInbox, row_id)
    delay = _backoff(row.attempts)
    _retry_later([row_id], f"{type(exc).__name__}: {exc}", delay)
    record_error(source="smaregi", level=8, kind="temporary", key="inbox_row_failed", params={"row": row_id},
                 detail=type(exc).__name__)
    db.session.commit()


def retry_now() -> None:
    """New Smaregi credentials were saved: stop backing off and retry failed rows at once."""
    db.session.execute(update(SmaregiInbox).where(SmaregiInbox.status == "failed")
                       .values(next_attempt_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    try:
        get_redis().delete(BACKOFF_KEY, FAILURES_KEY)
        wake_inbox()
    except Exception:  # the rows are due; the sweeper wakes the inbox once Redis answers
        log.warning("could not wake the inbox after new Smaregi settings; the sweeper will")


@job
def sweep_inbox() -> int:
    """Take back rows held by a drain that vanished, and wake the inbox for rows left waiting.

    Returns how many rows were waiting (0: nothing to do)."""
    now = utcnow()
    taken_back = db.session.execute(update(SmaregiInbox).where(_lease_ran_out(now))
        .values(status="received", claimed_at=None, claimed_by=None)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if taken_back:
        log.warning("took back %d inbox row(s) from a drain that stopped", taken_back)
    waiting = db.session.scalar(select(func.count()).select_from(SmaregiInbox).where(or_(
        and_(SmaregiInbox.status == "received", SmaregiInbox.received_at < now - SWEEP_AFTER),
        _failed_and_due(now))))
    if waiting and get_redis().pttl(BACKOFF_KEY) <= 0:
        wake_inbox()
    return waiting or 0


def enqueue_refresh(smaregi_ids: list[str]) -> None:
    get_queue(WEBHOOKS).enqueue(refresh_stock, list(smaregi_ids), job_timeout=300,
                                retry=Retry(max=8, interval=list(BACKOFF)), failure_ttl=7 * 86400)


@job
def refresh_stock(smaregi_ids: list[str]) -> str:
    """Re-read these products from Smaregi and push them (confirmation queue "adjust")."""
    channels = refresh_products(smaregi_ids, cause="merchant:release_adjust")
    db.session.commit()
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return f"refreshed {len(smaregi_ids)}"
