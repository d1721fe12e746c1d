"""Linkability, the confirmation queue and the exclusion list (SPEC §4, seed 000)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from stocklink.domain.linking import is_linkable
from stocklink.infra.extensions import db
from stocklink.models import ConfirmationItem, Exclusion, Listing, Product
from stocklink.models._types import utcnow


@dataclass
class Linkage:
    """What stocklink knows of a set of Smaregi products."""

    products: dict[str, Product]
    linked: set[str]
    excluded: set[str]
    not_managed: set[str]
    released: set[str]  # abort mode: the merchant chose "do not exclude"


def linkage(smaregi_ids: Iterable[str]) -> Linkage:
    ids = list(dict.fromkeys(smaregi_ids))
    products = {p.smaregi_product_id: p for p in db.session.scalars(
        select(Product).where(Product.smaregi_product_id.in_(ids)))} if ids else {}
    listed: dict[int, str] = {}
    if products:
        for pid, identifier in db.session.execute(
                select(Listing.product_id, Listing.identifier).where(
                    Listing.product_id.in_([p.id for p in products.values()]))):
            listed.setdefault(pid, identifier)
    linked = {sid for sid, p in products.items()
              if p.stock_managed and is_linkable(p.product_code, listed.get(p.id), store_only=False)}
    excluded = set(db.session.scalars(select(Exclusion.smaregi_product_id)
                                      .where(Exclusion.smaregi_product_id.in_(ids)))) if ids else set()
    released = set(db.session.scalars(select(ConfirmationItem.smaregi_product_id).where(
        ConfirmationItem.smaregi_product_id.in_(ids), ConfirmationItem.decision == "do_not_exclude"))) \
        if ids else set()
    not_managed = {sid for sid, p in products.items() if not p.stock_managed}
    return Linkage(products, linked, excluded, not_managed, released)


def describe(smaregi_id: str, product: Product | None) -> dict:
    """A plain description for mails and the queue (never trusted HTML)."""
    if product is None:
        return {"smaregi_product_id": smaregi_id, "product_code": None, "name": None}
    return {"smaregi_product_id": smaregi_id, "product_code": product.product_code,
            "name": " ".join(x for x in (product.name, product.variation) if x)}


def reason_for(product: Product | None) -> str:
    if product is None:
        return "unknown_product"
    if not product.product_code:
        return "no_code"
    return "no_listing"


def enqueue_confirmation(smaregi_id: str, product: Product | None, *, inbox_id: int | None,
                         reason: str | None = None) -> ConfirmationItem:
    """Add a product to 確認が必要な商品, or count one more skip of it."""
    item = db.session.scalars(select(ConfirmationItem).where(
        ConfirmationItem.smaregi_product_id == smaregi_id)).first()
    info = describe(smaregi_id, product)
    if item is None:
        item = ConfirmationItem(smaregi_product_id=smaregi_id, product_id=product.id if product else None,
                                product_code=info["product_code"], name=info["name"],
                                reason=reason or reason_for(product), last_inbox_id=inbox_id)
        db.session.add(item)
    else:
        item.times_skipped += 1
        item.last_seen_at = utcnow()
        item.last_inbox_id = inbox_id or item.last_inbox_id
        item.product_code, item.name = info["product_code"] or item.product_code, info["name"] or item.name
    return item


def add_exclusion(smaregi_id: str, product: Product | None, *, automatic: bool) -> bool:
    """Put a product on the exclusion list; returns False if it was already there."""
    exists = db.session.scalars(select(Exclusion).where(Exclusion.smaregi_product_id == smaregi_id)).first()
    if exists is not None:
        return False
    info = describe(smaregi_id, product)
    db.session.add(Exclusion(smaregi_product_id=smaregi_id, product_code=info["product_code"],
                             name=info["name"], automatic=automatic))
    db.session.flush()
    return True


def exclude_items(items: Iterable[ConfirmationItem]) -> int:
    """「在庫連携対象外とする」: move queued products to the exclusion list."""
    count = 0
    for item in items:
        product = db.session.get(Product, item.product_id) if item.product_id else None
        add_exclusion(item.smaregi_product_id, product, automatic=False)
        db.session.delete(item)
        count += 1
    db.session.commit()
    return count


def release_items(items: Iterable[ConfirmationItem], *, adjust: bool) -> tuple[list[str], list[str]]:
    """「確認待ちを解除する」. With ``adjust`` (「同時に在庫数をスマレジに合わせて調整する」) each
    product is checked for linkability first: linkable ones are released and their stock is
    re-read from Smaregi and pushed (the caller enqueues that refresh); the others stay queued.
    Returns (released, still unlinkable) as Smaregi product ids."""
    items = list(items)
    state = linkage([i.smaregi_product_id for i in items])
    released, blocked = [], []
    for item in items:
        if adjust and item.smaregi_product_id not in state.linked:
            blocked.append(item.smaregi_product_id)
            continue
        if item.reason == "aborted":
            # Abort mode: "do not exclude"; the resend from Smaregi is then processed in full.
            item.decision = "do_not_exclude"
        else:
            db.session.delete(item)
        released.append(item.smaregi_product_id)
    db.session.commit()
    return released, blocked


def remove_exclusions(exclusions: Iterable[Exclusion]) -> int:
    count = 0
    for exclusion in exclusions:
        db.session.delete(exclusion)
        count += 1
    db.session.commit()
    return count
