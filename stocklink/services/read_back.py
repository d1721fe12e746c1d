"""Reading each channel's stock back on a budget, and marking difference products (SPEC §10, §11.10).

One run of a channel reads the listings read longest ago first, in the client's batch size, at most
:func:`~stocklink.domain.read_back.read_budget` requests (a quarter of the channel's documented
rate over the time between runs), and books for each: ``last_confirmed_quantity/_at``, and whether
the channel stock differs from what the next push would write (:func:`push_decision`, the one place
that decides it). A difference is shown, never overwritten here (seed 002 差異商品): the merchant
reflects it, or the channel's heal-after setting does (:func:`differences_to_heal`).

A run does not take the push's lease: a push must never wait for a read (seconds, not minutes).
Instead a read is booked only onto a listing that stayed settled since before the read left —
not dirty, no upload pending, no write in flight, and not confirmed again by a push meanwhile —
all checked in the booking's own ``UPDATE``. A listing that is not settled is not read at all.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select, update

from stocklink.domain.read_back import read_budget
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, WriteIntent
from stocklink.models._types import utcnow
from stocklink.services.channel_clients import platform_of
from stocklink.services.push_value import channel_range, push_decision

log = logging.getLogger(__name__)

READ_BACK_EVERY = 10  # seconds between read-back runs (jobs/cron_config.py)
# A listing confirmed (by a push or a read) this recently is not read again: the budget goes to
# the listings not heard of for longest, and a small shop is not read over and over.
READ_AGAIN_AFTER = timedelta(minutes=5)


@dataclass
class ReadBackRun:
    """What one run did: listings ``read``, ``booked`` (still settled when the answer came),
    and the ids of those found to differ / to agree again."""

    read: int = 0
    booked: int = 0
    differing: list[int] = field(default_factory=list)
    agreeing: list[int] = field(default_factory=list)


def _open_intent(listing_id_column):
    return exists().where(WriteIntent.listing_id == listing_id_column, WriteIntent.status == "open")


def _settled():
    """Listings whose channel stock is not about to change by stocklink's own hand."""
    return and_(Listing.dirty.is_(False), Listing.pending_ref.is_(None), Listing.pending_delta == 0,
                ~_open_intent(Listing.id))


def due_listings(channel: Channel, limit: int, now: datetime) -> list[Listing]:
    """Up to ``limit`` linked, synced, settled listings of ``channel``, read longest ago first
    (never-confirmed ones first of all), leaving out those confirmed within :data:`READ_AGAIN_AFTER`."""
    never = case((Listing.last_confirmed_at.is_(None), 0), else_=1)
    return list(db.session.scalars(
        select(Listing).join(Product, Product.id == Listing.product_id).where(
            Listing.channel_id == channel.id, Listing.sync_enabled.is_(True), Listing.link_problem.is_(None),
            Listing.removed_at.is_(None), Product.stock_managed.is_(True), _settled(),
            or_(Listing.last_confirmed_at.is_(None), Listing.last_confirmed_at <= now - READ_AGAIN_AFTER))
        .order_by(never, Listing.last_confirmed_at, Listing.id).limit(limit)))


def batch_size(client) -> int:
    """How many identifiers one read request carries: the client's ``read_batch`` if it declares
    one, else its write batch (``max_batch``)."""
    return max(int(getattr(client, "read_batch", 0) or getattr(client, "max_batch", 1) or 1), 1)


def read_back_channel(channel: Channel, client, *, interval_s: float = READ_BACK_EVERY,
                      pause=time.sleep) -> ReadBackRun:
    """Read back one budget's worth of ``channel``'s listings and book what was found; commits.

    Requests are sent no faster than the channel's documented rate (``pause`` between them); a
    platform error stops the run and propagates (what was booked before it stays booked).
    """
    rate = platform_of(channel).rate_per_s
    requests = read_budget(rate, interval_s)
    size = batch_size(client)
    run = ReadBackRun()
    listings = due_listings(channel, requests * size, utcnow())
    ids = [listing.id for listing in listings]
    db.session.rollback()  # no transaction is held open across the channel's answers
    for number, start in enumerate(range(0, len(ids), size)):
        if number:
            pause(1 / rate)
        chunk = [db.session.get(Listing, listing_id) for listing_id in ids[start:start + size]]
        started = utcnow()
        reads = client.read_stock([listing.identifier for listing in chunk])
        run.read += len(chunk)
        _book(chunk, reads, started, run)
        channel = db.session.get(Channel, channel.id)
        channel.last_read_back_at = utcnow()
        db.session.commit()
    log.info("%s: read back %d listing(s), %d differ, %d agree again", channel.name, run.read,
             len(run.differing), len(run.agreeing))
    return run


def _book(listings: list[Listing], reads: dict[str, int | None], started: datetime, run: ReadBackRun) -> None:
    """Book each read onto its listing if it stayed settled since ``started`` (one ``UPDATE`` each,
    its ``WHERE`` the check). An item the channel did not answer for (unknown, or its stock not
    managed there) only moves down the queue: the push reports unknown items (SPEC §11.8)."""
    now = utcnow()
    listing_range = channel_range(listings[0].channel) if listings else None
    for listing in listings:
        read = reads.get(listing.identifier)
        guard = and_(Listing.id == listing.id, _settled(),
                     or_(Listing.last_confirmed_at.is_(None), Listing.last_confirmed_at <= started))
        if read is None:
            values = {"last_confirmed_at": now}
            differs = None
        else:
            decision = push_decision(listing, listing_range, read)
            differs = decision is not None and decision.push
            values = {"last_confirmed_quantity": read, "last_confirmed_at": now, "difference": differs,
                      "difference_since": func.coalesce(Listing.difference_since, now) if differs else None}
        booked = db.session.execute(update(Listing).where(guard).values(**values)
                                    .execution_options(synchronize_session=False)).rowcount
        if not booked:
            continue
        run.booked += 1
        if differs:
            run.differing.append(listing.id)
        elif differs is False and listing.difference:
            run.agreeing.append(listing.id)


def differences_to_heal(channel: Channel, now: datetime) -> list[int]:
    """The channel's differences older than its heal-after setting (none when it is off: the
    merchant reflects them by hand)."""
    if channel.heal_after_minutes is None:
        return []
    return list(db.session.scalars(select(Listing.id).where(
        Listing.channel_id == channel.id, Listing.difference.is_(True),
        Listing.difference_since <= now - timedelta(minutes=channel.heal_after_minutes)).order_by(Listing.id)))
