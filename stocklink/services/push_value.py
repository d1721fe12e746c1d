"""What stocklink would push to a listing now, from the database: the inputs of
:func:`~stocklink.domain.stock.compute_push_quantity` (the one function that decides it).

The push (:func:`stocklink.jobs.push.plan_writes`) and the read-back's difference check
(:mod:`stocklink.services.read_back`) both ask here, so a difference is exactly "the channel
holds something other than what the next push would write".
"""
from __future__ import annotations

from fractions import Fraction

from sqlalchemy import select

from stocklink.domain.stock import (
    ChannelRange,
    PushDecision,
    QuantityPolicy,
    compute_push_quantity,
    set_availability,
    total_stock,
)
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SetComponent


def base_stock(product: Product) -> int:
    """SPEC §3 step 1: the product's total stock, or for a set product its set availability."""
    if not product.is_set:
        return product.total
    rows = db.session.execute(select(Product.smaregi_stock, Product.reserved, SetComponent.quantity)
                              .join(SetComponent, SetComponent.component_id == Product.id)
                              .where(SetComponent.set_product_id == product.id)).all()
    return set_availability([(total_stock(stock, reserved), qty) for stock, reserved, qty in rows]) if rows else 0


def channel_range(channel: Channel) -> ChannelRange:
    return ChannelRange(channel.range_min, channel.range_max)


def policy_of(listing: Listing) -> QuantityPolicy:
    """A listing's quantity settings (min, max, reserve, allocation ratio) as the domain takes them."""
    return QuantityPolicy(min_stock=listing.min_stock, max_stock=listing.max_stock,
                          reserve=listing.reserve, ratio=Fraction(listing.ratio_percent, 100))


def push_for_base(listing: Listing, range_: ChannelRange, base: int, last_confirmed: int | None) -> PushDecision:
    """The value for ``listing`` from a base stock the caller already has (the grid loads a page's
    bases in one query)."""
    return compute_push_quantity(base, policy_of(listing), range_, last_confirmed)


def push_decision(listing: Listing, range_: ChannelRange, last_confirmed: int | None) -> PushDecision | None:
    """The value for ``listing`` and whether it differs from ``last_confirmed``; ``None`` when the
    listing is not pushed at all (no product, stock management off, a link problem)."""
    product = listing.product
    if product is None or not product.stock_managed or listing.link_problem:
        return None
    return push_for_base(listing, range_, base_stock(product), last_confirmed)
