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
from stocklink.platforms.base import AuthError, PlatformError
from stocklink.platforms.smaregi_webhook import parse_legacy, parse_platform
from stocklink.queues import WEBHOOKS, get_queue

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


@job
def process_inbox(inbox_id: int) -> str:
    """Apply one stored notification; a row already done is not applied again."""
    from stocklink.sync import apply_notification

    claimed = db.session.execute(update(SmaregiInbox).where(
        SmaregiInbox.id == inbox_id, SmaregiInbox.status.in_(("received", "failed", "processing")))
        .values(status="processing", attempts=SmaregiInbox.attempts + 1)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if claimed.rowcount == 0:
        return "already done"
    row = db.session.get(SmaregiInbox, inbox_id)
    try:
        channels = apply_notification(row, notification_of(row))
        row.status, row.processed_at, row.error = "done", utcnow(), None
        resolve_temporary_errors(source="smaregi")  # Smaregi answers again (SPEC §6: shown until it clears)
        db.session.commit()
    except AuthError as exc:
        db.session.rollback()
        _fail(inbox_id, exc, level=9)
        raise
    except PlatformError as exc:
        db.session.rollback()
        _fail(inbox_id, exc, level=8)
        raise
    except Exception as exc:
        db.session.rollback()
        _fail(inbox_id, exc, level=8)
        raise
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return f"done, {len(channels)} channel(s) to push"


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
