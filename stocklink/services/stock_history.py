"""NextEngine's deltas from Smaregi's 在庫変動履歴, each entry once (SPEC §3, seed 001 §5).

A notification only says *that* a product moved. What moved is read from Smaregi's stock
history: every entry after the product's cursor (the last entry id already forwarded, table
``stock_history_cursors``) is turned into a delta by :func:`~stocklink.domain.delta.history_delta`,
added to the delta channels' listings, and the cursor moves to the newest entry — in the one
transaction of the caller, under a row lock on the cursor, so a drain run twice (or a drain and
the backfill at once) forwards an entry once. Two movements notified in byte-identical bodies
(sale, return, sale within a second: the second is stored once) are two entries, so both reach
NextEngine, and a notification that never arrived is found by the backfill, which reads the same
history after the same cursors.

What this relies on: 在庫変動履歴 ids are integers that grow with the order in which Smaregi
records the movements of a contract (the sandbox does so; Smaregi documents ids, not their
order, so this is the conservative reading of "an id per entry" — an entry recorded with a
smaller id after a larger one was read would be passed over).

A product with no cursor yet (newly linked, or before this table existed) does not replay its
past: it starts at the movements its next notification names — Platform ``ids[].id``; legacy
rows carry no id, so the entry is found by its fields in the notified second
(:func:`~stocklink.domain.delta.legacy_anchor`). The backfill reads only products that have a
cursor; a notification lost for a product's very first movement after linking is therefore not
forwarded (its absolute channels still are).

Stocklink's own registrations of web orders are entries too; the delta channels had those units
when the order was reserved, so the entries they cause are taken out before the count
(:mod:`stocklink.services.echoes`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select

from stocklink.domain.delta import HistoryEntry, history_delta, legacy_anchor
from stocklink.infra.extensions import db, insert_for
from stocklink.models import StockHistoryCursor
from stocklink.models._types import utcnow
from stocklink.platforms.smaregi.webhook import StockMovement
from stocklink.services import echoes

log = logging.getLogger(__name__)


@dataclass
class HistoryRead:
    """What was read from Smaregi before the writes: per product id, its entries after the
    cursor it had (or after the anchor a notification gave it)."""

    store_id: str
    starts: dict[int, int] = field(default_factory=dict)           # product id → entries after this id
    entries: dict[int, list[HistoryEntry]] = field(default_factory=dict)


def _cursors(product_ids: set[int], store_id: str) -> dict[int, int]:
    if not product_ids:
        return {}
    return dict(db.session.execute(select(StockHistoryCursor.product_id, StockHistoryCursor.last_change_id).where(
        StockHistoryCursor.product_id.in_(product_ids), StockHistoryCursor.store_id == store_id)).all())


def _entry(change) -> HistoryEntry:
    return HistoryEntry(int(change.change_id), change.amount, change.stock_amount, change.stock_division,
                        change.upd_date_time)


def _notified(movement: StockMovement) -> HistoryEntry | None:
    if movement.amount is None or movement.stock_after is None or not movement.at:
        return None
    return HistoryEntry(0, movement.amount, movement.stock_after, movement.division or "", movement.at)


def read_history(client, products: dict[str, int], movements: list[StockMovement] | None = None) -> HistoryRead:
    """Read, over HTTP and before any write, the entries the delta channels have not had yet.

    ``products``: Smaregi id → stocklink product id, of the products to read (those with a delta
    listing: :func:`stocklink.services.delta_channels.read_movements` calls this). ``movements``:
    what the notifications being applied named; they place a product without a cursor (none
    given: such products are left alone, as the backfill does). At most one request per product
    (legacy: one for all when there are many).
    """
    store_id = str(client.store_id)
    read = HistoryRead(store_id)
    cursors = _cursors(set(products.values()), store_id)
    named: dict[str, list[StockMovement]] = {}
    for movement in movements or ():
        named.setdefault(movement.product_id, []).append(movement)
    after: dict[str, int] = {}
    since: dict[str, str] = {}
    legacy_rows: dict[str, list[HistoryEntry]] = {}
    for sid, pid in products.items():
        if pid in cursors:
            after[sid] = cursors[pid]
            continue
        ids = [int(m.history_id) for m in named.get(sid, ()) if m.history_id and m.history_id.isdigit()]
        rows = [row for row in map(_notified, named.get(sid, ())) if row is not None]
        if ids:  # Platform: the notification names its entries
            after[sid] = min(ids) - 1
        elif rows:  # legacy: the entries are found by their fields, from the notified second on
            legacy_rows[sid] = rows
            since[sid] = min(row.at for row in rows)
    if not after and not since:
        return read
    changes = client.stock_changes_after(after, since)
    for sid, pid in products.items():
        found = [_entry(c) for c in changes.get(sid, ())]
        if sid in after:
            read.starts[pid], read.entries[pid] = after[sid], found
        elif sid in since:
            start = legacy_anchor(found, legacy_rows[sid])
            if start is None:
                log.warning("no 在庫変動履歴 entry matches the notification of product %s; nothing forwarded", sid)
                continue
            read.starts[pid], read.entries[pid] = start, found
    return read


def _insert_missing(starts: dict[int, int], store_id: str) -> None:
    """Cursor rows for products that have none, at their start; a row another transaction
    created meanwhile is kept (``ON CONFLICT DO NOTHING``, both dialects)."""
    dialect = db.session.get_bind().dialect.name
    insert = insert_for(dialect)
    now = utcnow()
    db.session.execute(insert(StockHistoryCursor.__table__).on_conflict_do_nothing(), [
        {"product_id": pid, "store_id": store_id, "last_change_id": start, "updated_at": now}
        for pid, start in sorted(starts.items())])


def apply_history(read: HistoryRead) -> dict[int, int]:
    """Advance the cursors over what :func:`read_history` found; returns product id → delta.

    Call it in the transaction that adds the deltas and commits (:func:`stocklink.services.delta_channels.forward`).
    Each cursor row is locked and re-read first: entries another drain forwarded since the read
    are left out, and the cursor never moves back.
    """
    if not read.starts:
        return {}
    _insert_missing(read.starts, read.store_id)
    table = StockHistoryCursor.__table__
    locked = dict(db.session.execute(
        select(table.c.product_id, table.c.last_change_id)
        .where(table.c.product_id.in_(list(read.starts)), table.c.store_id == read.store_id)
        .order_by(table.c.product_id).with_for_update()).all())
    deltas: dict[int, int] = {}
    moved = []
    for pid in sorted(read.starts):
        entries = read.entries.get(pid, [])
        last = max((e.id for e in entries if e.id > locked[pid]), default=locked[pid])
        delta, _last = history_delta(echoes.consume(pid, entries, locked[pid]), locked[pid])
        if last != locked[pid]:
            moved.append({"pid": pid, "last": last})
        if delta:
            deltas[pid] = delta
    if moved:
        db.session.connection().execute(
            table.update().where(table.c.product_id == bindparam("pid"), table.c.store_id == read.store_id,
                                 table.c.last_change_id < bindparam("last"))
            .values(last_change_id=bindparam("last"), updated_at=utcnow()), moved)
    return deltas
