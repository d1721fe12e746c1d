"""The one place that changes a product's stock, always with a ledger row (SPEC §3, §11.4).

Rows change atomically in the database (``UPDATE … WHERE``), never by read-modify-write
in Python, so two workers cannot lose an update.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, or_, select, update

from stocklink.infra.extensions import db
from stocklink.models import Listing, Product, SetComponent, StockLedger
from stocklink.models._types import as_utc, utcnow


@dataclass(frozen=True)
class StockRead:
    """One product's stock as read from Smaregi, and why it was read (for the ledger)."""

    stock: int
    cause: str
    source_event: str | None = None


def apply_smaregi_reads(reads: dict[int, StockRead], read_at: datetime, *, actor: str = "smaregi") -> set[int]:
    """Overwrite ``smaregi_stock`` of several products with values read from Smaregi at ``read_at``.

    A read older than the one already applied is ignored (two workers reading in one order
    and writing in the other must not let the older number win): the UPDATE itself checks.
    Rows are locked in key order. The ledger gets a row for each product whose stock changed;
    returns their ids. Three statements whatever the number of products.
    """
    if not reads:
        return set()
    ids = sorted(reads)
    current = {row.id: row for row in db.session.execute(
        select(Product.id, Product.smaregi_stock, Product.stock_read_at).where(Product.id.in_(ids))
        .order_by(Product.id).with_for_update())}
    fresh = [pid for pid in ids if pid in current and not _newer(current[pid].stock_read_at, read_at)]
    if not fresh:
        return set()
    db.session.connection().execute(  # Core executemany, not the ORM's bulk update by primary key
        update(Product.__table__).where(Product.id == bindparam("pid"),
                                        or_(Product.stock_read_at.is_(None), Product.stock_read_at <= read_at))
        .values(smaregi_stock=bindparam("stock"), stock_read_at=read_at),
        [{"pid": pid, "stock": reads[pid].stock} for pid in fresh])
    changed = [pid for pid in fresh if current[pid].smaregi_stock != reads[pid].stock]
    if changed:
        db.session.execute(insert(StockLedger), [
            {"product_id": pid, "field": "smaregi_stock", "before": current[pid].smaregi_stock,
             "after": reads[pid].stock, "cause": reads[pid].cause, "source_event": reads[pid].source_event,
             "actor": actor, "at": utcnow()} for pid in changed])
    return set(changed)


def _newer(stored: datetime | None, read_at: datetime) -> bool:
    """Whether the stored read time is newer than ``read_at`` (SQLite gives naive UTC back)."""
    return stored is not None and as_utc(stored) > read_at


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


def clear_dirty(seen: dict[int, datetime | None], *, unless_delta_left: bool = False) -> None:
    """Clear listings' dirty marks, each only if no newer fact arrived since ``seen`` (listing id
    → the ``fact_at`` it was planned from): compare-and-clear, all in one statement.

    ``unless_delta_left``: also keep the mark of a listing with an increase/decrease count
    still to upload (NextEngine, after subtracting what one upload carried)."""
    if seen:
        table = Listing.__table__
        condition = [table.c.id == bindparam("lid"), table.c.fact_at == bindparam("fact")]
        if unless_delta_left:
            condition.append(table.c.pending_delta == 0)
        db.session.flush()
        db.session.connection().execute(update(table).where(*condition).values(dirty=False),
                                        [{"lid": lid, "fact": fact} for lid, fact in seen.items()])


def change_reserved(changes: dict[int, int], *, cause: str, source_event: str | None = None,
                    actor: str = "order") -> dict[int, int]:
    """Add each ``changes[product id]`` to ``reserved`` (negative: give it back), atomically in
    the database (``SET reserved = reserved + :n``, SPEC §11.4), products in key order so two
    workers never wait on each other in a circle; a ledger row for each. Returns each product's
    ``reserved`` after the change (a product that no longer exists is left out)."""
    after: dict[int, int] = {}
    table = Product.__table__
    for pid in sorted(changes):
        delta = changes[pid]
        if not delta:
            continue
        value = db.session.execute(update(table).where(table.c.id == pid)
                                   .values(reserved=table.c.reserved + delta).returning(table.c.reserved)).scalar()
        if value is None:
            continue
        after[pid] = value
        db.session.execute(insert(StockLedger).values(
            product_id=pid, field="reserved", before=value - delta, after=value, cause=cause,
            source_event=source_event, actor=actor, at=utcnow()))
    return after
