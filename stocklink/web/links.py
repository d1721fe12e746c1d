"""紐づけ: a channel's items beside Smaregi's products; link, unlink, relink, auto-link again.

Linking never changes anything on the channel or in Smaregi: it says which Smaregi product a
channel item follows. A link made here is checked by reading the item back from the channel
(a channel that accepts unknown codes silently would otherwise hide a wrong link).
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from stocklink.infra.after_commit import after_commit
from stocklink.infra.extensions import db
from stocklink.jobs.catalogue_import import enqueue_verify
from stocklink.models import Channel, Listing, Product
from stocklink.services import catalogue_import
from stocklink.services.search_text import matching
from stocklink.web.fragments import page_or_fragment
from stocklink.web.params import page_arg

bp = Blueprint("links", __name__, url_prefix="/links")
PAGE_SIZE = 100
STATES = ("all", "linked", "unlinked", "problem")


def _channel_arg(channels: list[Channel]) -> Channel | None:
    wanted = request.args.get("channel", type=int)
    return next((c for c in channels if c.id == wanted), channels[0] if channels else None)


@bp.get("/")
def index():
    """A channel's items (``?channel=``), filtered by ``state`` and keyword ``q``; 100 a page.

    :raise 400: ``?page=`` is not a page number."""
    channels = db.session.scalars(select(Channel).order_by(Channel.id)).all()
    channel = _channel_arg(channels)
    state = request.args.get("state", "all")
    state = state if state in STATES else "all"
    keyword = request.args.get("q", "").strip()
    page = page_arg()
    listings, total = [], 0
    if channel is not None:
        stmt = select(Listing).where(Listing.channel_id == channel.id, Listing.removed_at.is_(None),
                                     *matching(Listing.search_text, keyword))
        if state == "linked":
            stmt = stmt.where(Listing.product_id.is_not(None))
        elif state == "unlinked":
            stmt = stmt.where(Listing.product_id.is_(None))
        elif state == "problem":
            stmt = stmt.where(Listing.link_problem.is_not(None))
        total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        listings = db.session.scalars(stmt.options(joinedload(Listing.product)).order_by(Listing.id)
                                      .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return page_or_fragment("links/index.html", "links/_rows.html", channels=channels, channel=channel,
                            state=state, keyword=keyword, listings=listings, total=total, page=page,
                            pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1), states=STATES)


@bp.get("/<int:listing_id>")
def choose(listing_id: int):
    """Pick the Smaregi product for one item: products matching ``q`` (the item's code by default).

    :raise 404: no such item."""
    listing = db.session.get(Listing, listing_id) or abort(404)
    keyword = request.args.get("q", listing.sku or "").strip()
    stmt = select(Product).where(Product.removed_at.is_(None), *matching(Product.search_text, keyword))
    products = db.session.scalars(stmt.order_by(Product.id).limit(50)).all() if keyword else []
    return page_or_fragment("links/choose.html", "links/_products.html", listing=listing, keyword=keyword,
                            products=products)


def _back(listing: Listing):
    return redirect(request.form.get("next") or url_for("links.index", channel=listing.channel_id), 303)


@bp.post("/<int:listing_id>/link")
def link(listing_id: int):
    """Link (or relink) the item to the product ``product_id``.

    :raise 404: no such item."""
    listing = db.session.get(Listing, listing_id) or abort(404)
    product = db.session.get(Product, request.form.get("product_id", type=int) or 0)
    if product is None or product.removed_at is not None:
        flash(_("Choose a Smaregi product to link to."), "error")
        return redirect(url_for("links.choose", listing_id=listing.id), 303)
    catalogue_import.link(listing, product)
    after_commit(lambda: enqueue_verify(listing_id))
    db.session.commit()
    shared = listing.link_problem == "multiple"
    flash(_("Linked %(item)s to %(product)s.", item=listing.sku or listing.identifier,
            product=product.product_code or product.name), "info")
    if shared:
        flash(_("Another item of this channel is linked to the same product (multiple linked): neither is "
                "synced until one is unlinked."), "warning")
    return _back(listing)


@bp.post("/<int:listing_id>/unlink")
def unlink(listing_id: int):
    """Unlink the item: it stays in stocklink (and on the channel) and is no longer synced.

    :raise 404: no such item."""
    listing = db.session.get(Listing, listing_id) or abort(404)
    catalogue_import.unlink(listing)
    db.session.commit()
    flash(_("Unlinked %(item)s. It is no longer synced.", item=listing.sku or listing.identifier), "info")
    return _back(listing)


@bp.post("/auto")
def auto():
    """Link the chosen channel's unlinked items again by the SKU rule (not those unlinked by hand).

    :raise 404: no such channel."""
    channel = db.session.get(Channel, request.form.get("channel_id", type=int) or 0) or abort(404)
    linked, problems = catalogue_import.auto_link(channel)
    db.session.commit()
    flash(ngettext("%(num)d item linked.", "%(num)d items linked.", linked) + " "
          + ngettext("%(num)d item has a problem.", "%(num)d items have a problem.", problems), "info")
    return redirect(url_for("links.index", channel=channel.id), 303)

