"""Inline edits in the product grid (seed 004 ③総在庫数, ⑤連携, ⑥最小・最大; SPEC §11.7 reserve, ratio).

Each edit posts one field. An htmx request gets the product's row again (``_row.html``), with
the refusal written in the cell when the value could not be used; a plain form post (no
JavaScript) is sent back to the grid with the message flashed. A refused value changes nothing.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request
from flask_babel import gettext as _
from flask_login import current_user

from stocklink.domain.listing_settings import LISTING_FIELDS, Refusal, whole_number
from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.models import Listing, Product
from stocklink.platforms.base import PlatformError
from stocklink.services.listing_settings import change_setting
from stocklink.services.merchant_text import platform_error_text
from stocklink.services.stock_adjust import AdjustRefused, set_total
from stocklink.web.fragments import wants_fragment
from stocklink.web.params import parse_id, safe_next
from stocklink.web.products import render_row

bp = Blueprint("grid_edits", __name__, url_prefix="/products")


def refusal_text(refusal: Refusal) -> str:
    params = refusal.params
    texts = {
        "not_whole": lambda: _("Enter a whole number from 0 to %(limit)s, or leave it blank.",
                               limit=f"{params.get('limit', 0):,}"),
        "min_above_max": lambda: _("The minimum cannot be above the maximum (%(max)d).", max=params.get("max", 0)),
        "max_below_min": lambda: _("The maximum cannot be below the minimum (%(min)d).", min=params.get("min", 0)),
        "ratio_range": lambda: _("The ratio is a percentage from 0 to 100."),
    }
    return texts.get(refusal.code, lambda: refusal.code)()


ADJUST_REFUSALS = {
    "set": lambda: _("A set's stock comes from its components: change theirs."),
    "not_managed": lambda: _("Smaregi does not manage this product's stock, so it is not synced."),
    "no_smaregi_id": lambda: _("This product has no Smaregi product ID."),
}


def _answer(product: Product, field: str, error: str | None, *, listing_id: int | None = None,
            done: str | None = None):
    next_url = safe_next(request.form.get("next") or None)
    if wants_fragment():
        channel_id = parse_id(request.form.get("channel", ""))
        return render_row(product, channel_id, next_url, errors={field: error} if error else None,
                          listing_id=listing_id)
    if error:
        flash(error, "error")
    elif done:
        flash(done, "info")
    return redirect(next_url, 303)


def _value() -> str:
    values = request.form.getlist("value")  # a checkbox's hidden "off" comes first, the ticked box after
    return values[-1] if values else ""


@bp.post("/listings/<int:listing_id>/<field>")
def listing(listing_id: int, field: str):
    """Change one setting of one listing (``field``: sync, min_stock, max_stock, reserve, ratio_percent).

    :raise 404: no such listing or setting, or the listing is linked to no product.
    """
    if field not in LISTING_FIELDS:
        abort(404)
    item = db.session.get(Listing, listing_id) or abort(404)
    product = item.product or abort(404)
    try:
        channel_id = change_setting(item, field, _value())
    except Refusal as refusal:
        db.session.rollback()
        return _answer(db.session.get(Product, product.id), field, refusal_text(refusal), listing_id=listing_id)
    db.session.commit()
    if channel_id is not None:
        enqueue_push(channel_id)
    return _answer(product, field, None, listing_id=listing_id, done=_("Saved."))


@bp.post("/<int:product_id>/total")
def total(product_id: int):
    """Set the product's total stock: an adjustment written to Smaregi, read back, then every channel pushed.

    :raise 404: no such product.
    """
    product = db.session.get(Product, product_id) or abort(404)
    try:
        amount = whole_number(request.form.get("value"))
        if amount is None:
            raise Refusal("not_whole", {"limit": 999_999_999})
        channels = set_total(product, amount, actor=current_user.username)
    except Refusal as refusal:
        return _answer(product, "total", _("Enter a whole number from 0 to %(limit)s.",
                                           limit=f"{refusal.params.get('limit', 0):,}"))
    except AdjustRefused as refused:
        return _answer(product, "total", ADJUST_REFUSALS[refused.code]())
    except PlatformError as exc:
        db.session.rollback()
        return _answer(db.session.get(Product, product_id), "total",
                       _("Smaregi did not take the new stock: %(reason)s", reason=platform_error_text(exc)))
    db.session.commit()
    for channel_id in sorted(channels):
        enqueue_push(channel_id)
    return _answer(db.session.get(Product, product_id), "total", None,
                   done=_("The total stock was set in Smaregi and is being sent to every channel."))


@bp.post("/<int:product_id>/threshold")
def threshold(product_id: int):
    """The product's own low-stock threshold (seed 004 在庫数通知); blank: the one for all products.

    :raise 404: no such product.
    """
    product = db.session.get(Product, product_id) or abort(404)
    try:
        product.low_stock_threshold = whole_number(request.form.get("value"))
    except Refusal as refusal:
        db.session.rollback()
        return _answer(db.session.get(Product, product_id), "threshold",
                       _("Enter a whole number from 0 to %(limit)s, or leave it blank for the threshold of all "
                         "products.", limit=f"{refusal.params.get('limit', 0):,}"))
    db.session.commit()
    return _answer(product, "threshold", None, done=_("Low-stock threshold saved."))
