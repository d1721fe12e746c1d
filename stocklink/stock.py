"""The one place that changes a product's stock, always with a ledger row (SPEC §3, §11.4).

Rows change atomically in the database (``UPDATE … WHERE``), never by read-modify-write
in Python, so two workers cannot lose an update.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update

from stocklink.extensions import db
from stocklink.models import Listing, Product, SetComponent, StockLedger
from stocklink.models._types import utcnow


def apply_smaregi_stock(product_id: int, stock: int, read_at: datetime, *, cause: str,
                        source_event: str | None = None, actor: str = "smaregi") -> bool:
    """Overwrite ``smaregi_stock`` with a value read from Smaregi at ``read_at``.

    A read older than the one already applied is ignored (two workers reading in one order
    and writing in the other must not let the older number win). Returns whether the stock
    changed; the ledger gets a row only when it did.
    """
    product = db.session.execute(
        select(Product).where(Product.id == product_id).with_for_update()).scalar_one()
    before = product.smaregi_stock
    result = db.session.execute(
        update(Product)
        .where(Product.id == product_id,
               or_(Product.stock_read_at.is_(None), Product.stock_read_at <= read_at))
        .values(smaregi_stock=stock, stock_read_at=read_at)
        .execution_options(synchronize_session=False))
    db.session.refresh(product)
    if result.rowcount == 0 or before == stock:
        return False
    db.session.add(StockLedger(product_id=product_id, field="smaregi_stock", before=before, after=stock,
                               cause=cause, source_event=source_event, actor=actor))
    return True


def change_reserved(product_id: int, delta: int, *, cause: str, source_event: str | None = None,
                    actor: str = "system") -> int:
    """Add ``delta`` to ``reserved`` atomically and write the ledger; returns the new value."""
    db.session.execute(select(Product.id).where(Product.id == product_id).with_for_update())
    before = db.session.scalar(select(Product.reserved).where(Product.id == product_id))
    db.session.execute(update(Product).where(Product.id == product_id)
                       .values(reserved=Product.reserved + delta)
                       .execution_options(synchronize_session=False))
    db.session.add(StockLedger(product_id=product_id, field="reserved", before=before,
                               after=before + delta, cause=cause, source_event=source_event, actor=actor))
    return before + delta


def affected_product_ids(product_ids: set[int]) -> set[int]:
    """The products themselves plus every set product that contains one of them."""
    if not product_ids:
        return set()
    sets = db.session.scalars(select(SetComponent.set_product_id)
                              .where(SetComponent.component_id.in_(product_ids))).all()
    return set(product_ids) | set(sets)


def mark_listings_dirty(product_ids: set[int]) -> set[int]:
    """Mark the linked, synced listings of these products (and their sets) dirty.

    ``fact_at`` records the database time of the fact the next push is based on
    (SPEC §11.5). Returns the ids of the channels that now have work.
    """
    ids = affected_product_ids(product_ids)
    if not ids:
        return set()
    now = utcnow()
    channel_ids = set(db.session.scalars(
        select(Listing.channel_id).where(Listing.product_id.in_(ids), Listing.sync_enabled.is_(True))
        .distinct()).all())
    db.session.execute(update(Listing)
                       .where(Listing.product_id.in_(ids), Listing.sync_enabled.is_(True))
                       .values(dirty=True, fact_at=now)
                       .execution_options(synchronize_session=False))
    return channel_ids


def add_pending_delta(product_id: int, delta: int, channel_ids: set[int]) -> None:
    """Accumulate an increase/decrease count for the delta channels' listings (NextEngine)."""
    if not delta or not channel_ids:
        return
    db.session.execute(update(Listing)
                       .where(Listing.product_id == product_id, Listing.channel_id.in_(channel_ids),
                              Listing.sync_enabled.is_(True))
                       .values(pending_delta=Listing.pending_delta + delta, dirty=True, fact_at=utcnow())
                       .execution_options(synchronize_session=False))
