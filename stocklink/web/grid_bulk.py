"""The buttons above the product grid (seed 004 ■処理ボタン): 反映, 連携 on/off, 商品削除, CSV 出力.

They post the ticked rows (``ids``) and the grid's search (``f_*`` fields, the query string the
grid was showing), then go back to that grid with a message: plain forms, no JavaScript needed.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, flash, redirect, request, stream_with_context
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select, update

from stocklink.domain.csv_cells import csv_bytes
from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.models import Channel, Listing
from stocklink.models._types import utcnow
from stocklink.services import grid, merchant_settings
from stocklink.services.differences import reflect
from stocklink.services.grid_export import export_rows
from stocklink.services.product_removal import delete_products
from stocklink.web.params import form_ids, safe_next
from stocklink.web.products import current_filters, search_of

bp = Blueprint("grid_bulk", __name__, url_prefix="/products")


def _posted_filters():
    """The grid's search as the form carried it (``f_q`` → ``q`` …)."""
    return current_filters({key[2:]: value for key, value in request.form.items() if key.startswith("f_")})


def _back(message: str, level: str = "info"):
    flash(message, level)
    return redirect(safe_next(request.form.get("next") or None), 303)


def _csv(chunks, channels) -> Response:
    encoding = merchant_settings.get("csv.encoding")
    name = f"products-{datetime.now().strftime('%Y%m%d-%H%M%S')}.csv"
    body = stream_with_context(csv_bytes(export_rows(chunks, channels), encoding))
    charset = "utf-8" if encoding == "utf-8" else "shift_jis"
    return Response(body, mimetype="text/csv", headers={
        "Content-Type": f"text/csv; charset={charset}", "Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/export.csv")
def export():
    """CSV 出力 すべて: every product the search finds (not only this page), in the columns of the
    chosen channel, or of every channel when none is chosen."""
    filters, channels, _problems = current_filters()
    chosen = [c for c in channels if c.id == filters.channel_id] or channels
    return _csv(grid.product_ids(search_of(filters)), chosen)


@bp.post("/bulk")
def action():
    """``action``: reflect | sync_on | sync_off | delete | csv_selected."""
    kind = request.form.get("action", "")
    filters, channels, _problems = _posted_filters()
    ids = form_ids()
    if kind in ("sync_on", "sync_off"):
        return _sync_all(filters, kind == "sync_on")
    if kind not in ("reflect", "delete", "csv_selected"):
        return _back(_("Choose what to do."), "warning")
    if not ids:
        return _back(_("Select at least one product."), "warning")
    if kind == "csv_selected":
        chosen = [c for c in channels if c.id == filters.channel_id] or channels
        return _csv([sorted(ids)], chosen)
    if kind == "reflect":
        return _reflect(ids, filters.channel_id)
    return _delete(ids)


def _reflect(product_ids: list[int], channel_id: int | None):
    """反映: stocklink's figure written over the selected products' listings (on the chosen channel)."""
    stmt = select(Listing.id).where(Listing.product_id.in_(product_ids))
    if channel_id is not None:
        stmt = stmt.where(Listing.channel_id == channel_id)
    listing_ids = list(db.session.scalars(stmt))
    channel_ids = reflect(listing_ids)
    db.session.commit()
    for cid in sorted(channel_ids):
        enqueue_push(cid)
    return _back(ngettext("%(num)d listing is being reflected.", "%(num)d listings are being reflected.",
                          len(listing_ids)))


def _sync_all(filters, on: bool):
    """連携 on/off for every product the search finds, on the chosen channel (seed 004 ②連携)."""
    channel = db.session.get(Channel, filters.channel_id) if filters.channel_id else None
    if channel is None:
        return _back(_("Choose a channel first: sync is switched per channel."), "warning")
    values = {"sync_enabled": on}
    if on:  # listings switched on get the current figure at the next push
        values.update(dirty=True, fact_at=utcnow())
    changed = db.session.execute(update(Listing).where(
        Listing.channel_id == channel.id, Listing.sync_enabled.is_(not on),
        Listing.product_id.in_(grid.search_statement(search_of(filters)))).values(**values)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if on and changed:
        enqueue_push(channel.id)
    message = (ngettext("Sync switched on for %(num)d listing on %(name)s.",
                        "Sync switched on for %(num)d listings on %(name)s.", changed, name=channel.name) if on else
               ngettext("Sync switched off for %(num)d listing on %(name)s.",
                        "Sync switched off for %(num)d listings on %(name)s.", changed, name=channel.name))
    return _back(message)


def _delete(product_ids: list[int]):
    deleted, refused = delete_products(product_ids)
    db.session.commit()
    message = ngettext("%(num)d product deleted from stocklink (nothing was deleted on the channels).",
                       "%(num)d products deleted from stocklink (nothing was deleted on the channels).",
                       len(deleted))
    if refused:
        components = sum(1 for reason in refused.values() if reason == "component")
        reserved = len(refused) - components
        if components:
            message += " " + ngettext("%(num)d is part of a set and was kept: remove it from the set first.",
                                      "%(num)d are part of a set and were kept: remove them from the set first.",
                                      components)
        if reserved:
            message += " " + ngettext("%(num)d has web orders not yet registered in Smaregi and was kept.",
                                      "%(num)d have web orders not yet registered in Smaregi and were kept.",
                                      reserved)
    return _back(message, "warning" if refused else "info")
