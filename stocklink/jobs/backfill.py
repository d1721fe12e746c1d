"""Backfill from Smaregi (SPEC §11.2): Platform webhooks are not retried, and a legacy send
can fail, so every few minutes stocklink reads the stock rows that changed since the last
watermark. A dropped notification then costs minutes, not drift."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from stocklink import settings
from stocklink.extensions import db
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push
from stocklink.models import Exclusion, Listing, Product
from stocklink.models._types import utcnow
from stocklink.queues import get_redis
from stocklink.stock import StockRead, apply_smaregi_reads, mark_listings_dirty

WATERMARK_KEY = "stocklink:backfill:watermark"
OVERLAP = timedelta(minutes=2)       # clocks differ; re-reading a row is harmless (overwrite)
FIRST_LOOKBACK = timedelta(hours=1)  # no watermark yet (first run, or Redis was emptied)


def _watermark(now: datetime) -> datetime:
    raw = get_redis().get(WATERMARK_KEY)
    if raw is None:
        return now - FIRST_LOOKBACK
    return datetime.fromisoformat(raw.decode()) - OVERLAP


@job
def backfill_stock() -> str:
    """Overwrite the stock of linked products changed in Smaregi since the watermark.

    Deltas are not forwarded to NextEngine from here: a late notification for the same
    movement would forward it again. The daily reconciliation corrects delta channels.
    """
    if not settings.smaregi_configured():
        return "smaregi not configured"
    from stocklink.sync import smaregi_client

    read_at = utcnow()
    changed_rows = smaregi_client().stock_updated_since(_watermark(read_at))
    if not changed_rows:
        get_redis().set(WATERMARK_KEY, read_at.isoformat())
        return "nothing changed"
    excluded = set(db.session.scalars(select(Exclusion.smaregi_product_id)))
    linked = db.session.scalars(select(Product).where(
        Product.smaregi_product_id.in_(list(changed_rows)), Product.stock_managed.is_(True),
        Product.id.in_(select(Listing.product_id).where(Listing.product_id.is_not(None))))).all()
    changed = apply_smaregi_reads({p.id: StockRead(changed_rows[p.smaregi_product_id], "smaregi:backfill", "backfill")
                                   for p in linked if p.smaregi_product_id not in excluded}, read_at)
    channels = mark_listings_dirty(changed) if changed else set()
    db.session.commit()
    get_redis().set(WATERMARK_KEY, read_at.isoformat())
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return f"{len(changed)} product(s) corrected"
