"""Backfill from Smaregi (SPEC §11.2): Platform webhooks are not retried, and a legacy send
can fail, so every few minutes stocklink reads the stock rows that changed since the last
watermark. A dropped notification then costs minutes, not drift — on the delta channels too:
their movements are read from the 在庫変動履歴 after each product's cursor, the same cursor the
inbox drain moves, so an entry reaches NextEngine once whichever of the two finds it first."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.queues import get_redis
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push
from stocklink.models import Exclusion, Listing, Product
from stocklink.models._types import utcnow
from stocklink.services import delta_channels, merchant_settings
from stocklink.services.smaregi_stock import smaregi_client, stored_stock
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads, mark_listings_dirty

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

    Products on a delta channel also get the 在庫変動履歴 entries after their cursor as deltas
    (:mod:`stocklink.services.delta_channels`); a late notification of the same movement then finds the
    cursor past it. A product that never had a cursor is left to its next notification.
    """
    if not merchant_settings.smaregi_configured():
        return "smaregi not configured"

    read_at = utcnow()
    client = smaregi_client()
    changed_rows = client.stock_updated_since(_watermark(read_at))
    if not changed_rows:
        get_redis().set(WATERMARK_KEY, read_at.isoformat())
        return "nothing changed"
    excluded = set(db.session.scalars(select(Exclusion.smaregi_product_id)))
    linked = db.session.scalars(select(Product).where(
        Product.smaregi_product_id.in_(list(changed_rows)), Product.stock_managed.is_(True),
        Product.id.in_(select(Listing.product_id).where(Listing.product_id.is_not(None))))).all()
    linked = [p for p in linked if p.smaregi_product_id not in excluded]
    history = delta_channels.read_movements(client, {p.smaregi_product_id: p.id for p in linked})
    changed = apply_smaregi_reads({p.id: StockRead(stored_stock(changed_rows, p.smaregi_product_id),
                                                   "smaregi:backfill", "backfill") for p in linked}, read_at)
    channels = mark_listings_dirty(changed) if changed else set()
    forwarded = delta_channels.forward(history)
    channels |= forwarded.channel_ids
    db.session.commit()
    get_redis().set(WATERMARK_KEY, read_at.isoformat())
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    counts = f", {len(forwarded.deltas)} delta(s) from the stock history" if forwarded.deltas else ""
    return f"{len(changed)} product(s) corrected{counts}"
