"""The product grid's rows: which products a search finds, and what each row shows (seed 004).

A page costs a fixed number of queries whatever its rows: one count, one for the page of
products, one for their listings, one for the components of the sets among them. The page is
ordered by primary key. A listing filter that few listings meet (sync off, a difference, a link
problem) is ``products.id IN (SELECT product_id FROM listings WHERE …)``: the database reads
its narrow index once. One that most products meet (linked, sync on) and "unlinked" are a
correlated ``[NOT] EXISTS`` on the listings' product index: the page then stops after its 100
rows instead of first collecting every listing's product (bench/grid.py: sync on over 100,000
products and 400,000 listings took 170 ms a page on SQLite as ``IN``). Linked and unlinked on
every channel read the product's own count of linked listings (``linked_listings``, kept by
the database: :mod:`stocklink.models.link_counts`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select

from stocklink.domain.stock import PushDecision, set_availability, total_stock
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SetComponent
from stocklink.services import push_value

PAGE_SIZE = 100


@dataclass(frozen=True)
class Search:
    """The filters as the query needs them (the web layer parses the URL into one)."""

    sets_only: bool = False
    channel_id: int | None = None
    words: Sequence[str] = ()
    total_min: int | None = None
    total_max: int | None = None
    link: str = ""  # linked | unlinked | problem
    sync: str = ""  # on | off
    difference: bool = False


def _listings_of(search: Search, *conditions):
    """Product ids with a listing (on the chosen channel, if one is) meeting ``conditions``.

    No ``product_id IS NOT NULL`` here (a NULL never matches ``IN``): SQLite would then read
    the listings through their product index instead of the narrow partial indexes of 0010."""
    stmt = select(Listing.product_id).where(*conditions)
    if search.channel_id is not None:
        stmt = stmt.where(Listing.channel_id == search.channel_id)
    return stmt


def _any_listing(search: Search, *conditions):
    """``EXISTS`` a listing of the product (on the chosen channel, if one is) meeting ``conditions``."""
    stmt = select(Listing.id).where(Listing.product_id == Product.id, *conditions)
    if search.channel_id is not None:
        stmt = stmt.where(Listing.channel_id == search.channel_id)
    return stmt.exists()


def search_statement(search: Search, *columns):
    """``SELECT products.id`` (or ``columns``) ``WHERE`` every filter of ``search`` (no order, no limit)."""
    stmt = select(*(columns or (Product.id,)))
    if search.sets_only:
        stmt = stmt.where(Product.is_set.is_(True))
    for word in search.words:  # search_text is folded like the words: one LIKE each, % and _ escaped
        stmt = stmt.where(Product.search_text.contains(word, autoescape=True))
    total = Product.smaregi_stock - Product.reserved
    if search.total_min is not None:
        stmt = stmt.where(total >= search.total_min)
    if search.total_max is not None:
        stmt = stmt.where(total <= search.total_max)
    # Sync on is a listing of the product: it says "linked" already.
    if search.link == "linked" and search.sync != "on":
        stmt = stmt.where(_any_listing(search) if search.channel_id is not None else Product.linked_listings > 0)
    elif search.link == "unlinked":
        stmt = stmt.where(~_any_listing(search) if search.channel_id is not None else Product.linked_listings == 0)
    elif search.link == "problem":
        stmt = stmt.where(Product.id.in_(_listings_of(search, Listing.link_problem.is_not(None))))
    if search.sync == "on":
        stmt = stmt.where(_any_listing(search, Listing.sync_enabled.is_(True)))
    elif search.sync == "off":
        stmt = stmt.where(Product.id.in_(_listings_of(search, Listing.sync_enabled.is_(False))))
    if search.difference:
        stmt = stmt.where(Product.id.in_(_listings_of(search, Listing.difference.is_(True))))
    return stmt


def count(search: Search) -> int:
    """How many products (SKUs, seed 004) the search finds."""
    return db.session.scalar(select(func.count()).select_from(search_statement(search).subquery())) or 0


def page_of_products(search: Search, page: int, size: int = PAGE_SIZE) -> list[Product]:
    """One page of the products the search finds, by id (the primary key: no sort of its own)."""
    stmt = search_statement(search, Product).order_by(Product.id).offset((page - 1) * size).limit(size)
    return list(db.session.scalars(stmt))


def product_ids(search: Search, chunk: int = 1000) -> Iterable[list[int]]:
    """Every product id the search finds, in id order, ``chunk`` at a time (keyset paging)."""
    after = 0
    while True:
        ids = list(db.session.scalars(search_statement(search).where(Product.id > after)
                                      .order_by(Product.id).limit(chunk)))
        if not ids:
            return
        yield ids
        after = ids[-1]


@dataclass
class Row:
    """One product as the grid shows it: its base stock (a set: its availability), its listings by
    channel id, and for a set its components as ``(name, code, quantity, total)``."""

    product: Product
    base: int
    listings: dict[int, list[Listing]] = field(default_factory=dict)
    components: list[tuple[str, str | None, int, int]] = field(default_factory=list)

    def listing_on(self, channel_id: int) -> Listing | None:
        found = self.listings.get(channel_id) or []
        return found[0] if found else None


def would_push(listing: Listing, channel: Channel, base: int) -> PushDecision:
    """What a push would write to ``listing`` now, by the one function that decides it."""
    return push_value.push_for_base(listing, push_value.channel_range(channel), base, listing.last_confirmed_quantity)


def rows_for(products: list[Product]) -> list[Row]:
    """The rows of these products: two more queries (listings; set components), whatever their number."""
    ids = [p.id for p in products]
    listings: dict[int, dict[int, list[Listing]]] = {}
    components: dict[int, list[tuple[str, str | None, int, int]]] = {}
    if ids:
        for listing in db.session.scalars(select(Listing).where(Listing.product_id.in_(ids)).order_by(Listing.id)):
            listings.setdefault(listing.product_id, {}).setdefault(listing.channel_id, []).append(listing)
        set_ids = [p.id for p in products if p.is_set]
        if set_ids:
            for set_id, name, code, quantity, stock, reserved in db.session.execute(
                    select(SetComponent.set_product_id, Product.name, Product.product_code, SetComponent.quantity,
                           Product.smaregi_stock, Product.reserved)
                    .join(Product, Product.id == SetComponent.component_id)
                    .where(SetComponent.set_product_id.in_(set_ids)).order_by(SetComponent.id)):
                components.setdefault(set_id, []).append((name, code, quantity, total_stock(stock, reserved)))
    rows = []
    for product in products:
        parts = components.get(product.id, [])
        if product.is_set:  # SPEC §3 step 1: a set's base is its availability (0 without components)
            base = set_availability([(total, qty) for _n, _c, qty, total in parts]) if parts else 0
        else:
            base = product.total
        rows.append(Row(product, base, listings.get(product.id, {}), parts))
    return rows


def channels() -> list[Channel]:
    """Every channel, by id (a handful of rows: loaded once per page, so listings never load theirs)."""
    return list(db.session.scalars(select(Channel).order_by(Channel.id)))
