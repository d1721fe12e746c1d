"""Difference products (差異商品, seed 002): listings whose channel stock differs from what
stocklink would push now, and reflecting (反映) stocklink's figure onto them.

A difference is first news from the channel (a sale there not yet imported, a merchant's edit
on the channel): it is shown, not overwritten. Reflecting is the merchant's decision (or the
channel's heal-after setting) to write the total stock over it.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.models import Listing
from stocklink.models._types import utcnow


def reflect(listing_ids: Iterable[int]) -> set[int]:
    """Reflect stocklink's figure onto these listings: clear their difference and mark them for a
    push based on a fact from now (after the read that found the difference). Listings not linked
    to a product are left alone. Returns the ids of the channels that now have work (the caller
    enqueues their pushes after committing)."""
    ids = sorted(set(listing_ids))
    if not ids:
        return set()
    condition = (Listing.id.in_(ids), Listing.product_id.is_not(None))
    channel_ids = set(db.session.scalars(select(Listing.channel_id).where(*condition).distinct()))
    db.session.execute(update(Listing).where(*condition)
                       .values(difference=False, difference_since=None, dirty=True, fact_at=utcnow())
                       .execution_options(synchronize_session=False))
    return channel_ids


def note(listing: Listing, differs: bool, now) -> None:
    """Book whether ``listing``'s channel stock differs from what stocklink would push: a
    difference keeps the time it was first seen (``difference_since``, what the heal-after
    setting counts from); agreement clears both."""
    listing.difference = differs
    listing.difference_since = (listing.difference_since or now) if differs else None
