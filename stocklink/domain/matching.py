"""Linking a channel's listings to Smaregi products by code (紐づけ条件, seed 002, SPEC §8).

A listing's code (ColorMe 型番, Shopify SKU, NextEngine 商品コード) is matched against each
product's Smaregi 商品コード, and, when the merchant adds a second key in Settings, against that
key too (the product's Smaregi id, or the code of its listing on the base channel). Codes are
compared after :func:`~stocklink.domain.text.normalise_code`, so ``" A-1 "`` from a spreadsheet
and ``"A-1"`` from an API are the same key; the inside of a code is never folded (``a-1`` and
``A-1`` can be two products).

What cannot be linked is named, each with its own fix on the link screen:

- ``no_code``: the listing has no code at all (set it on the channel, or link by hand);
- ``no_match``: no product has this code (fix the code on either side, or link by hand);
- ``several_products``: more than one Smaregi product has this code (Smaregi codes should be
  unique; link by hand);
- ``not_stock_managed``: the product is 在庫管理対象外 in Smaregi; it is linked but never
  pushed until stock management is turned on (seed 003);
- ``multiple``: 複数の商品が紐づいています — two listings of one channel are linked to the same
  product; neither is pushed until one is unlinked (seed 002, SPEC §6);
- ``unlinked``: the merchant unlinked it by hand; automatic linking leaves it alone.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from stocklink.domain.text import normalise_code


class LinkProblem(StrEnum):
    NO_CODE = "no_code"
    NO_MATCH = "no_match"
    SEVERAL_PRODUCTS = "several_products"
    NOT_STOCK_MANAGED = "not_stock_managed"
    MULTIPLE = "multiple"
    UNLINKED = "unlinked"


# The second key a merchant can add to the rule: none, the Smaregi product id (スマレジ商品ID), or
# the code of the product's listing on the base channel.
SECOND_KEYS = ("none", "smaregi_id", "base_code")

# Problems that keep a listing from being pushed although it has a product.
BLOCKING = frozenset({LinkProblem.NOT_STOCK_MANAGED, LinkProblem.MULTIPLE})
# Problems the matcher decides (and may clear again); others (``unknown_item``: the channel
# does not know the listing) are left to whoever set them.
MATCHER_PROBLEMS = frozenset(p.value for p in LinkProblem if p is not LinkProblem.UNLINKED)


@dataclass(frozen=True)
class ProductKeys:
    """What a product can be matched by."""

    product_id: int
    code: str | None
    second: str | None = None
    stock_managed: bool = True


@dataclass(frozen=True)
class Match:
    """The decision for one listing: the product to link (or None) and the problem (or None)."""

    product_id: int | None
    problem: LinkProblem | None


class CodeIndex:
    """Products by normalised code, primary key first, then the second key."""

    def __init__(self, products: Iterable[ProductKeys]):
        self.primary: dict[str, list[ProductKeys]] = defaultdict(list)
        self.secondary: dict[str, list[ProductKeys]] = defaultdict(list)
        for product in products:
            if (code := normalise_code(product.code)) is not None:
                self.primary[code].append(product)
            if (second := normalise_code(product.second)) is not None:
                self.secondary[second].append(product)

    def match(self, code: str | None) -> Match:
        """The product a listing with this code links to (the primary key wins over the second)."""
        key = normalise_code(code)
        if key is None:
            return Match(None, LinkProblem.NO_CODE)
        found = self.primary.get(key) or self.secondary.get(key) or []
        distinct = list({p.product_id: p for p in found}.values())
        if not distinct:
            return Match(None, LinkProblem.NO_MATCH)
        if len(distinct) > 1:
            return Match(None, LinkProblem.SEVERAL_PRODUCTS)
        product = distinct[0]
        return Match(product.product_id, None if product.stock_managed else LinkProblem.NOT_STOCK_MANAGED)


def claimed_twice(links: Iterable[tuple[int, int | None]]) -> set[int]:
    """The listings of one channel that share their product with another listing of it
    (``(listing_id, product_id)`` pairs): 複数の商品が紐づいています."""
    by_product: dict[int, list[int]] = defaultdict(list)
    for listing_id, product_id in links:
        if product_id is not None:
            by_product[product_id].append(listing_id)
    return {listing_id for ids in by_product.values() if len(ids) > 1 for listing_id in ids}


def problem_of_link(stock_managed: bool, shares_product: bool) -> LinkProblem | None:
    """The problem of a listing that has a product: claimed twice wins (it is the one the
    merchant must fix on the link screen), then stock management off."""
    if shares_product:
        return LinkProblem.MULTIPLE
    return None if stock_managed else LinkProblem.NOT_STOCK_MANAGED
