"""The folded text the product grid and the link screen search (``search_text`` columns).

A product's text holds its name, variation label, Smaregi id, product code and group code,
and the SKU of every listing linked to it (seed 004: the keyword searches "every code"); a
listing's holds its identifier, SKU and title. Everything goes through
:func:`~stocklink.domain.text.search_key`, as the merchant's keyword does, so the filter is
one ``LIKE`` per word on one column.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select, update

from stocklink.domain.text import search_key, search_words
from stocklink.infra.extensions import db
from stocklink.models import Listing, Product


def product_text(name, variation, smaregi_id, code, group_code, listing_codes: Iterable[str | None] = ()) -> str:
    parts = [name, variation, smaregi_id, code, group_code, *listing_codes]
    return " ".join(dict.fromkeys(key for key in (search_key(p) for p in parts) if key))


def listing_text(identifier, sku, title) -> str:
    return " ".join(dict.fromkeys(key for key in (search_key(p) for p in (identifier, sku, title)) if key))


def refresh_products(product_ids: Iterable[int] | None = None, *, chunk: int = 2000) -> int:
    """Recompute ``search_text`` of these products (all when ``None``); returns how many changed.
    Does not commit."""
    db.session.flush()
    ids = None if product_ids is None else sorted(set(product_ids))
    stmt = select(Product.id, Product.name, Product.variation, Product.smaregi_product_id,
                  Product.product_code, Product.group_code, Product.search_text).order_by(Product.id)
    rows = []
    if ids is None:
        rows = db.session.execute(stmt).all()
    else:
        for start in range(0, len(ids), chunk):
            rows += db.session.execute(stmt.where(Product.id.in_(ids[start:start + chunk]))).all()
    codes: dict[int, list[str]] = {}
    listing_stmt = select(Listing.product_id, Listing.sku, Listing.identifier).where(Listing.product_id.is_not(None))
    if ids is None:
        found = db.session.execute(listing_stmt).all()
    else:
        found = []
        for start in range(0, len(ids), chunk):
            found += db.session.execute(listing_stmt.where(Listing.product_id.in_(ids[start:start + chunk]))).all()
    for product_id, sku, identifier in found:
        codes.setdefault(product_id, []).extend((sku, identifier))
    changes = []
    for row in rows:
        text = product_text(row.name, row.variation, row.smaregi_product_id, row.product_code, row.group_code,
                            codes.get(row.id, ()))
        if text != row.search_text:
            changes.append({"pid": row.id, "text": text})
    if changes:
        table = Product.__table__
        db.session.connection().execute(update(table).where(table.c.id == bindparam("pid"))
                                        .values(search_text=bindparam("text")), changes)
    return len(changes)


def refresh_listings(listing_ids: Iterable[int] | None = None, *, chunk: int = 2000) -> int:
    """Recompute ``search_text`` of these listings (all when ``None``), reading them ``chunk`` ids
    a query (PostgreSQL takes at most 65,535 parameters: a 100,000-item import names more). Does
    not commit."""
    db.session.flush()
    stmt = select(Listing.id, Listing.identifier, Listing.sku, Listing.title, Listing.search_text)
    if listing_ids is None:
        rows = db.session.execute(stmt).all()
    else:
        ids = sorted(set(listing_ids))
        rows = []
        for start in range(0, len(ids), chunk):
            rows += db.session.execute(stmt.where(Listing.id.in_(ids[start:start + chunk]))).all()
    changes = [{"lid": row.id, "text": text} for row in rows
               if (text := listing_text(row.identifier, row.sku, row.title)) != row.search_text]
    if changes:
        table = Listing.__table__
        db.session.connection().execute(update(table).where(table.c.id == bindparam("lid"))
                                        .values(search_text=bindparam("text")), changes)
    return len(changes)



def matching(column, keyword: str | None) -> list:
    """``WHERE`` conditions for a keyword on a ``search_text`` column: every comma-separated word
    (folded by :func:`~stocklink.domain.text.search_words`) must appear; ``%`` and ``_`` typed by
    the merchant are matched as themselves."""
    return [column.contains(word, autoescape=True) for word in search_words(keyword)]
