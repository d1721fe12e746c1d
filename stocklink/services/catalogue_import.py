"""Bringing a real shop's catalogue in: Smaregi's products, a channel's listings, and the links
between them (SPEC §8, seed 002 商品登録).

- :func:`import_smaregi` reads every product of the contract (both API generations page it)
  with the configured store's stock; new products are added, changed ones updated, products
  Smaregi no longer lists are **marked** (``removed_at``), never deleted.
- :func:`import_channel` reads every item and variant of one channel through its
  :class:`~stocklink.platforms.interfaces.CatalogueLister`; listings are matched by the
  identifier the client reads and writes stock by. The first channel imported becomes the base
  channel. Listings the channel no longer has are marked, never deleted (nor deleted on the channel).
- :func:`auto_link` links unlinked listings by the SKU rule (:mod:`stocklink.domain.matching`),
  and :func:`recheck_links` names the links that cannot be pushed (複数の商品が紐づいています,
  stock management off).

Each function works in chunks and reports its progress through a callback, so a job can keep
a progress row current; nothing here commits except through that callback's caller. Running
one twice gives the same result (an upsert by key), so an interrupted import is simply run again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, insert, select, update

from stocklink.domain.matching import (
    MATCHER_PROBLEMS,
    SECOND_KEYS,
    CodeIndex,
    LinkProblem,
    ProductKeys,
    claimed_twice,
    problem_of_link,
)
from stocklink.domain.text import normalise_code, variation_label
from stocklink.infra import db_maintenance
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product
from stocklink.models._types import utcnow
from stocklink.services import merchant_settings, search_text
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads, mark_listings_dirty

CHUNK = 1000


@dataclass
class ImportCounts:
    """What one import did so far; ``total`` is None until the platform says how many."""

    done: int = 0
    total: int | None = None
    created: int = 0
    updated: int = 0
    removed: int = 0
    linked: int = 0
    problems: int = 0
    dirty_channels: set[int] = field(default_factory=set)


Progress = Callable[[ImportCounts], None]


def _noop(_counts: ImportCounts) -> None:
    return None


def _chunks(items: Iterable, size: int = CHUNK):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mark_removed(model, ids: list[int], now) -> None:
    for chunk in _chunks(ids):
        db.session.execute(update(model).where(model.id.in_(chunk)).values(removed_at=now)
                           .execution_options(synchronize_session=False))


# --- Smaregi ------------------------------------------------------------------------------

def import_smaregi(client, progress: Progress = _noop) -> ImportCounts:
    """Import every Smaregi product with its stock for the configured store (see module doc)."""
    counts = ImportCounts()
    products = list(client.iter_products())
    counts.total = len(products)
    progress(counts)
    known = {row.smaregi_product_id: row for row in db.session.execute(
        select(Product.id, Product.smaregi_product_id, Product.product_code, Product.name, Product.variation,
               Product.group_code, Product.stock_managed, Product.image_url, Product.removed_at)
        .where(Product.smaregi_product_id.is_not(None)))}
    managed = [p.product_id for p in products if p.stock_managed]
    read_at = utcnow()  # before the read: a notification applied meanwhile is newer and wins
    stock = client.fetch_stock(managed) if managed else {}
    now = utcnow()
    touched: list[int] = []
    for chunk in _chunks(products):
        new_rows, changes = [], []
        for info in chunk:
            values = {"product_code": normalise_code(info.code), "name": info.name or "",
                      "variation": variation_label(info.color, info.size), "group_code": info.group_code,
                      "stock_managed": info.stock_managed, "image_url": getattr(info, "image_url", None)}
            row = known.get(info.product_id)
            if row is None:
                new_rows.append({"smaregi_product_id": info.product_id, **values, "is_set": False,
                                 "smaregi_stock": 0, "reserved": 0, "search_text": "",
                                 "created_at": now, "updated_at": now})
            elif row.removed_at is not None or any(getattr(row, k) != v for k, v in values.items()):
                changes.append({"pid": row.id, **values, "removed_at": None, "updated_at": now})
        if new_rows:
            db.session.execute(insert(Product), new_rows)
        if changes:
            table = Product.__table__
            db.session.connection().execute(
                update(table).where(table.c.id == bindparam("pid"))
                .values({k: bindparam(k) for k in changes[0] if k != "pid"}), changes)
            touched.extend(c["pid"] for c in changes)
        counts.created += len(new_rows)
        counts.updated += len(changes)
        counts.done += len(chunk)
        progress(counts)
    ids = {sid: pid for pid, sid in db.session.execute(
        select(Product.id, Product.smaregi_product_id).where(Product.smaregi_product_id.is_not(None)))}
    seen = {p.product_id for p in products}
    gone = [pid for sid, pid in ids.items() if sid not in seen and known.get(sid) is not None
            and known[sid].removed_at is None]
    _mark_removed(Product, gone, now)
    counts.removed = len(gone)
    changed = apply_smaregi_reads({ids[sid]: StockRead(int(stock.get(sid, 0)), "catalogue_import")
                                   for sid in managed if sid in ids}, read_at)
    counts.dirty_channels |= mark_listings_dirty(changed)
    new_ids = [pid for sid, pid in ids.items() if sid not in known]
    search_text.refresh_products(new_ids + touched + gone)
    # Stock control switched off (seed 003) or back on: the links' problems follow.
    recheck_links(db.session.scalars(select(Channel.id)).all())
    progress(counts)
    return counts


# --- channels -----------------------------------------------------------------------------

def _title(item) -> str:
    return " ".join(x for x in (item.name, item.variation) if x)[:255]


def import_channel(channel: Channel, client, progress: Progress = _noop, *, pace_s: float = 0.0) -> ImportCounts:
    """Import every item of ``channel``'s catalogue, then auto-link (see module doc)."""
    counts = ImportCounts()
    known = {row.identifier: row for row in db.session.execute(
        select(Listing.id, Listing.identifier, Listing.sku, Listing.title, Listing.channel_attributes,
               Listing.dirty, Listing.pending_ref, Listing.removed_at).where(Listing.channel_id == channel.id))}
    seen: set[str] = set()
    touched: list[int] = []
    created_identifiers: list[str] = []
    for chunk in _chunks(client.list_catalogue(pace_s=pace_s)):
        now = utcnow()
        counts.total = getattr(client, "catalogue_total", None)
        new_rows, changes = [], []
        for item in chunk:
            if item.identifier in seen:
                continue
            seen.add(item.identifier)
            attributes = dict(item.extra or {})
            if item.variation:
                attributes["variation"] = item.variation
            if item.image_url:
                attributes["image_url"] = item.image_url
            values = {"sku": normalise_code(item.code), "title": _title(item), "channel_attributes": attributes}
            row = known.get(item.identifier)
            if row is None:
                new_rows.append({"channel_id": channel.id, "identifier": item.identifier, **values,
                                 "sync_enabled": True, "reserve": 0, "ratio_percent": 100, "dirty": False,
                                 "pending_delta": 0, "difference": False, "search_text": "",
                                 "last_confirmed_quantity": item.stock, "last_confirmed_at": now,
                                 "created_at": now})
                created_identifiers.append(item.identifier)
                continue
            change = {}
            if row.removed_at is not None or any(getattr(row, k) != v for k, v in values.items()):
                change.update(values, removed_at=None)
            # The channel's stock as read now, unless a write of ours is on its way (its outcome
            # settles last_confirmed_*, services.write_intents).
            if not row.dirty and not row.pending_ref:
                change.update(last_confirmed_quantity=item.stock, last_confirmed_at=now)
            if change:
                changes.append({"lid": row.id, **change})
                touched.append(row.id)
        if new_rows:
            db.session.execute(insert(Listing), new_rows)
        _update_listings(changes)
        counts.created += len(new_rows)
        counts.updated += sum(1 for c in changes if "sku" in c)
        counts.done += len(chunk)
        if counts.total is not None and counts.done > counts.total:
            counts.total = None  # ColorMe counts products, not their variants: no honest total
        progress(counts)
    now = utcnow()
    gone = [row.id for identifier, row in known.items() if identifier not in seen and row.removed_at is None]
    _mark_removed(Listing, gone, now)
    counts.removed = len(gone)
    if not db.session.scalar(select(Channel.id).where(Channel.is_base.is_(True), Channel.id != channel.id)):
        channel.is_base = True
    channel.catalogue_imported_at = now
    created_ids = _ids_of(channel.id, created_identifiers)
    search_text.refresh_listings(created_ids + touched + gone)
    linked, problems = auto_link(channel)
    counts.linked, counts.problems = linked, problems
    progress(counts)
    return counts


def after_import(counts: ImportCounts) -> bool:
    """Once an import has committed: refresh the database's statistics if it changed many rows
    (:mod:`stocklink.infra.db_maintenance`), so the grid right after it is as quick as later."""
    changed = counts.created + counts.updated + counts.removed + counts.linked
    return db_maintenance.after_bulk_change(["products", "listings"], changed)


def _ids_of(channel_id: int, identifiers: list[str]) -> list[int]:
    if not identifiers:
        return []
    wanted = set(identifiers)
    return [lid for lid, identifier in db.session.execute(
        select(Listing.id, Listing.identifier).where(Listing.channel_id == channel_id)) if identifier in wanted]


def _update_listings(changes: list[dict]) -> None:
    """Core executemany, grouped by the columns each change sets."""
    table = Listing.__table__
    groups: dict[tuple, list[dict]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(k for k in change if k != "lid")), []).append(change)
    for columns, rows in groups.items():
        db.session.connection().execute(
            update(table).where(table.c.id == bindparam("lid")).values({c: bindparam(c) for c in columns}), rows)


# --- linking ------------------------------------------------------------------------------

def second_key() -> str:
    value = merchant_settings.get("sync.link_second_key")
    return value if value in SECOND_KEYS else "none"


def _product_keys(channel: Channel) -> list[ProductKeys]:
    rows = db.session.execute(select(Product.id, Product.product_code, Product.smaregi_product_id,
                                     Product.stock_managed).where(Product.removed_at.is_(None))).all()
    key = second_key()
    base_codes: dict[int, str] = {}
    if key == "base_code":
        base = db.session.scalar(select(Channel.id).where(Channel.is_base.is_(True)))
        if base is not None and base != channel.id:
            base_codes = {pid: sku for pid, sku in db.session.execute(
                select(Listing.product_id, Listing.sku).where(Listing.channel_id == base,
                                                              Listing.product_id.is_not(None)))}
    return [ProductKeys(r.id, r.product_code,
                        r.smaregi_product_id if key == "smaregi_id" else base_codes.get(r.id),
                        bool(r.stock_managed)) for r in rows]


def auto_link(channel: Channel, *, listing_ids: Iterable[int] | None = None) -> tuple[int, int]:
    """Link ``channel``'s unlinked listings (or just ``listing_ids`` of them) by the SKU rule;
    a link made by hand is never changed. Returns (newly linked, listings with a problem)."""
    index = CodeIndex(_product_keys(channel))
    stmt = select(Listing.id, Listing.sku, Listing.link_problem).where(
        Listing.channel_id == channel.id, Listing.product_id.is_(None), Listing.removed_at.is_(None),
        db.or_(Listing.link_problem.is_(None), Listing.link_problem != LinkProblem.UNLINKED.value))
    if listing_ids is not None:
        stmt = stmt.where(Listing.id.in_(list(listing_ids)))
    changes, linked_products = [], []
    for row in db.session.execute(stmt):
        match = index.match(row.sku)
        problem = match.problem.value if match.problem else None
        if match.product_id is not None or problem != row.link_problem:
            changes.append({"lid": row.id, "product_id": match.product_id, "link_problem": problem})
        if match.product_id is not None:
            linked_products.append(match.product_id)
    _update_listings(changes)
    recheck_links([channel.id])
    search_text.refresh_products(linked_products)
    problems = db.session.scalar(select(db.func.count()).select_from(Listing).where(
        Listing.channel_id == channel.id, Listing.removed_at.is_(None), Listing.link_problem.is_not(None)))
    return len(linked_products), problems


def recheck_links(channel_ids: Iterable[int]) -> int:
    """Set or clear the problems of linked listings (複数の商品が紐づいています, stock management
    off) on these channels, from the links as they are now. Returns how many changed."""
    changed = 0
    for channel_id in channel_ids:
        rows = db.session.execute(
            select(Listing.id, Listing.product_id, Listing.link_problem, Product.stock_managed)
            .join(Product, Product.id == Listing.product_id)
            .where(Listing.channel_id == channel_id, Listing.removed_at.is_(None))).all()
        twice = claimed_twice((r.id, r.product_id) for r in rows)
        changes = []
        for row in rows:
            if row.link_problem is not None and row.link_problem not in MATCHER_PROBLEMS:
                continue  # e.g. unknown_item: the channel said so; a read-back clears it
            problem = problem_of_link(bool(row.stock_managed), row.id in twice)
            value = problem.value if problem else None
            if value != row.link_problem:
                changes.append({"lid": row.id, "link_problem": value})
        _update_listings(changes)
        changed += len(changes)
    return changed


def link(listing: Listing, product: Product) -> None:
    """Link by hand (or relink): the listing now follows ``product``; problems are rechecked on
    its channel, and the listing is marked to be read back and pushed."""
    previous = listing.product_id
    listing.product_id = product.id
    listing.link_problem = None
    listing.removed_at = None
    db.session.flush()
    recheck_links([listing.channel_id])
    search_text.refresh_products([pid for pid in (previous, product.id) if pid])


def unlink(listing: Listing) -> None:
    """Unlink: the listing is kept (never deleted on the channel) and no longer pushed."""
    previous = listing.product_id
    listing.product_id = None
    listing.link_problem = LinkProblem.UNLINKED.value
    listing.dirty = False
    db.session.flush()
    recheck_links([listing.channel_id])
    if previous:
        search_text.refresh_products([previous])
