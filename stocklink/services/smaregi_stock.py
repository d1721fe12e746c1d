"""Smaregi → stocklink: applying a stored notification (SPEC §4 steps 2, seed 003 flow).

notify → fetch latest stock → overwrite → mark listings dirty → one coalesced push per
channel. Unlinkable products are handled by the merchant's mode (seed 000).
"""
from __future__ import annotations

import logging

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from stocklink.domain.delta import StockDivision
from stocklink.domain.linking import classify_notification_products, decide_unlinkable
from stocklink.domain.text import variation_label
from stocklink.infra.extensions import db
from stocklink.models import ConfirmationItem, Product, SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.platforms.smaregi import make_smaregi_client
from stocklink.platforms.smaregi.webhook import Notification, StockMovement
from stocklink.services import merchant_settings
from stocklink.services.outbox import queue_mail
from stocklink.services.stock_history import (
    HistoryRead,
    apply_history,
    delta_channel_ids,
    delta_product_ids,
    read_history,
)
from stocklink.services.stock_ledger import StockRead, add_pending_deltas, apply_smaregi_reads, mark_listings_dirty
from stocklink.services.unlinkable import add_exclusion, describe, enqueue_confirmation, linkage

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


def apply_batch(rows: list[SmaregiInbox], notifications: dict[int, Notification], *, client=None) -> set[int]:
    """Apply stored notifications together and mark their rows done; returns the ids of
    channels that need a push. The caller commits.

    One stock read from Smaregi for every product they name, one overwrite per product (so
    ten sales of one product write the ledger once, with the newest figure), one NextEngine
    delta per product: the sum of its 在庫変動履歴 entries after its cursor, not of the
    notifications' bodies (:mod:`stocklink.services.stock_history`; the cursor moves in this transaction).
    Everything read over HTTP is read before the first write, so a write transaction never
    waits on Smaregi.
    Unlinkable products are handled per notification, as the merchant's mode says.
    """
    store_id = str(merchant_settings.get("smaregi.store_id"))
    mode = merchant_settings.get("sync.unlinkable_mode")
    movements = {row.id: _of_store(notifications[row.id].movements, store_id) for row in rows}
    ids = list(dict.fromkeys(m.product_id for ms in movements.values() for m in ms))
    channels: set[int] = set()
    if ids:
        client = client or smaregi_client()
        state = linkage(ids)
        _ensure_products(client, ids, state.products)
        known = set(_known_only(ids, state.products, where=_source_event([row.id for row in rows])))
        movements = {rid: [m for m in ms if m.product_id in known] for rid, ms in movements.items()}
        ids = [sid for sid in ids if sid in known]
        state = linkage(ids)
        # Decide per notification (pure), then read everything, then write.
        decisions = {}
        applied: dict[str, list[int]] = {}  # product → the rows that apply it
        for row in rows:
            row_ids = list(dict.fromkeys(m.product_id for m in movements[row.id]))
            if not row_ids:
                continue
            linkable, unlinkable = _split(row_ids, state)
            # Abort mode was decided in the webhook request; what reaches here is processed in full.
            decisions[row.id] = decide_unlinkable("skip" if mode == "abort" else mode, linkable, unlinkable,
                                                  already_excluded=state.excluded)
            for sid in decisions[row.id].apply:
                applied.setdefault(sid, []).append(row.id)
        read_at = utcnow()
        stock = client.fetch_stock(list(applied)) if applied else {}
        delta_channels = delta_channel_ids()
        history = _read_history(client, state, applied, movements) if delta_channels else None

        _handle_unlinkable(decisions, state, mode)
        reads = {state.products[sid].id: StockRead(int(stock.get(sid, 0)),
                                                   _cause([m for r in applied[sid] for m in movements[r]], sid),
                                                   _source_event(applied[sid])) for sid in applied}
        changed = apply_smaregi_reads(reads, read_at)
        channels = mark_listings_dirty(changed) if changed else set()
        deltas = apply_history(history) if history else {}
        if any(deltas.values()):
            add_pending_deltas(deltas, delta_channels)
            channels |= delta_channels
        for sid in applied:
            if sid in state.released:
                _drop_released(sid)
    db.session.execute(update(SmaregiInbox).where(SmaregiInbox.id.in_([row.id for row in rows]))
                       .values(status="done", processed_at=utcnow(), error=None, claimed_at=None,
                               next_attempt_at=None).execution_options(synchronize_session=False))
    return channels


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
                  movements: dict[int, list[StockMovement]]) -> HistoryRead:
    """The 在庫変動履歴 after the cursors of the applied products that have a delta listing; the
    notifications' own movements only place a product that has no cursor yet (stock_history)."""
    ids = {sid: state.products[sid].id for sid in applied}
    wanted = delta_product_ids(set(ids.values()))
    named = [m for row_id, ms in movements.items() for m in ms if row_id in applied.get(m.product_id, ())]
    return read_history(client, {sid: pid for sid, pid in ids.items() if pid in wanted}, named)


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
    apply_smaregi_reads({state.products[sid].id: StockRead(int(stock.get(sid, 0)), cause, source_event)
                         for sid in managed}, read_at)
    # Every one is marked, changed or not: the merchant asked for the channels to be set now.
    return mark_listings_dirty({state.products[sid].id for sid in managed})
