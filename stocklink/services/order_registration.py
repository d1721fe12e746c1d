"""Registering web orders in Smaregi, exactly once (SPEC §5, §11.3; seeds 001 and 003).

Each :class:`~stocklink.models.Registration` is an outbox row: register one revision of an
order (as a shipment or a transaction, the merchant's setting), or cancel one. An order's
registrations are settled one after another, in the order they were written, by one worker
at a time (the job holds a lease per order), so a cancel never overtakes the registration it
cancels.

Exactly once, whatever fails:

- **The intent first.** ``attempts`` is counted and committed before anything is sent, so a
  registration that was perhaps sent is never withdrawn as if it had not been
  (:func:`stocklink.services.order_intake._withdraw`).
- **Read back, never repeat blind.** A registration with an earlier attempt is looked up in
  Smaregi by the reference stocklink wrote into it (``find_sale``) before it is sent again: a
  timeout, a reset or a worker killed mid-call is settled by what Smaregi holds.
- **Release with the read.** Once Smaregi holds the sale, its stock is read; the reservation
  is released in the same transaction that applies that read, so total stock
  (``smaregi_stock − reserved``) never rises above the truth, even for a moment.
- **A failure stays reserved.** Temporary failures are retried with backoff; refused
  credentials stop registrations at level 9 (as for a channel) until fixed; the units stay
  reserved throughout, and the order is shown as failed, never silently dropped (seed 003
  admits the drift; stocklink does not).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.models import Order, OrderLine, Product, Registration
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.base import PlatformError
from stocklink.platforms.smaregi import make_smaregi_client
from stocklink.platforms.smaregi.common import SaleLine, SaleRegistration
from stocklink.services import echoes, merchant_settings
from stocklink.services.delta_channels import add_pending_deltas, delta_channel_ids, delta_product_ids
from stocklink.services.order_intake import give_back
from stocklink.services.stock_ledger import StockRead, apply_smaregi_reads, change_reserved, mark_listings_dirty


def registration_client():
    """A Smaregi client for registering sales: its own token, which also asks for the sale
    scopes, so an app without them still syncs stock (the stock client never asks for them)."""
    return make_smaregi_client({**merchant_settings.get_all("smaregi."), "register_sales": True})


@dataclass
class Settled:
    """What settling one registration did: ``outcome`` for the job's result and the log, the
    channels with push work."""

    outcome: str
    channel_ids: set[int] = field(default_factory=set)


def pending_of(order_id: int) -> list[Registration]:
    """The order's registrations still to settle, oldest first."""
    return list(db.session.scalars(select(Registration).where(
        Registration.order_id == order_id, Registration.state.in_(("pending", "failed")))
        .order_by(Registration.id)))


def sale_of(registration: Registration, order: Order) -> SaleRegistration | None:
    """What is sent for a registration: the lines of its revision that deduct a product with a
    Smaregi id, summed per product; None when none does (nothing to register)."""
    rows = db.session.execute(select(Product.smaregi_product_id, OrderLine.quantity, OrderLine.unit_price)
                              .join(Product, Product.id == OrderLine.product_id)
                              .where(OrderLine.order_id == order.id, OrderLine.revision == registration.revision,
                                     Product.smaregi_product_id.is_not(None))
                              .order_by(OrderLine.id)).all()
    quantities: dict[str, int] = {}
    prices: dict[str, int | None] = {}
    for sid, quantity, price in rows:
        if quantity <= 0:
            continue
        quantities[sid] = quantities.get(sid, 0) + quantity
        prices.setdefault(sid, price)
    if not quantities:
        return None
    lines = tuple(SaleLine(sid, quantity, prices[sid] if prices[sid] is not None else 0)
                  for sid, quantity in quantities.items())
    occurred = as_utc(order.ordered_at) if order.ordered_at else as_utc(order.first_seen_at)
    return SaleRegistration(mode=registration.mode, reference=registration.idempotency_key, lines=lines,
                            occurred_at=occurred, memo=f"stocklink {order.channel_order_id}"[:200])


def count_attempt(registration: Registration) -> bool:
    """Record the intent: one more attempt, committed before anything is sent. False when the
    registration was settled or withdrawn meanwhile (compare-and-set on its state)."""
    counted = db.session.execute(update(Registration).where(
        Registration.id == registration.id, Registration.state.in_(("pending", "failed")))
        .values(attempts=Registration.attempts + 1).execution_options(synchronize_session=False))
    won = counted.rowcount == 1
    db.session.commit()
    db.session.refresh(registration)
    return won


def settle(registration: Registration, client) -> Settled:
    """Settle one registration over HTTP and in the database (the caller holds the order's
    lease and has counted the attempt). Raises the client's errors, with nothing committed
    beyond the attempt."""
    order = db.session.get(Order, registration.order_id)
    if registration.action == "register":
        return _register(registration, order, client)
    return _cancel(registration, order, client)


def _register(registration: Registration, order: Order, client) -> Settled:
    sale = sale_of(registration, order)
    if sale is None:  # every line unlinked or without a Smaregi id: nothing for Smaregi to hold
        _finish(registration, None, order)
        db.session.commit()
        return Settled("nothing to register")
    smaregi_id = None
    if registration.attempts > 1:  # an earlier attempt may have reached Smaregi
        found = client.find_sale(sale)
        if found is not None and not found.cancelled:
            smaregi_id = found.smaregi_id
    if smaregi_id is None:
        _expect_echoes(registration, order, -1)
        smaregi_id = _send(registration, lambda: client.register_sale(sale))
    channel_ids = _release_with_read(client, order, registration.revision, "order:registered",
                                     [line.product_id for line in sale.lines])
    _finish(registration, smaregi_id, order)
    db.session.commit()
    return Settled(f"registered as {registration.mode} {smaregi_id}", channel_ids)


def _cancel(registration: Registration, order: Order, client) -> Settled:
    """Cancel revision ``registration.revision`` in Smaregi if Smaregi holds it, then give back
    whatever of it is still reserved; the stock read after the cancel is applied with it."""
    register = db.session.scalar(select(Registration).where(
        Registration.order_id == order.id, Registration.revision == registration.revision,
        Registration.action == "register"))
    smaregi_id = None
    if register is not None and register.state == "done":
        smaregi_id = register.smaregi_ref
    elif register is not None and register.state in ("pending", "failed") and register.attempts:
        sale = sale_of(register, order)
        found = client.find_sale(sale) if sale is not None else None
        smaregi_id = found.smaregi_id if found is not None and not found.cancelled else None
    if register is not None and register.state in ("pending", "failed"):
        register.state, register.done_at = "superseded", utcnow()
        if not smaregi_id:
            echoes.forget(register.id)  # it never reached Smaregi
    product_sids = _smaregi_ids_of(order.id, registration.revision)
    if smaregi_id:
        _expect_echoes(registration, order, +1)
        _send(registration, lambda: client.cancel_sale(registration.mode, smaregi_id))
    now = utcnow()
    read_at = now
    stock = client.fetch_stock(product_sids) if smaregi_id and product_sids else {}
    source = f"order:{order.channel_id}:{order.channel_order_id}#{registration.revision}"
    channel_ids = _apply_reads(stock, read_at, "order:cancelled", source)
    returned = give_back(order, registration.revision, source)
    back: dict[int, int] = dict(returned)
    if smaregi_id:
        for pid, units in _units_of(order.id, registration.revision, "released").items():
            back[pid] = back.get(pid, 0) + units
    channel_ids |= _tell_delta_channels(order.channel_id, back)
    channel_ids |= mark_listings_dirty(set(back) | set(returned))
    registration.state, registration.smaregi_ref, registration.done_at = "done", smaregi_id, now
    registration.last_error = None
    db.session.commit()
    return Settled(f"cancelled {smaregi_id}" if smaregi_id else "nothing in Smaregi to cancel", channel_ids)


def _expect_echoes(registration: Registration, order: Order, sign: int) -> None:
    """Before sending: the movement this will cause, for the products the delta channels carry
    (:mod:`stocklink.services.echoes`); committed, so a drain that sees the movement first knows it."""
    units = _units_of(order.id, registration.revision, None)
    wanted = delta_product_ids(set(units))
    echoes.expect(registration.id, {pid: sign * units[pid] for pid in wanted})
    db.session.commit()


def _send(registration: Registration, call):
    """One request to Smaregi; a refusal that applied nothing (not a lost answer) takes back the
    movement expected for it. Raises what the call raised."""
    try:
        return call()
    except Exception as exc:
        if not getattr(exc, "outcome_unknown", False) and isinstance(exc, PlatformError):
            db.session.rollback()
            echoes.forget(registration.id)
            db.session.commit()
        raise


def _smaregi_ids_of(order_id: int, revision: int) -> list[str]:
    return list(db.session.scalars(select(Product.smaregi_product_id).join(
        OrderLine, OrderLine.product_id == Product.id).where(
        OrderLine.order_id == order_id, OrderLine.revision == revision,
        Product.smaregi_product_id.is_not(None)).distinct()))


def _units_of(order_id: int, revision: int, state: str | None) -> dict[int, int]:
    """Units per product of a revision's lines in ``state`` (None: every line with a product)."""
    units: dict[int, int] = {}
    stmt = select(OrderLine.product_id, OrderLine.quantity).where(
        OrderLine.order_id == order_id, OrderLine.revision == revision, OrderLine.product_id.is_not(None))
    if state is not None:
        stmt = stmt.where(OrderLine.state == state)
    for pid, quantity in db.session.execute(stmt):
        units[pid] = units.get(pid, 0) + quantity
    return units


def _apply_reads(stock: dict[str, int], read_at, cause: str, source: str) -> set[int]:
    if not stock:
        return set()
    ids = dict(db.session.execute(select(Product.smaregi_product_id, Product.id)
                                  .where(Product.smaregi_product_id.in_(list(stock)))).all())
    reads = {ids[sid]: StockRead(value, cause, source) for sid, value in stock.items() if sid in ids}
    changed = apply_smaregi_reads(reads, read_at)
    return mark_listings_dirty(changed) if changed else set()


def _release_with_read(client, order: Order, revision: int, cause: str, sids: list[str]) -> set[int]:
    """Read Smaregi's stock now (it holds the sale) and, in this transaction, apply it and
    release the revision's reservation."""
    read_at = utcnow()
    stock = client.fetch_stock(sids)
    source = f"order:{order.channel_id}:{order.channel_order_id}#{revision}"
    channel_ids = _apply_reads(stock, read_at, cause, source)
    units = _units_of(order.id, revision, "reserved")
    released = db.session.execute(update(OrderLine).where(
        OrderLine.order_id == order.id, OrderLine.revision == revision, OrderLine.state == "reserved")
        .values(state="released").execution_options(synchronize_session=False))
    if released.rowcount:
        change_reserved({pid: -n for pid, n in units.items()}, cause="order:released", source_event=source)
        channel_ids |= mark_listings_dirty(set(units))
    return channel_ids


def _tell_delta_channels(origin_channel_id: int, back: dict[int, int]) -> set[int]:
    """Units coming back are an increase for the delta channels other than the order's own:
    Smaregi's cancelled shipment is not forwarded to them (seed 001 §6)."""
    others = delta_channel_ids() - {origin_channel_id}
    if back and others:
        add_pending_deltas({pid: units for pid, units in back.items() if units}, others)
        return others
    return set()


def _finish(registration: Registration, smaregi_id: str | None, order: Order) -> None:
    registration.state, registration.smaregi_ref, registration.done_at = "done", smaregi_id, utcnow()
    registration.last_error, registration.next_attempt_at = None, None
    if order.revision == registration.revision and order.state in ("reserved", "failed"):
        order.state = "registered"


def record_failure(registration: Registration, reason: str, *, final: bool, retry_at=None) -> None:
    """A registration that could not be settled: the reason kept, retried later; ``final``
    (retries exhausted, or credentials refused) marks it failed, its order too. Nothing
    reserved is given back."""
    registration.last_error = reason[:2000]
    registration.next_attempt_at = retry_at
    if final:
        registration.state = "failed"
        order = db.session.get(Order, registration.order_id)
        if order is not None and order.revision == registration.revision and order.state == "reserved":
            order.state = "failed"
    db.session.commit()


def retry_now(order: Order) -> int:
    """The merchant's "retry now": the order's unsettled registrations are due at once (the
    caller enqueues them). Returns how many."""
    rows = pending_of(order.id)
    for registration in rows:
        registration.next_attempt_at = None
    return len(rows)


def resolve_by_hand(order: Order, note: str, user: str) -> list[str]:
    """The merchant settled the order themselves (registered it in Smaregi by hand, or decided it
    must not be): its unsettled registrations are marked resolved with the note, and its units
    still reserved are given back. Returns the Smaregi ids whose stock the caller re-reads (a
    sale registered by hand shows there, and total stock follows it)."""
    now = utcnow()
    for registration in pending_of(order.id):
        registration.state, registration.done_at = "resolved", now
        registration.last_error = (registration.last_error or "")[:1900] or None
    source = f"order:{order.channel_id}:{order.channel_order_id}#{order.revision}"
    returned: dict[int, int] = {}
    for revision in sorted(set(db.session.scalars(select(OrderLine.revision).where(
            OrderLine.order_id == order.id, OrderLine.state == "reserved")))):
        for pid, units in give_back(order, revision, source).items():
            returned[pid] = returned.get(pid, 0) + units
    order.note, order.resolved_by = note[:1000], user[:80]
    if order.state in ("reserved", "failed"):
        order.state = "resolved"
    mark_listings_dirty(set(returned))
    return list(db.session.scalars(select(Product.smaregi_product_id).where(
        Product.id.in_(list(returned)), Product.smaregi_product_id.is_not(None)))) if returned else []
