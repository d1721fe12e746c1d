"""NextEngine, the delta channel: upload accumulated counts and mail the per-run report.

Seed 001: each processing run sends one message in three parts — the upload result, the
previous upload's result as NextEngine processed it, and the order import — with the
uploaded CSV attached and 成功 / 失敗 in the subject.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, WriteIntent
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.base import PlatformError
from stocklink.platforms.nextengine import build_delta_csv
from stocklink.services import write_intents
from stocklink.services.outbox import queue_mail
from stocklink.services.stock_ledger import clear_dirty

log = logging.getLogger(__name__)
CLOCK_MARGIN = timedelta(minutes=10)  # between stocklink's clock and NextEngine's


def push_deltas_with_report(channel: Channel, client) -> int:
    """Upload every listing's pending delta once; returns how many listings were uploaded.

    The upload is recorded as write intents, committed before it is sent; the answer's
    bookkeeping settles them in one commit. An upload whose answer never came (a timeout, a
    worker killed mid-call) is looked for in NextEngine's queue before anything is uploaded
    again (:func:`_settle_lost_upload`): a delta sent twice would count a sale twice."""
    _settle_lost_upload(channel, client)
    previous = write_intents.settle_pending(channel, client)
    listings = db.session.scalars(select(Listing).where(
        Listing.channel_id == channel.id, Listing.dirty.is_(True), Listing.sync_enabled.is_(True))
        .order_by(Listing.id)).all()
    uploads = [(listing.id, listing.identifier, listing.pending_delta, listing.fact_at) for listing in listings
               if listing.pending_delta and listing.product_id is not None]
    clear_dirty({listing.id: listing.fact_at for listing in listings if not listing.pending_delta})
    intents = write_intents.record_deltas(channel.id, uploads) if uploads else None
    db.session.commit()  # the intents are durable before the upload leaves; nothing is held meanwhile
    upload_error = None
    que_id = None
    rows = [(identifier, delta) for _id, identifier, delta, _fact in uploads]
    if rows:
        key = f"ne-{channel.id}-" + "-".join(f"{lid}.{delta}" for lid, _i, delta, _f in uploads)[:200]
        try:
            que_id = client.upload_deltas(rows, key)
        except PlatformError as exc:
            upload_error = exc
            if not exc.outcome_unknown:
                write_intents.discard(intents)  # refused: nothing is in NextEngine's queue
    if rows or previous:  # rendered before the first write: a template error cannot undo the bookkeeping
        try:
            _report(channel, rows, que_id, upload_error, previous)
        except SQLAlchemyError:
            raise
        except Exception:
            log.exception("the NextEngine report for que_id %s could not be queued", que_id)
    if que_id is not None:
        _book_upload(uploads, que_id)
        write_intents.mark_settled(_intents_of(intents), "booked", ref=que_id)
    # What NextEngine accepted and the report of it, in one transaction, before anything else
    # can fail: a rollback after a successful upload would upload the same counts again.
    db.session.commit()
    if any(result["sold_unheard"] for result in previous):
        # NextEngine offers less than stocklink's total: an order there not taken in yet (SPEC §11.6).
        from stocklink.jobs.orders import enqueue_recent_read  # jobs.orders imports the push, and so this
        enqueue_recent_read(channel.id)
    if upload_error is not None:
        raise upload_error
    return len(uploads)


def _book_upload(uploads: list[tuple], que_id: str) -> None:
    """Subtract exactly what was uploaded (a delta added meanwhile stays for the next run) and
    wait for ``que_id``'s result."""
    now = utcnow()
    table = Listing.__table__
    db.session.connection().execute(update(table).where(table.c.id == bindparam("lid")).values(
        pending_delta=table.c.pending_delta - bindparam("delta"), pending_ref=que_id, last_pushed_at=now,
        last_pushed_quantity=bindparam("delta")), [{"lid": lid, "delta": delta} for lid, _i, delta, _f in uploads])
    clear_dirty({lid: fact_at for lid, _i, _d, fact_at in uploads}, unless_delta_left=True)


def _intents_of(batch: str | None) -> list[WriteIntent]:
    return list(db.session.scalars(select(WriteIntent).where(WriteIntent.batch == batch))) if batch else []


def _settle_lost_upload(channel: Channel, client) -> None:
    """Settle an upload recorded as sent whose answer never came back, before uploading again.

    NextEngine takes no idempotency key and no name for an upload (platform-apis-channels.md
    §2.6 lists none), so the lost upload is looked for by time: an entry of the upload queue
    created since shortly before the intent (:data:`CLOCK_MARGIN` for the two clocks) whose
    ``que_id`` stocklink does not know is taken as it, and booked as if its answer had come.
    None there: it never reached NextEngine, and the same counts are uploaded as usual. An
    upload the merchant made by hand in that window would be taken for stocklink's (the
    report mail names the que_id adopted). Commits.
    """
    intents = write_intents.open_intents(channel.id)
    if not intents:
        return
    since = min(as_utc(i.created_at) for i in intents) - CLOCK_MARGIN
    found = client.uploads_since(since)
    known = set(db.session.scalars(select(WriteIntent.ref).where(
        WriteIntent.channel_id == channel.id, WriteIntent.ref.is_not(None))))
    known |= set(db.session.scalars(select(Listing.pending_ref).where(
        Listing.channel_id == channel.id, Listing.pending_ref.is_not(None))))
    strangers = [entry["ref"] for entry in found if entry["ref"] not in known]
    for batch in dict.fromkeys(i.batch for i in intents):
        rows = [i for i in intents if i.batch == batch]
        if strangers:
            que_id = strangers.pop(0)
            _book_upload([(i.listing_id, i.identifier, i.delta, i.fact_at) for i in rows if i.listing_id], que_id)
            write_intents.mark_settled(rows, "applied", ref=que_id)
            log.warning("%s: an upload whose answer was lost was found in NextEngine's queue as que_id %s",
                        channel.name, que_id)
        else:
            write_intents.mark_settled(rows, "not_applied")
            log.warning("%s: an upload whose answer was lost never reached NextEngine's queue; "
                        "its counts are uploaded again", channel.name)
    db.session.commit()


def _report(channel: Channel, rows, que_id, upload_error, previous) -> None:
    upload_ok = upload_error is None
    previous_ok = all(p["status"] != "error" for p in previous)
    parts = []
    if rows:
        parts.append(_l("upload: succeeded") if upload_ok else _l("upload: failed"))
    if previous:
        parts.append(_l("previous result: succeeded") if previous_ok else _l("previous result: failed"))
    subject = LazyString(_subject, channel.name, parts)  # rendered in the mail's language
    csv_text = build_delta_csv(rows) if rows else ""
    attachments = [{"filename": f"nextengine_{que_id or 'failed'}.csv", "content_type": "text/csv",
                    "text": csv_text}] if rows else []
    queue_mail("report", subject, "nextengine_report", attachments=attachments, channel=channel, rows=rows,
               que_id=que_id, upload_error=upload_error, previous=previous)


def _subject(name: str, parts: list) -> str:
    return _("[stocklink] %(name)s %(results)s", name=name, results=" / ".join(str(p) for p in parts))
