"""The dashboard's setup checklist: the steps that take a new merchant from an empty instance to
a synced shop, each ticked from what the database already shows (nothing is stored for it)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SmaregiInbox
from stocklink.services import merchant_settings


@dataclass(frozen=True)
class Step:
    key: str  # smaregi | webhook | smaregi_import | channel | channel_import | links
    done: bool
    detail: dict


def steps() -> list[Step]:
    channels = db.session.scalars(select(Channel).order_by(Channel.id)).all()
    not_imported = [c for c in channels if c.catalogue_imported_at is None]
    products = db.session.scalar(select(func.count()).select_from(Product).where(
        Product.smaregi_product_id.is_not(None), Product.removed_at.is_(None)))
    linked = db.session.scalar(select(func.count()).select_from(Listing).where(
        Listing.product_id.is_not(None), Listing.removed_at.is_(None)))
    unlinked = db.session.scalar(select(func.count()).select_from(Listing).where(
        Listing.removed_at.is_(None), Listing.product_id.is_(None)))
    return [
        Step("smaregi", merchant_settings.smaregi_configured(), {}),
        Step("webhook", db.session.scalar(select(exists().where(SmaregiInbox.id.is_not(None)))), {}),
        Step("smaregi_import", products > 0, {"products": products}),
        Step("channel", bool(channels), {}),
        Step("channel_import", bool(channels) and not not_imported,
             {"next": not_imported[0] if not_imported else None}),
        Step("links", linked > 0, {"linked": linked, "unlinked": unlinked}),
    ]
