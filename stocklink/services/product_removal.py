"""Deleting products from stocklink (seed 004 ④商品削除, seed 002): never on a channel, never in Smaregi.

Seed 004: "チェックをいれた商品を在庫連携画面上から削除します。※モール・カートからは削除されません".
The product row goes, with its ledger history and its set components. Its listings stay, each
unlinked (``product_id`` NULL), with its sync flag, settings and last known channel stock, no dirty
mark and no difference: nothing is pushed to them until the merchant links them again (the link
screen shows them as unlinked listings, and the channel item is exactly as it was). A product
that is part of a set, or that holds reserved web-order quantities, is refused: deleting it would
change the set's availability or lose the reservation. A product Smaregi still has comes back
when Smaregi next notifies a change of it, as a new product.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update

from stocklink.infra.extensions import db
from stocklink.models import Listing, Product, SetComponent


def delete_products(product_ids: Iterable[int]) -> tuple[list[int], dict[int, str]]:
    """Delete these products from stocklink; returns (deleted ids, {refused id: ``component`` | ``reserved``}).
    Does not commit."""
    ids = sorted(set(product_ids))
    if not ids:
        return [], {}
    refused: dict[int, str] = {}
    for component_id in db.session.scalars(select(SetComponent.component_id)
                                           .where(SetComponent.component_id.in_(ids)).distinct()):
        refused[component_id] = "component"
    for product_id in db.session.scalars(select(Product.id).where(Product.id.in_(ids), Product.reserved != 0)):
        refused.setdefault(product_id, "reserved")
    doomed = [pid for pid in db.session.scalars(select(Product.id).where(Product.id.in_(ids))) if pid not in refused]
    if doomed:
        db.session.execute(update(Listing).where(Listing.product_id.in_(doomed))
                           .values(product_id=None, dirty=False, difference=False, difference_since=None)
                           .execution_options(synchronize_session=False))
        db.session.execute(delete(Product).where(Product.id.in_(doomed)).execution_options(synchronize_session=False))
        db.session.expire_all()
    return doomed, refused
