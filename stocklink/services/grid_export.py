"""The product grid as CSV rows (seed 004 ①CSV出力): what the grid shows, one product a row.

Rows are plain values; :func:`stocklink.domain.csv_cells.csv_bytes` neutralises and encodes them.
Products are read ``chunk`` at a time with their listings (two queries a chunk), so exporting
every product of a large catalogue never holds it all in memory (the session's identity map
keeps unmodified rows only weakly).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask_babel import gettext as _
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Product
from stocklink.services import grid


def header(channels: list[Channel]) -> list[str]:
    columns = [_("Product code"), _("Smaregi ID"), _("Name"), _("Variation"), _("Set"), _("Total stock")]
    for channel in channels:
        columns += [f"{channel.name} {label}" for label in (_("Sync"), _("Min"), _("Max"), _("Reserve"),
                                                             _("Ratio (percent)"), _("SKU"), _("Channel stock"),
                                                             _("Difference"))]
    return columns


def _row(row: grid.Row, channels: list[Channel]) -> list:
    p = row.product
    cells = [p.product_code, p.smaregi_product_id, p.name, p.variation, 1 if p.is_set else 0, row.base]
    for channel in channels:
        listing = row.listing_on(channel.id)
        if listing is None:
            cells += [None] * 8
            continue
        cells += [1 if listing.sync_enabled else 0, listing.min_stock, listing.max_stock, listing.reserve,
                  listing.ratio_percent, listing.sku or listing.identifier, listing.last_confirmed_quantity,
                  1 if listing.difference else 0]
    return cells


def export_rows(chunks: Iterable[list[int]], channels: list[Channel]) -> Iterator[list]:
    """The header, then one row per product of ``chunks`` (lists of product ids, in order)."""
    yield header(channels)
    for ids in chunks:
        products = list(db.session.scalars(select(Product).where(Product.id.in_(ids)).order_by(Product.id)))
        for row in grid.rows_for(products):
            yield _row(row, channels)
