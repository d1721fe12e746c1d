"""Smaregi → stocklink: applying a stored notification (SPEC §4 steps 2, seed 003 flow).

notify → fetch latest stock → overwrite → mark listings dirty → one coalesced push per
channel. Unlinkable products are handled by the merchant's mode (seed 000).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from stocklink.domain.delta import StockDivision
from stocklink.domain.linking import UnlinkableDecision, classify_notification_products, decide_unlinkable
from stocklink.domain.stock import fetched_smaregi_stock
from stocklink.domain.text import variation_label
from stocklink.infra.extensions import db
from stocklink.models import ConfirmationItem, Product, SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.platforms.smaregi import make_smaregi_client
from stocklink.platforms.smaregi.webhook import Notification, StockMovement
from stocklink.services import delta_channels, merchant_settings
from stocklink.services.outbox import queue_mail
from stocklink.services.search_text import refresh_products as refresh_search_text
from stocklink.services.stock_history import HistoryRead
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads, mark_listings_dirty
from stocklink.services.unlinkable import Linkage, add_exclusion, describe, enqueue_confirmation, linkage

ABORT_SUBJECT = _l("*Please check* An error occurred while processing a stock send from Smaregi.")
SKIPPED_SUBJECT = _l("Products that cannot be linked were skipped")
EXCLUDED_SUBJECT = _l("Products that cannot be linked were added to the exclusion list")

log = logging.getLogger(__name__)


def smaregi_client():
    return make_smaregi_client(merchant_settings.get_all("smaregi."))


def store_movements(movements: tuple[StockMovement, ...]) -> list[StockMovement]:
    """Only movements of the configured store count (stock is per store in Smaregi)."""
    return _of_store(movements, str(merchant_settings.get("smaregi.store_id")))


def abort_check(notification: Notification) -> list[dict]:
    """In abort mode, the unlinkable products that make this notification fail (seed 000).

    Decided inside the webhook request: nothing is applied, they go into the confirmation
    queue, the merchant is mailed, and Smaregi is answered with an error so it can resend.
    """
    if merchant_settings.get("sync.unlinkable_mode") != "abort" or not notification.movements:
        return []
    ids = [m.product_id for m in store_movements(notification.movements)]
    state = linkage(ids)
    if any(sid not in state.products for sid in ids):
        # Products stocklink has not seen: Smaregi says whether they exist (and what they are
        # called, for the mail). Only in abort mode, and only for products new to stocklink.
        _ensure_products(smaregi_client(), ids, state.products)
        db.session.commit()  # the webhook stores the row on another connection: hold no lock
        ids = _known_only(ids, state.products, where="a notification in abort mode")
        state = linkage(ids)
    linkable, unlinkable = _split(ids, state)
    decision = decide_unlinkable("abort", linkable, unlinkable, already_excluded=state.excluded)
    if not decision.reject:
        return []
    described = [describe(sid, state.products.get(sid)) for sid in decision.mail]
    for sid in decision.mail:
        enqueue_confirmation(sid, state.products.get(sid), inbox_id=None, reason="aborted")
    queue_mail("unlinkable", ABORT_SUBJECT, "unlinkable_abort", products=described)
    db.session.commit()
    return described


def _split(ids: list[str], state) -> tuple[list[str], list[str]]:
    """(linkable, unlinkable) products of a notification. Products outside stock control
    (seed 003: 在庫管理対象外) and excluded products are in neither: an exclusion wins over a
    link until the merchant removes it (seed 000: "excluded products are skipped silently")."""
    candidates = [sid for sid in dict.fromkeys(ids) if sid not in state.not_managed]
    linkable, unlinkable, _excluded = classify_notification_products(
        candidates, state.linked | state.released, state.excluded)
    return linkable, unlinkable


def _ensure_products(client, smaregi_ids: list[str], known: dict[str, Product]) -> dict[str, Product]:
    """Create rows for products stocklink has not seen yet, from Smaregi's product data."""
    missing = [sid for sid in smaregi_ids if sid not in known]
    if not missing:
        return known
    for sid, info in client.get_products(missing).items():
        product = Product(smaregi_product_id=sid, product_code=info.code, name=info.name or "",
                          variation=variation_label(info.color, info.size),
                          group_code=info.group_code, stock_managed=info.stock_managed)
        db.session.add(product)
        known[sid] = product
    db.session.flush()
    refresh_search_text([known[sid].id for sid in missing if sid in known])  # findable in the grid at once
    return known


def _known_only(ids: list[str], known: dict[str, Product], *, where: str) -> list[str]:
    """The ids Smaregi knows; the others are logged, never queued or mailed as unlinkable.

    A product Smaregi does not know cannot be linked by the merchant: it is a sender's
    mistake or a product deleted since, and the stock read would only answer 0 for it.
    """
    unknown = sorted({sid for sid in ids if sid not in known})
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" … ({len(unknown)} in all)" if len(unknown) > 20 else "")
        log.warning("%s names products Smaregi does not know; skipped: %s", where, shown)
    return [sid for sid in ids if sid in known]


@dataclass
class _Plan:
    """What a batch of notifications does, decided before any stock is read."""

    mode: str  # the merchant's unlinkable mode
    state: Linkage  # what stocklink knows of the products the batch names
    movements: dict[int, list[StockMovement]]  # inbox id → its movements of products Smaregi knows
    decisions: dict[int, UnlinkableDecision]  # inbox id → what the mode does with its products
    applied: dict[str, list[int]]  # Smaregi id → the inbox rows that apply it, in row order


@dataclass
class _Reads:
    """What was read from Smaregi for a plan, before the first write."""

    read_at: datetime
    stock: dict[str, int]
    history: HistoryRead | None  # for the delta channels


def apply_batch(rows: list[SmaregiInbox], notifications: dict[int, Notification], *, client=None) -> set[int]:
    """Apply stored notifications together and mark their rows done; returns the ids of
    channels that need a push. The caller commits.

    One stock read from Smaregi for every product they name, one overwrite per product (so
    ten sales of one product write the ledger once, with the newest figure), and for the delta
    channels one count per product, from its 在庫変動履歴 entries after its cursor, not from the
    notifications' bodies (:mod:`stocklink.services.delta_channels`; the cursor moves in this transaction).
    In three steps: :func:`_plan` decides per notification, :func:`_read` reads everything over
    HTTP, :func:`_write` writes, so a write transaction never waits on Smaregi.
    Unlinkable products are handled per notification, as the merchant's mode says.
    """
    store_id = str(merchant_settings.get("smaregi.store_id"))
    movements = {row.id: _of_store(notifications[row.id].movements, store_id) for row in rows}
    channels: set[int] = set()
    if any(movements.values()):
        client = client or smaregi_client()
        plan = _plan(client, movements, merchant_settings.get("sync.unlinkable_mode"))
        channels = _write(plan, _read(client, plan))
    db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_([row.id for row in rows]))
                       .values(status="done", processed_at=utcnow(), error=None, claimed_at=None,
                               next_attempt_at=None).execution_options(synchronize_session=False))
    return channels


def _plan(client, movements: dict[int, list[StockMovement]], mode: str) -> _Plan:
    """Know the products (rows for those new to stocklink, from Smaregi's product data; those
    Smaregi does not know are dropped) and decide per notification what is applied."""
    ids = list(dict.fromkeys(m.product_id for ms in movements.values() for m in ms))
    state = linkage(ids)
    _ensure_products(client, ids, state.products)
    known = set(_known_only(ids, state.products, where=_source_event(list(movements))))
    movements = {rid: [m for m in ms if m.product_id in known] for rid, ms in movements.items()}
    state = linkage([sid for sid in ids if sid in known])
    decisions: dict[int, UnlinkableDecision] = {}
    applied: dict[str, list[int]] = {}
    for row_id, row_movements in movements.items():
        row_ids = list(dict.fromkeys(m.product_id for m in row_movements))
        if not row_ids:
            continue
        linkable, unlinkable = _split(row_ids, state)
        # Abort mode was decided in the webhook request; what reaches here is processed in full.
        decisions[row_id] = decide_unlinkable("skip" if mode == "abort" else mode, linkable, unlinkable,
                                              already_excluded=state.excluded)
        for sid in decisions[row_id].apply:
            applied.setdefault(sid, []).append(row_id)
    return _Plan(mode, state, movements, decisions, applied)


def _read(client, plan: _Plan) -> _Reads:
    """The stock of every applied product, and the movements the delta channels have not had."""
    read_at = utcnow()
    stock = client.fetch_stock(list(plan.applied)) if plan.applied else {}
    return _Reads(read_at, stock, _read_history(client, plan.state, plan.applied, plan.movements))


def _write(plan: _Plan, reads: _Reads) -> set[int]:
    """Queue, exclude and mail the unlinkable products, overwrite the stock read, forward the
    delta channels' counts; returns the channels that now have work."""
    _handle_unlinkable(plan.decisions, plan.state, plan.mode)
    stock_reads = {plan.state.products[sid].id: StockRead(stored_stock(reads.stock, sid),
                                                          _cause([m for r in rows for m in plan.movements[r]], sid),
                                                          _source_event(rows))
                   for sid, rows in plan.applied.items()}
    changed = apply_smaregi_reads(stock_reads, reads.read_at)
    channels = mark_listings_dirty(changed) if changed else set()
    channels |= delta_channels.forward(reads.history).channel_ids
    for sid in plan.applied:
        if sid in plan.state.released:
            _drop_released(sid)
    return channels


def stored_stock(stock: dict[str, int], sid: str) -> int:
    """What to store for ``sid`` after a stock read (:func:`~stocklink.domain.stock.fetched_smaregi_stock`)."""
    return fetched_smaregi_stock(stock.get(sid), product_found=sid in stock)


def _of_store(movements: tuple[StockMovement, ...], store_id: str) -> list[StockMovement]:
    return [m for m in movements if m.store_id in (None, store_id)]


def _source_event(inbox_ids: list[int]) -> str:
    """``inbox:7`` or ``inbox:7,8,9`` (the ledger column holds 120 characters)."""
    text = "inbox:" + ",".join(str(i) for i in sorted(set(inbox_ids)))
    return text if len(text) <= 120 else text[:117].rsplit(",", 1)[0] + ",…"


def _cause(movements: list[StockMovement], sid: str) -> str:
    divisions = {m.division for m in movements if m.product_id == sid and m.division}
    if len(divisions) == 1:
        code = divisions.pop()
        try:
            return f"smaregi:{code}:{StockDivision(code).name.lower()}"
        except ValueError:
            return f"smaregi:{code}"
    return "smaregi:notification"


def _read_history(client, state, applied: dict[str, list[int]],
                  movements: dict[int, list[StockMovement]]) -> HistoryRead | None:
    """What the delta channels have not had yet of the applied products; the notifications'
    own movements only place a product that has no cursor yet (:mod:`.delta_channels`)."""
    named = [m for row_id, ms in movements.items() for m in ms if row_id in applied.get(m.product_id, ())]
    return delta_channels.read_movements(client, {sid: state.products[sid].id for sid in applied}, named)


def _drop_released(sid: str) -> None:
    item = db.session.scalars(select(ConfirmationItem).where(ConfirmationItem.smaregi_product_id == sid)).first()
    if item is not None:
        db.session.delete(item)


def _handle_unlinkable(decisions: dict[int, object], state, mode: str) -> None:
    """Queue and exclude per notification, as the mode decided (SPEC §4 table); mail once per
    drained batch, one message naming every product skipped in it (seed 000: still one every
    time a product is skipped, but not one per notification of a burst)."""
    skipped: dict[str, int] = {}  # product → notifications of this batch that skipped it
    newly_excluded: list[dict] = []
    for inbox_id, decision in decisions.items():
        for sid in decision.queue:
            enqueue_confirmation(sid, state.products.get(sid), inbox_id=inbox_id)
        newly_excluded += [describe(sid, state.products.get(sid)) for sid in decision.exclude
                           if add_exclusion(sid, state.products.get(sid), automatic=True)]
        if mode != "auto_exclude":
            for sid in decision.mail:
                skipped[sid] = skipped.get(sid, 0) + 1
    if newly_excluded:
        queue_mail("unlinkable", EXCLUDED_SUBJECT, "unlinkable_excluded", products=newly_excluded)
    if skipped:
        queue_mail("unlinkable", SKIPPED_SUBJECT, "unlinkable_skipped",
                   products=[{**describe(sid, state.products.get(sid)), "times": times}
                             for sid, times in skipped.items()])


def refresh_products(smaregi_ids: list[str], *, cause: str, source_event: str | None = None) -> set[int]:
    """Re-read these products' stock from Smaregi, overwrite, and mark their listings dirty."""
    client = smaregi_client()
    state = linkage(smaregi_ids)
    _ensure_products(client, list(smaregi_ids), state.products)
    read_at = utcnow()
    managed = [sid for sid, p in state.products.items() if p.stock_managed and sid in smaregi_ids]
    stock = client.fetch_stock(managed) if managed else {}
    apply_smaregi_reads({state.products[sid].id: StockRead(stored_stock(stock, sid), cause, source_event)
                         for sid in managed}, read_at)
    # Every one is marked, changed or not: the merchant asked for the channels to be set now.
    return mark_listings_dirty({state.products[sid].id for sid in managed})
