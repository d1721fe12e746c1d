"""Every channel write is an intent before it is sent, and an unknown outcome is read back.

The push records one ``open`` row per listing write (:func:`record`) and commits it
*before* the request leaves. When the answer is booked the rows go in the same commit
(:func:`discard`), so an ``open`` row that outlives its push means the outcome is unknown:
a timeout, a reset connection, or a worker killed between the channel applying the write and
stocklink committing what it answered. The next push of that channel settles such rows
first (:func:`settle_by_reading_back`): it reads the channel's stock and decides by
:func:`stocklink.domain.settling.settle`, never by sending the write again blind. A ColorMe
``increment`` sent twice would double a sale; read back, it is either found applied, found
not applied (and sent once), or shown to the merchant as a difference.

NextEngine uploads are settled by looking for the upload in NextEngine's queue instead
(:mod:`stocklink.jobs.report`): they are applied asynchronously, so a read of the stock
right after the crash could not tell.

A write the channel accepted without applying it yet leaves its listing ``pending_ref``
(a NextEngine ``que_id``); :func:`settle_pending` asks the channel about those, for any
client with :class:`~stocklink.platforms.interfaces.PendingWrites`, and confirms by reading back.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import selectinload

from stocklink.domain.read_back import sold_unheard
from stocklink.domain.settling import Outcome, may_resend, settle
from stocklink.domain.stock import total_stock
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, WriteIntent
from stocklink.models._types import utcnow
from stocklink.platforms.base import StockWrite
from stocklink.platforms.interfaces import PendingWrites, SellableReader
from stocklink.services import differences
from stocklink.services.incidents import record_error
from stocklink.services.stock_ledger import clear_dirty

log = logging.getLogger(__name__)

KEEP_SETTLED = timedelta(days=7)  # rows a crash left behind, settled: the record of what happened
# A NextEngine upload booked normally is kept as "booked" (its que_id is then known, so it is
# never mistaken for the lost upload of a crash) for long enough to outlive any crash window.
KEEP_BOOKED = timedelta(hours=1)


def new_batch() -> str:
    return uuid.uuid4().hex


def record(channel_id: int, writes: list[tuple[int, StockWrite, datetime | None]], mode_of) -> str:
    """Add one ``open`` intent per ``(listing_id, write, fact_at)``; returns the batch id.

    ``mode_of(write)`` names how the channel applies it (``relative``, ``compare_and_set``,
    ``absolute``). The caller commits before sending the writes."""
    batch = new_batch()
    now = utcnow()
    db.session.add_all([WriteIntent(
        channel_id=channel_id, listing_id=listing_id, batch=batch, mode=mode_of(write),
        identifier=write.identifier, before=write.expected, after=write.quantity,
        delta=None if write.expected is None else write.quantity - write.expected,
        key=write.key[:255], fact_at=fact_at, created_at=now) for listing_id, write, fact_at in writes])
    return batch


def record_deltas(channel_id: int, uploads: list[tuple[int, str, int, datetime | None]]) -> str:
    """Intents for one NextEngine upload: ``(listing_id, identifier, delta, fact_at)`` each."""
    batch = new_batch()
    now = utcnow()
    db.session.add_all([WriteIntent(
        channel_id=channel_id, listing_id=listing_id, batch=batch, mode="delta", identifier=identifier,
        delta=delta, fact_at=fact_at, created_at=now) for listing_id, identifier, delta, fact_at in uploads])
    return batch


def discard(batch: str) -> None:
    """The answer was booked (or the channel refused the writes): the intents are done."""
    db.session.execute(delete(WriteIntent).where(WriteIntent.batch == batch)
                       .execution_options(synchronize_session=False))


def mark_settled(intents: list[WriteIntent], outcome: str, *, ref: str | None = None) -> None:
    now = utcnow()
    for intent in intents:
        intent.status, intent.outcome, intent.settled_at = "settled", outcome, now
        if ref is not None:
            intent.ref = ref


def open_intents(channel_id: int) -> list[WriteIntent]:
    return list(db.session.scalars(select(WriteIntent).where(
        WriteIntent.channel_id == channel_id, WriteIntent.status == "open").order_by(WriteIntent.id)))


def settle_by_reading_back(channel: Channel, client) -> int:
    """Settle this channel's ``open`` intents from a read of its stock; returns how many.

    Applied: the listing is confirmed at the target. Not applied: it holds its old value and
    stays dirty, so the push sends the write once. Ambiguous: the channel's value is taken as
    confirmed; an idempotent write is sent again, a relative one is not — the listing is
    marked as a difference and an error tells the merchant. Commits."""
    intents = open_intents(channel.id)
    if not intents:
        return 0
    reads = client.read_stock(sorted({intent.identifier for intent in intents}))
    now = utcnow()
    unresolved = []
    for intent in intents:
        read = reads.get(intent.identifier)
        outcome = settle(intent.before, intent.after, read)
        intent.status, intent.outcome, intent.read_back, intent.settled_at = "settled", outcome.value, read, now
        listing = db.session.get(Listing, intent.listing_id) if intent.listing_id else None
        if listing is None:
            continue
        listing.last_confirmed_quantity, listing.last_confirmed_at = read, now
        if outcome is Outcome.APPLIED:
            listing.last_pushed_quantity, listing.last_pushed_at = intent.after, now
            differences.note(listing, False, now)
            clear_dirty({listing.id: intent.fact_at})
        elif not may_resend(intent.mode, outcome):
            differences.note(listing, True, now)
            clear_dirty({listing.id: intent.fact_at})  # a newer fact still gets its own write
            unresolved.append(intent)
    log.warning("%s: settled %d write(s) of unknown outcome by reading back: %s", channel.name, len(intents),
                ", ".join(f"{i.identifier}={i.outcome}" for i in intents))
    for intent in unresolved:
        record_error(source="channel", level=8, kind="write_unconfirmed", channel=channel, key="write_unconfirmed",
                     params={"identifier": intent.identifier, "before": intent.before, "after": intent.after,
                             "now": intent.read_back})
    db.session.commit()
    return len(intents)


def settle_pending(channel: Channel, client) -> list[dict]:
    """Ask the channel about its accepted-but-unapplied writes; finished ones are confirmed by a
    read of the stock (SPEC §11.9: pending until read back), refused ones become errors for
    the merchant. Returns the finished ones (``ref``, ``status``, ``message``, ``errors``, and
    ``sold_unheard``: the identifiers a :class:`SellableReader` channel offers fewer of than
    stocklink's total, :func:`~stocklink.domain.read_back.sold_unheard`).

    Both reads happen before the first write, so no write transaction (SQLite: the database's
    one write lock) waits on the network. The caller commits."""
    if not isinstance(client, PendingWrites):
        return []
    refs = sorted(set(db.session.scalars(select(Listing.pending_ref).where(
        Listing.channel_id == channel.id, Listing.pending_ref.is_not(None)))))
    if not refs:
        return []
    results = [{"ref": ref, **status} for ref, status in client.pending_status(refs).items()
               if status["status"] not in ("waiting", "processing")]
    finished = [r["ref"] for r in results]
    listings = db.session.scalars(select(Listing).where(
        Listing.channel_id == channel.id, Listing.pending_ref.in_(finished))
        .options(selectinload(Listing.product))).all() if finished else []
    identifiers = [listing.identifier for listing in listings]
    # What the channel offers now, against stocklink's total: less means an order there that
    # stocklink has not taken in yet (the caller reads the channel's recent orders).
    stock, offered = {}, {}
    if listings and isinstance(client, SellableReader):
        stock, offered = client.read_stock_and_sellable(identifiers)
    elif listings:
        stock = client.read_stock(identifiers)
    for result in results:
        result["sold_unheard"] = sorted(
            listing.identifier for listing in listings if listing.pending_ref == result["ref"]
            and listing.product is not None and sold_unheard(
                offered.get(listing.identifier), listing.pending_delta,
                total_stock(listing.product.smaregi_stock, listing.product.reserved)))
    for result in results:
        if result["status"] == "error":
            record_error(source="channel", level=8, kind="upload_rejected", channel=channel, code=result["ref"],
                         key="upload_rejected", params={"ref": result["ref"]}, detail=result["message"][:300])
    now = utcnow()
    for listing in listings:
        listing.pending_ref = None
        listing.last_confirmed_quantity = stock.get(listing.identifier)
        listing.last_confirmed_at = now
    return results


def prune_settled(now: datetime | None = None) -> int:
    """Forget settled intents older than :data:`KEEP_SETTLED` and booked uploads older than
    :data:`KEEP_BOOKED` (the minute sweep calls it)."""
    now = now or utcnow()
    return db.session.execute(delete(WriteIntent).where(WriteIntent.status == "settled", or_(
        WriteIntent.settled_at < now - KEEP_SETTLED,
        and_(WriteIntent.outcome == "booked", WriteIntent.settled_at < now - KEEP_BOOKED)))
        .execution_options(synchronize_session=False)).rowcount
