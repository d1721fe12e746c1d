"""Processing the Smaregi inbox (SPEC §4 step 2, §11.1)."""
from __future__ import annotations

import json
from datetime import timedelta

from rq import Retry
from rq.exceptions import DuplicateJobError
from sqlalchemy import select, update

from stocklink.errors import final_attempt, record_error, resolve_temporary_errors
from stocklink.extensions import db
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.notify import queue_mail
from stocklink.platforms.base import AuthError
from stocklink.platforms.smaregi_webhook import parse_legacy, parse_platform
from stocklink.queues import WEBHOOKS, get_queue, get_redis

RETRY = Retry(max=8, interval=[2, 10, 30, 60, 300, 600, 1800, 3600])


def enqueue_inbox(inbox_id: int) -> bool:
    """The RQ job id is the inbox row id (unique): a row is never queued twice at once."""
    try:
        get_queue(WEBHOOKS).enqueue(process_inbox, inbox_id, job_id=f"inbox-{inbox_id}", unique=True,
                                    job_timeout=120, retry=RETRY, result_ttl=0, failure_ttl=7 * 86400)
        return True
    except DuplicateJobError:
        return False


def notification_of(row: SmaregiInbox):
    """Rebuild the parsed notification from what the webhook stored."""
    if row.generation == "legacy":
        payload = row.payload
        form = {"params": json.dumps(payload["params"], ensure_ascii=False), "proc_name": payload.get("proc_name")}
        return parse_legacy(form)
    headers = {"Smaregi-Event": row.event, "Smaregi-Event-Id": row.dedupe_key.rsplit(":", 1)[-1]}
    return parse_platform(headers, json.dumps(row.payload).encode())


BATCH = 50  # notifications one job applies together, with one stock read from Smaregi
CLAIM_TTL = 300  # seconds a batch holds the rows it claimed (a crashed batch lets go after this)


def _claim_key(inbox_id: int) -> str:
    return f"stocklink:inbox-claim:{inbox_id}"


def _claim(inbox_id: int, statuses: tuple[str, ...]) -> bool:
    claimed = db.session.execute(update(SmaregiInbox).where(
        SmaregiInbox.id == inbox_id, SmaregiInbox.status.in_(statuses))
        .values(status="processing", attempts=SmaregiInbox.attempts + 1)
        .execution_options(synchronize_session=False))
    return claimed.rowcount == 1


def _claim_batch(inbox_id: int) -> list[int]:
    """This job's row plus up to BATCH − 1 other waiting rows, oldest first.

    Each row is claimed by a conditional UPDATE, so two batches never take the same row. A
    row taken into another job's batch is marked in Redis: its own job, running meanwhile,
    leaves it alone (a ``processing`` row without the mark is one whose job crashed, and is
    taken again by its retry or the sweeper).
    """
    redis = get_redis()
    if not _claim(inbox_id, ("received", "failed", "processing")):
        db.session.commit()
        return []
    if redis.exists(_claim_key(inbox_id)):
        # Checked after the UPDATE: a batch marks a row before committing its claim, so a
        # claim that waited for that commit sees the mark here.
        db.session.rollback()
        return []
    others = db.session.scalars(select(SmaregiInbox.id).where(
        SmaregiInbox.status == "received", SmaregiInbox.id != inbox_id)
        .order_by(SmaregiInbox.id).limit(BATCH - 1)).all()
    batch = [inbox_id]
    for other in others:
        if _claim(other, ("received",)):
            redis.set(_claim_key(other), inbox_id, ex=CLAIM_TTL)
            batch.append(other)
    db.session.commit()
    return batch


def _release(inbox_ids: list[int]) -> None:
    """Hand claimed rows back to their own jobs (this one is failing)."""
    if inbox_ids:
        db.session.execute(update(SmaregiInbox).where(
            SmaregiInbox.id.in_(inbox_ids), SmaregiInbox.status == "processing")
            .values(status="received").execution_options(synchronize_session=False))
        db.session.commit()
        get_redis().delete(*[_claim_key(i) for i in inbox_ids])


@job
def process_inbox(inbox_id: int) -> str:
    """Apply this stored notification, and with it the others waiting, reading their stock from
    Smaregi in one batch. A row already done is not applied again."""
    from stocklink.sync import apply_notification, smaregi_client, store_movements

    batch = _claim_batch(inbox_id)
    if not batch:
        return "already done"
    rows = {row.id: row for row in db.session.scalars(select(SmaregiInbox).where(SmaregiInbox.id.in_(batch)))}
    notifications = {row_id: notification_of(row) for row_id, row in rows.items()}
    channels: set[int] = set()
    try:
        client = smaregi_client()
        ids = list(dict.fromkeys(m.product_id for n in notifications.values() for m in store_movements(n.movements)))
        read_at = utcnow()
        prefetched = (read_at, client.fetch_stock(ids)) if ids else None

        def apply(row_id: int) -> set[int]:
            row = db.session.get(SmaregiInbox, row_id)
            applied = apply_notification(row, notifications[row_id], client=client, prefetched=prefetched)
            row.status, row.processed_at, row.error = "done", utcnow(), None
            return applied

        channels |= apply(inbox_id)
        resolve_temporary_errors(source="smaregi")  # Smaregi answers again (SPEC §6: shown until it clears)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _release([other for other in batch if other != inbox_id])
        _fail(inbox_id, exc, level=9 if isinstance(exc, AuthError) else 8)
        raise
    for other in batch[1:]:
        try:
            channels |= apply(other)
            db.session.commit()
            get_redis().delete(_claim_key(other))
        except Exception:  # its own job applies it, with retries and error records
            db.session.rollback()
            _release([other])
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return f"done {len(batch)}, {len(channels)} channel(s) to push"


def _fail(inbox_id: int, exc: Exception, *, level: int) -> None:
    row = db.session.get(SmaregiInbox, inbox_id)
    row.status, row.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    kind = "auth" if level >= 9 else "temporary"
    record = record_error(source="smaregi", level=level, kind=kind, code=getattr(exc, "code", None),
                          message=("スマレジの認証に失敗しました。設定を確認してください" if level >= 9
                                   else "スマレジからの在庫取得に失敗しました。自動で再試行します") + f" ({exc})")
    # Level 9 is mailed when it first appears (not on every retry), level 8 on the final failure.
    if (level >= 9 and record.occurrences == 1) or (level < 9 and final_attempt()):
        queue_mail("level9" if level >= 9 else "level8", "【stocklink】スマレジからの在庫取得に失敗しました",
                   "smaregi_failure", error=str(exc), level=level)
    db.session.commit()


@job
def sweep_inbox() -> int:
    """Re-enqueue stored rows that have no live job (a Redis outage, a dead worker)."""
    cutoff = utcnow() - timedelta(seconds=30)
    rows = db.session.scalars(select(SmaregiInbox.id).where(
        SmaregiInbox.status.in_(("received", "processing")), SmaregiInbox.received_at < cutoff)
        .order_by(SmaregiInbox.id).limit(1000)).all()
    return sum(1 for inbox_id in rows if enqueue_inbox(inbox_id))


def enqueue_refresh(smaregi_ids: list[str]) -> None:
    get_queue(WEBHOOKS).enqueue(refresh_stock, list(smaregi_ids), job_timeout=300, retry=RETRY,
                                failure_ttl=7 * 86400)


@job
def refresh_stock(smaregi_ids: list[str]) -> str:
    """Re-read these products from Smaregi and push them (confirmation queue "adjust")."""
    from stocklink.sync import refresh_products

    channels = refresh_products(smaregi_ids, cause="merchant:release_adjust")
    db.session.commit()
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return f"refreshed {len(smaregi_ids)}"
