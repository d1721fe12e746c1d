"""Setting a product's total stock from the grid: an adjustment in Smaregi, the master (seed 004 総在庫数).

Smaregi is asked to hold ``total + reserved`` in the configured store (total = Smaregi stock −
reserved, SPEC §3), then read again, and what it answers is stored through the ledger
(:func:`~stocklink.services.stock_ledger.apply_smaregi_reads`) with the operator's name and the
cause ``merchant:grid_total``; every synced listing of the product (and of the sets it is part
of) is then marked dirty, so each channel is pushed. Nothing in stocklink changes unless
Smaregi took the value.
"""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models import Product
from stocklink.models._types import utcnow
from stocklink.services.smaregi_stock import smaregi_client, stored_stock
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads, mark_listings_dirty

CAUSE = "merchant:grid_total"
SMAREGI_MEMO = "stocklink: {actor}"


class AdjustRefused(Exception):
    """The product's total cannot be set here; ``code`` is ``set`` (a set's figure comes from its
    components), ``not_managed`` (stock management off in Smaregi) or ``no_smaregi_id``."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def set_total(product: Product, total: int, *, actor: str) -> set[int]:
    """Make ``product``'s total stock ``total``; returns the channels to push (the caller commits first).

    :raise AdjustRefused: the product's total is not Smaregi's to set.
    :raise stocklink.platforms.base.PlatformError: Smaregi refused or did not answer; nothing changed here.
    """
    if product.is_set:
        raise AdjustRefused("set")
    if not product.stock_managed:
        raise AdjustRefused("not_managed")
    if not product.smaregi_product_id:
        raise AdjustRefused("no_smaregi_id")
    sid, product_id = product.smaregi_product_id, product.id
    client = smaregi_client()
    client.set_stock(sid, total + product.reserved, memo=SMAREGI_MEMO.format(actor=actor)[:100])
    read_at = utcnow()
    stock = client.fetch_stock([sid])  # what Smaregi holds now, a POS sale since included
    apply_smaregi_reads({product_id: StockRead(stored_stock(stock, sid), CAUSE)}, read_at, actor=actor)
    db.session.expire(product)
    return mark_listings_dirty({product_id})
