"""Changing one listing's sync flag or quantity settings from the grid (seed 004, SPEC §11.7).

A change that alters what a push would write (:func:`~stocklink.domain.stock.compute_push_quantity`,
through :func:`stocklink.services.grid.would_push`), or that turns sync on, marks the listing dirty
with a fact from now, so its channel's next push writes the new figure; the caller commits and
then enqueues that push.
"""
from __future__ import annotations

from sqlalchemy import update

from stocklink.domain.listing_settings import check_listing_setting
from stocklink.infra.extensions import db
from stocklink.models import Listing
from stocklink.models._types import utcnow
from stocklink.services import grid

COLUMNS = {"sync": "sync_enabled", "min_stock": "min_stock", "max_stock": "max_stock", "reserve": "reserve",
           "ratio_percent": "ratio_percent"}


def change_setting(listing: Listing, name: str, raw: str | None) -> int | None:
    """Set ``name`` of ``listing`` from the text ``raw``; returns the id of the channel to push, if any.

    :raise stocklink.domain.listing_settings.Refusal: the value cannot be used; nothing changed.
    """
    value = check_listing_setting(name, raw, min_stock=listing.min_stock, max_stock=listing.max_stock)
    column = COLUMNS[name]
    if getattr(listing, column) == value:
        return None
    product = listing.product
    base = grid.rows_for([product])[0].base if product is not None else None
    before = grid.would_push(listing, listing.channel, base).quantity if base is not None else None
    setattr(listing, column, value)
    if base is None or not listing.sync_enabled:
        return None
    after = grid.would_push(listing, listing.channel, base)
    if (name == "sync" and after.push) or after.quantity != before:
        db.session.flush()
        db.session.execute(update(Listing).where(Listing.id == listing.id).values(dirty=True, fact_at=utcnow())
                           .execution_options(synchronize_session=False))
        return listing.channel_id
    return None
