"""Products: the 在庫連携 grid of seed 004 (SPEC §8), 100 rows a page, and one product's page.

One URL, ``/products/``, with every filter in the query string (:mod:`stocklink.web.grid_params`):
a browser navigation gets the page, an htmx swap gets ``_rows.html`` alone
(:func:`~stocklink.web.fragments.page_or_fragment`). Inline edits are in
:mod:`stocklink.web.grid_edits`, the buttons above the grid in :mod:`stocklink.web.grid_bulk`.
"""
from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, abort, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Product, StockLedger
from stocklink.services import grid, merchant_settings
from stocklink.services.grid_alerts import grid_alerts
from stocklink.web.fragments import page_or_fragment
from stocklink.web.grid_params import GridFilters, parse_filters

bp = Blueprint("products", __name__, url_prefix="/products")
PAGE_SIZE = grid.PAGE_SIZE


def search_of(filters: GridFilters) -> grid.Search:
    low, high = filters.total_range
    return grid.Search(sets_only=filters.kind == "set", channel_id=filters.channel_id, words=filters.words,
                       total_min=low, total_max=high, link=filters.link, sync=filters.sync,
                       difference=filters.difference)


def current_filters(args=None) -> tuple[GridFilters, list, list]:
    """(filters, channels, problems): the filters of ``args`` (the request's query string), with a
    channel that does not exist dropped and named among the problems."""
    filters = parse_filters(request.args if args is None else args)
    channels = grid.channels()
    problems = list(filters.problems)
    if filters.channel_id is not None and not any(c.id == filters.channel_id for c in channels):
        problems.append(_l("There is no channel %(value)s; the grid shows every channel.", value=filters.channel_id))
        filters = replace(filters, channel_id=None)
    return filters, channels, problems


def grid_context(filters: GridFilters, channels: list, problems: list) -> dict:
    """Everything ``_rows.html`` needs: a count, a page of products, their listings and sets."""
    search = search_of(filters)
    total = grid.count(search)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(filters.page, pages)  # past the last page (rows deleted since the link was made): the last
    filters = replace(filters, page=page)
    rows = grid.rows_for(grid.page_of_products(search, page))
    channel = next((c for c in channels if c.id == filters.channel_id), None)
    return dict(rows=rows, total=total, page=page, pages=pages, filters=filters, channels=channels,
                channels_by_id={c.id: c for c in channels}, channel=channel, problems=problems,
                show_images=merchant_settings.get("display.images"), would_push=grid.would_push,
                next_url=url_for("products.index", **filters.query()), grid_channel_id=filters.channel_id)


@bp.get("/")
def index():
    """The grid; a bad filter value is named above it and ignored (never a 400 or a 500)."""
    filters, channels, problems = current_filters()
    context = grid_context(filters, channels, problems)
    context["alerts"] = grid_alerts()
    return page_or_fragment("products/index.html", "products/_rows.html", **context)


@bp.get("/<int:product_id>")
def show(product_id: int):
    """:raise 404: no such product."""
    product = db.session.get(Product, product_id) or abort(404)
    history = db.session.scalars(select(StockLedger).where(StockLedger.product_id == product.id)
                                 .order_by(StockLedger.id.desc()).limit(200)).all()
    [row] = grid.rows_for([product])
    return render_template("products/show.html", product=product, history=history, row=row,
                           listings=product.listings.all(), channels_by_id={c.id: c for c in grid.channels()})


LINK_PROBLEMS = {
    "multiple": _l("Several products are linked"),
    "unknown_item": _l("Not found on the channel"),
    "not_managed": _l("Stock management is off in Smaregi"),
}


@bp.app_template_filter("link_problem")
def link_problem_text(code: str) -> str:
    """A listing's link problem for the merchant (SPEC §6: 複数の商品が紐づいています)."""
    label = LINK_PROBLEMS.get(code)
    return str(label) if label is not None else code


ACTORS = {"smaregi": _l("Smaregi"), "system": _l("stocklink"), "order": _l("Web order")}


@bp.app_template_filter("ledger_actor")
def ledger_actor(actor: str | None) -> str:
    """Who changed the stock: Smaregi, stocklink itself, or the operator's name as it is."""
    label = ACTORS.get(actor or "system")
    return str(label) if label is not None else actor


def render_row(product: Product, channel_id: int | None, next_url: str, *, errors: dict | None = None,
               listing_id: int | None = None):
    """One grid row again (the answer to an inline edit), in the columns of ``channel_id``;
    ``errors`` (field → sentence) are shown in the cells of ``listing_id`` or of the total."""
    channels = grid.channels()
    channel = next((c for c in channels if c.id == channel_id), None)
    [row] = grid.rows_for([product])
    return render_template("products/_row.html", row=row, channel=channel, channels_by_id={c.id: c for c in channels},
                           show_images=merchant_settings.get("display.images"), would_push=grid.would_push,
                           next_url=next_url, grid_channel_id=channel.id if channel else None,
                           edit_errors=errors or {}, edit_for=product.id, edit_listing=listing_id)
